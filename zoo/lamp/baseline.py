"""The FNO baseline of the LAMP table: a 1D Fourier neural operator on a fixed uniform mesh.

The paper compares LAMP with CNN, FNO and MP-PDE models that see the field only at 25 or 50
uniform vertices of the 100-vertex lattice and predict the next bundle there. ``FNOBaseline``
is the FNO row, built from ``neuraloperator``'s ``FNO``: the last ``bundle`` frames at each
vertex are the input channels, the next ``bundle`` frames (absolute values) the output
channels. The domain is periodic and the vertices are evenly spaced across the wrap, so the
FFT needs no padding. No position channel is added: the E2 forcing has random phases, so the
data are statistically invariant under shifts, and without it the model is exactly
equivariant to shifts of the mesh.

Its error is measured as LAMP's: the prediction is put on the lattice with the uniform mask
and scored by :func:`~zoo.lamp.simulate.bundle_error`.

References:
    Wu, Maruyama, Zhao, Wetzstein, Leskovec. "Learning Controllable Adaptive Simulation for
    Multi-resolution Physics." ICLR 2023. https://arxiv.org/abs/2305.01122

    Li, Kovachki, Azizzadenesheli, Liu, Bhattacharya, Stuart, Anandkumar. "Fourier Neural
    Operator for Parametric Partial Differential Equations." ICLR 2021.
    https://arxiv.org/abs/2010.08895
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from zoo.lamp import mesh
from zoo.lamp.module import cosine_adam
from zoo.lamp.simulate import START_FRAME, bundle_error, bundles

__all__ = ["FNOBaseline"]

_N_GRID = 100  # vertices of the E2 lattice


class FNOBaseline(pl.LightningModule):
    """FNO1d on every ``stride``-th lattice vertex, rolled out bundle by bundle.

    Training sub-samples each window to the mesh and minimises the weighted MSE of a
    ``len(rollout_weights)``-bundle autoregressive rollout at the vertices (the batch's mesh
    mask is ignored). Validation and test roll out 8 bundles from frame 25 and log
    ``{stage}/error_{n_vertices}``, the paper's cumulative MSE.

    Args:
        stride: The mesh: every ``stride``-th of the 100 lattice vertices (4 gives 25, 2 gives
            50); must divide 100.
        bundle: Frames per bundle, in and out.
        modes: Fourier modes kept by each spectral convolution (of the real FFT), at most
            ``n_vertices // 2 + 1``.
        width: Hidden channels of the Fourier layers.
        layers: Fourier layers.
        rollout_weights: Loss weight of each predicted bundle of a training window.
        lr: Adam learning rate, annealed to zero by a cosine over the run.

    Example:
        >>> model = FNOBaseline(stride=4, modes=8, width=16, layers=2)
        >>> model(torch.zeros(3, 25, 25)).shape
        torch.Size([3, 25, 25])
    """

    def __init__(
        self,
        stride: int = 4,
        bundle: int = 25,
        modes: int = 12,
        width: int = 64,
        layers: int = 4,
        rollout_weights: tuple[float, ...] = (1.0, 0.1, 0.1, 0.1),
        lr: float = 1e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not 1 <= stride <= _N_GRID // 2 or _N_GRID % stride:
            raise ValueError(
                f"FNOBaseline: stride {stride} must divide {_N_GRID} and leave at least 2 "
                "vertices, so that the mesh is uniform across the periodic wrap (4 gives 25 "
                "vertices, 2 gives 50)"
            )
        self.n_vertices = _N_GRID // stride
        if not 1 <= modes <= self.n_vertices // 2 + 1:
            raise ValueError(
                f"FNOBaseline: modes {modes} must be between 1 and n_vertices // 2 + 1 = "
                f"{self.n_vertices // 2 + 1} for {self.n_vertices} vertices (stride {stride}); "
                "lower modes or the stride"
            )
        if not rollout_weights:
            raise ValueError("FNOBaseline: rollout_weights needs at least one bundle weight")

        from neuralop.models import FNO

        # neuralop counts modes over the full spectrum and keeps n_modes // 2 + 1 of the real
        # FFT: 2 * modes - 1 keeps exactly ``modes``
        self.fno = FNO(
            n_modes=(2 * modes - 1,),
            in_channels=bundle,
            out_channels=bundle,
            hidden_channels=width,
            n_layers=layers,
            positional_embedding=None,
        )
        # neuralop's models add their init kwargs (a class, a function) to the state dict under
        # "_metadata": not a tensor, so neither safetensors nor strict loading would take it
        self.register_state_dict_post_hook(_drop_neuralop_metadata)
        self.example_input_array = _example_input(self.n_vertices, bundle)

    @property
    def mesh_name(self) -> str:
        """The mesh as :func:`~zoo.lamp.mesh.make_mask` names it."""
        return f"uniform:{self.hparams.stride}"

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        """The next bundle at the mesh vertices.

        Args:
            values: The last ``bundle`` frames at each vertex.

        Returns:
            The next ``bundle`` frames, absolute values.

        Shapes:
            values: ``(batch, n_vertices, bundle)``; the output has the same shape.
        """
        return self.fno(values.transpose(1, 2)).transpose(1, 2)

    # ----------------------------------------------------------------------------------------
    # Training

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        weights = self.hparams.rollout_weights
        frames = batch["frames"][..., :: self.hparams.stride]
        truth = bundles(frames, 0, len(weights) + 1, self.hparams.bundle)
        state, loss = truth[0], 0.0
        for weight, target in zip(weights, truth[1:], strict=True):
            state = self(state)
            loss = loss + weight * (state - target).square().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=truth.shape[1])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        return cosine_adam(self)

    # ----------------------------------------------------------------------------------------
    # Evaluation: the paper's cumulative MSE

    def cumulative_error(self, frames: torch.Tensor) -> torch.Tensor:
        """The paper's metric per trajectory: from frames 25..49 predict the rest bundle by
        bundle, interpolate each prediction from the mesh to the lattice, and sum
        :func:`~zoo.lamp.simulate.bundle_error` over the bundles.

        Args:
            frames: ``(n_graphs, n_frames, 100)`` whole trajectories (250 frames in E2).

        Returns:
            ``(n_graphs,)``.
        """
        bundle, stride = self.hparams.bundle, self.hparams.stride
        n_steps = (frames.shape[1] - START_FRAME) // bundle - 1
        truth = bundles(frames, START_FRAME, n_steps + 1, bundle)  # (1 + n_steps, n, n_grid, b)
        n, n_grid = frames.shape[0], frames.shape[2]
        mask = mesh.make_mask(self.mesh_name, n, n_grid)

        state = truth[0][:, ::stride]
        error = frames.new_zeros(n)
        for target in truth[1:]:
            state = self(state)
            dense = state.new_zeros(n, n_grid, bundle)
            dense[:, ::stride] = state
            error = error + bundle_error(dense, mask, target)
        return error

    def _evaluation_step(self, batch: Any, stage: str) -> None:
        (frames,) = batch
        error = self.cumulative_error(frames).mean()
        name = f"{stage}/error_{self.n_vertices}"
        self.log(name, error, batch_size=frames.shape[0], sync_dist=True)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    @torch.no_grad()
    def evaluate(self, datamodule: Any = None, split: str = "test") -> list[dict[str, Any]]:
        """The FNO row of the paper's table: cumulative MSE on the recipe's test trajectories.

        Args:
            datamodule: A :class:`~zoo.lamp.datamodule.LampDataModule`; the recipe's by default.
            split: ``test`` or ``val``.

        Returns:
            One row: ``name``, ``value`` (mean over trajectories), ``dataset``.
        """
        if split not in ("test", "val"):
            raise ValueError(f"FNOBaseline.evaluate: split must be 'test' or 'val', got {split!r}")
        if datamodule is None:
            from zoo.recipes import datamodule_from_recipe, recipe_of

            datamodule = datamodule_from_recipe(recipe_of(self))
        frames = datamodule.trajectories(split).to(self.device)
        value = self.cumulative_error(frames).mean().item()
        return [
            {
                "name": f"FNO cumulative MSE, {self.n_vertices} vertices",
                "value": value,
                "dataset": f"E2 Burgers, {len(frames)} {split} trajectories",
            }
        ]


def _drop_neuralop_metadata(
    module: torch.nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    state_dict.pop("_metadata", None)


def _example_input(n_vertices: int, bundle: int) -> torch.Tensor:
    """A small fixed probe: one travelling sine, rounded so that its JSON stays short."""
    x = torch.arange(n_vertices) / n_vertices
    t = torch.arange(bundle)[:, None] / bundle
    values = torch.sin(2 * torch.pi * (x + 0.1 * t)).T  # (n_vertices, bundle)
    return (values * 64).round()[None] / 64
