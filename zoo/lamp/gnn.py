"""The graph networks of LAMP: MLPs, the message-passing block, and the evolution model.

References:
    Wu, Maruyama, Zhao, Wetzstein, Leskovec. "Learning Controllable Adaptive Simulation for
    Multi-resolution Physics." ICLR 2023. https://arxiv.org/abs/2305.01122
    Pfaff, Fortunato, Sanchez-Gonzalez, Battaglia. "Learning Mesh-Based Simulation with Graph
    Networks." ICLR 2021. https://arxiv.org/abs/2010.03409
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn
from torch_geometric.utils import scatter

from zoo.lamp import mesh

__all__ = ["EvolutionModel", "MessagePassing", "mlp"]


def mlp(
    n_in: int, hidden: int, n_out: int, layers: int, activation: type[nn.Module] = nn.SiLU
) -> nn.Sequential:
    """``layers`` linear layers ``n_in → hidden → … → n_out`` with ``activation`` between."""
    widths = [n_in] + [hidden] * (layers - 1) + [n_out]
    modules: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(widths)):
        modules.append(nn.Linear(a, b))
        if i < layers - 1:
            modules.append(activation())
    return nn.Sequential(*modules)


class MessagePassing(nn.Module):
    """One processor block: ``e'_ij = φ_e([h_i, h_j, e_ij])``, ``h_i ← h_i + φ_h([h_i, ⊕_j
    e'_ij])``, with ``⊕`` a sum (the evolution model) or a max (the policy).

    Args:
        latent: Width of node and edge latents.
        layers: Linear layers of each MLP.
        aggregation: ``sum``, ``mean`` or ``max``.

    Shapes:
        - h: ``(n_nodes, latent)``; e: ``(n_edges, latent)``; edge_index: ``(2, n_edges)``
        - output: ``(n_nodes, latent)`` and the new edge latents ``(n_edges, latent)``
    """

    def __init__(self, latent: int, layers: int = 3, aggregation: str = "sum") -> None:
        super().__init__()
        if aggregation not in ("sum", "mean", "max"):
            raise ValueError(
                f"MessagePassing: aggregation must be sum, mean or max, got {aggregation!r}"
            )
        self.aggregation = aggregation
        self.edge = mlp(3 * latent, latent, latent, layers)
        self.node = mlp(2 * latent, latent, latent, layers)

    def forward(
        self, h: torch.Tensor, e: torch.Tensor, edge_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        source, target = edge_index
        e = self.edge(torch.cat([h[target], h[source], e], -1))
        incoming = scatter(e, target, 0, dim_size=h.shape[0], reduce=self.aggregation)
        return h + self.node(torch.cat([h, incoming], -1)), e


class EvolutionModel(nn.Module):
    """``f_evo``: predicts the next bundle of frames at every vertex of whatever mesh it is given.

    Encode-process-decode: 4-layer node and edge encoders, ``steps`` applications of one shared
    message-passing block (sum aggregation), a 5-layer decoder whose output is divided by 10.
    Node input: the last ``bundle`` frames and a boundary flag; edge input: ``[Δx, |Δx|]`` in
    lattice units times ``spacing``.

    Args:
        bundle: Frames in and out (time bundling).
        latent: Latent width.
        steps: Message-passing steps.
        spacing: Lattice spacing in the model's position units (``16 / 100 / 100``: the domain
            divided by 100, as the paper's code).
        mlp_layers: Linear layers of each processor MLP.
        residual: Predict the change from the last input frame instead of absolute values.

    Shapes:
        - values: ``(n_graphs, n_grid, bundle)``, mask: ``(n_graphs, n_grid)``
        - output: ``(n_graphs, n_grid, bundle)``, zero off the mesh
    """

    def __init__(
        self,
        bundle: int = 25,
        latent: int = 64,
        steps: int = 3,
        spacing: float = 0.0016,
        mlp_layers: int = 3,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.bundle, self.steps, self.spacing, self.residual = bundle, steps, spacing, residual
        self.encode_node = mlp(bundle + 1, latent, latent, 4)
        self.encode_edge = mlp(2, latent, latent, 4)
        self.process = MessagePassing(latent, mlp_layers, "sum")
        self.decode = mlp(latent, latent, bundle, 5)

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        g = mesh.graph(mask)
        x = torch.cat([g.nodes(values), g.boundary[:, None]], -1)

        h = self.encode_node(x)
        e = self.encode_edge(g.edge_features(self.spacing))

        for _ in range(self.steps):
            h, e = self.process(h, e, g.edge_index)

        out = self.decode(h) / 10
        if self.residual:
            out = out + x[:, self.bundle - 1 : self.bundle]
        return g.dense(out, mask.shape[-1])
