"""Output heads on the ET features: the per-atom noise (a vector) and a molecular property.

- :class:`NoiseHead`: two gated equivariant blocks, ``F → F/2 → 1`` vector channel, read as
  the predicted noise of each atom (rotates with the molecule).
- :class:`ScalarHead`: a per-atom MLP ``F → F/2 → 1``, summed over the molecule and mapped
  back to label units with the training labels' ``std`` and ``mean`` (invariant).

References:
    Schütt, Unke, Gastegger. "Equivariant message passing for the prediction of tensorial
    properties and molecular spectra." ICML 2021. https://arxiv.org/abs/2102.03150 (the gated
    equivariant block)

    Zaidi et al. "Pre-training via Denoising for Molecular Property Prediction." ICLR 2023.
    https://arxiv.org/abs/2206.00133
"""

from __future__ import annotations

import math

import torch
from torch import nn

from zoo.denoising.et import _activation
from zoo.denoising.geometry import _check_choice, _check_positive

__all__ = ["GatedEquivariantBlock", "NoiseHead", "ScalarHead"]


def _xavier_(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every linear layer of ``module``."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class GatedEquivariantBlock(nn.Module):
    """Mixes scalar and vector channels; the vectors are only rescaled, so they stay equivariant.

    ``x' , s = MLP([x ‖ ‖W₁ vec‖])`` and ``vec' = s ⊙ W₂ vec``, the norm over the three spatial
    components; ``x'`` optionally passes the activation.

    Args:
        in_channels: Scalar and vector channels in.
        out_channels: Scalar and vector channels out.
        intermediate_channels: Hidden width of the MLP; ``in_channels`` by default.
        activation: The MLP's activation, one of :data:`zoo.denoising.et.ACTIVATIONS`.
        scalar_activation: Apply the activation to the scalar output too.

    Shapes:
        - x: ``(n_atoms, in_channels)``; vec: ``(n_atoms, 3, in_channels)``
        - output: ``(n_atoms, out_channels)`` and ``(n_atoms, 3, out_channels)``
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        intermediate_channels: int | None = None,
        activation: str = "silu",
        scalar_activation: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        hidden = in_channels if intermediate_channels is None else intermediate_channels
        _check_positive(owner, in_channels=in_channels, out_channels=out_channels, hidden=hidden)
        self.out_channels = out_channels
        self.vec1_proj = nn.Linear(in_channels, in_channels, bias=False)
        self.vec2_proj = nn.Linear(in_channels, out_channels, bias=False)
        self.update_net = nn.Sequential(
            nn.Linear(2 * in_channels, hidden),
            _activation(owner, "activation", activation),
            nn.Linear(hidden, 2 * out_channels),
        )
        self.act = _activation(owner, "activation", activation) if scalar_activation else None
        _xavier_(self)

    def forward(self, x: torch.Tensor, vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        norms = torch.linalg.vector_norm(self.vec1_proj(vec), dim=-2)  # (n_atoms, in_channels)
        x, gate = self.update_net(torch.cat([x, norms], dim=-1)).split(self.out_channels, -1)
        vec = gate.unsqueeze(-2) * self.vec2_proj(vec)
        if self.act is not None:
            x = self.act(x)
        return x, vec


class NoiseHead(nn.Module):
    """Predicts one 3-vector per atom: the denoising target (the noise, in units of ``σ``).

    Args:
        embedding_dimension: ``F`` of the encoder, at least 2.
        activation: Of the gated blocks.

    Shapes:
        - x: ``(n_atoms, F)``; vec: ``(n_atoms, 3, F)``
        - output: ``(n_atoms, 3)``

    Example:
        >>> head = NoiseHead(8)
        >>> tuple(head(torch.randn(5, 8), torch.randn(5, 3, 8)).shape)
        (5, 3)
    """

    def __init__(self, embedding_dimension: int = 256, activation: str = "silu") -> None:
        super().__init__()
        if embedding_dimension < 2:
            raise ValueError(
                f"NoiseHead: embedding_dimension must be at least 2 (the hidden block has "
                f"F/2 channels), got {embedding_dimension}"
            )
        half = embedding_dimension // 2
        self.blocks = nn.ModuleList(
            [
                GatedEquivariantBlock(
                    embedding_dimension, half, activation=activation, scalar_activation=True
                ),
                GatedEquivariantBlock(half, 1, activation=activation),
            ]
        )

    def forward(self, x: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x, vec = block(x, vec)
        return vec.squeeze(-1)


class ScalarHead(nn.Module):
    """Predicts one number per molecule from the atoms' scalars, in the units of the labels.

    ``y = std · Σ_i MLP(x_i) + mean`` (``reduce="sum"``, the reference code's ``add``) or with
    the mean over the atoms (``reduce="mean"``). ``mean`` and ``std`` are buffers, set from the
    training labels with :meth:`set_label_statistics`, so the MLP learns standardised labels.

    Args:
        embedding_dimension: ``F`` of the encoder, at least 2.
        activation: Of the MLP, one of :data:`zoo.denoising.et.ACTIVATIONS`.
        mean: Mean of the training labels.
        std: Standard deviation of the training labels.
        reduce: ``sum`` or ``mean`` over the atoms of a molecule.

    Shapes:
        - x: ``(n_atoms, F)``; batch: ``(n_atoms,)``, the molecule of each atom
        - output: ``(n_graphs,)``, ``n_graphs = num_graphs`` or ``batch.max() + 1``

    Example:
        >>> head = ScalarHead(8, mean=-6.5, std=0.6)
        >>> tuple(head(torch.randn(5, 8), torch.tensor([0, 0, 0, 1, 1])).shape)
        (2,)
    """

    def __init__(
        self,
        embedding_dimension: int = 256,
        activation: str = "silu",
        mean: float = 0.0,
        std: float = 1.0,
        reduce: str = "sum",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if embedding_dimension < 2:
            raise ValueError(
                f"{owner}: embedding_dimension must be at least 2 (the hidden layer has F/2 "
                f"units), got {embedding_dimension}"
            )
        _check_choice(owner, "reduce", reduce, ("sum", "mean"))
        self.reduce = reduce
        half = embedding_dimension // 2
        self.mlp = nn.Sequential(
            nn.Linear(embedding_dimension, half),
            _activation(owner, "activation", activation),
            nn.Linear(half, 1),
        )
        _xavier_(self)
        self.register_buffer("mean", torch.tensor(0.0))
        self.register_buffer("std", torch.tensor(1.0))
        self.set_label_statistics(mean, std)

    def set_label_statistics(self, mean: float, std: float) -> None:
        """Sets the label ``mean`` and ``std`` the outputs are mapped back with."""
        if not math.isfinite(mean):
            raise ValueError(f"ScalarHead: the label mean must be finite, got {mean}")
        if not (math.isfinite(std) and std > 0):
            raise ValueError(
                f"ScalarHead: the label std must be positive and finite, got {std}; a "
                "constant label needs no model"
            )
        self.mean.fill_(float(mean))
        self.std.fill_(float(std))

    def forward(
        self, x: torch.Tensor, batch: torch.Tensor, num_graphs: int | None = None
    ) -> torch.Tensor:
        n_graphs = int(batch.max()) + 1 if num_graphs is None else num_graphs
        atoms = self.mlp(x).squeeze(-1) * self.std  # (n_atoms,)

        out = atoms.new_zeros(n_graphs).index_add_(0, batch, atoms)
        if self.reduce == "mean":
            counts = torch.bincount(batch, minlength=n_graphs).clamp_min(1)
            out = out / counts.to(out.dtype)

        return out + self.mean
