"""The remeshing actor-critic of LAMP.

Before each evolution step the policy looks at the state on the current mesh and ``beta`` and
draws an action: a count ``K_s ∈ {0, …, max_action - 1}`` and ``K_s`` edges to split, drawn with
replacement from a softmax over the edges that can split, then a count ``K_c`` and ``K_c`` edges
to collapse among the edges not split. Duplicate draws merge, so at most ``K`` edges act. The
log-probability of an action is the sum of the two counts' and of every draw's log-probability.

References:
    Wu, Maruyama, Zhao, Wetzstein, Leskovec. "Learning Controllable Adaptive Simulation for
    Multi-resolution Physics." ICLR 2023. https://arxiv.org/abs/2305.01122
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.utils import scatter

from zoo.lamp import mesh
from zoo.lamp.gnn import MessagePassing, mlp

__all__ = ["Action", "Policy", "PolicyOutput"]

_OFF = -1e9  # logit of an edge that is not a candidate: finite, so rows without any stay finite


@dataclass
class Action:
    """One remeshing action per graph.

    Attributes:
        k_split, k_collapse: ``(n_graphs,)`` the drawn counts.
        split_draws, collapse_draws: ``(n_graphs, max_action - 1)`` the drawn edges (left
            vertex); draw ``d`` counts when ``d < k`` and the edge was a candidate.
        split_edges, collapse_edges: ``(n_graphs, n_grid)`` the edges that act (draws merged).
    """

    k_split: torch.Tensor
    split_draws: torch.Tensor
    k_collapse: torch.Tensor
    collapse_draws: torch.Tensor
    split_edges: torch.Tensor
    collapse_edges: torch.Tensor


@dataclass
class PolicyOutput:
    """Logits and value of the actor-critic for a batch of meshes.

    Attributes:
        k_split, k_collapse: ``(n_graphs, max_action)`` count logits.
        split, collapse: ``(n_graphs, n_grid)`` edge logits by left vertex (meaningful only at
            candidate edges).
        value: ``(n_graphs,)`` the critic's estimate of the return.
    """

    k_split: torch.Tensor
    k_collapse: torch.Tensor
    split: torch.Tensor
    collapse: torch.Tensor
    value: torch.Tensor


class Policy(nn.Module):
    """GNN actor-critic over the mesh, conditioned on ``beta``.

    A shared trunk (node encoder on the frames, a boundary flag and ``beta`` repeated
    ``beta_repeat`` times; edge encoder on ``[Δx, |Δx|]``; ``steps`` message-passing blocks with
    max aggregation) feeds two count heads (per-node MLP, mean pool, ``beta``, a linear layer,
    logits divided by ``count_temperature``), two edge heads (mean of the two end latents and
    ``beta``, an MLP, logit divided by ``edge_temperature``) and the value head (mean pool and
    ``beta``, a linear layer).

    Args:
        bundle: Frames per state.
        latent: Latent width.
        steps: Message-passing blocks.
        spacing: Lattice spacing in position units, as the evolution model's.
        max_action: Number of count classes (``K ≤ max_action - 1``).
        beta_repeat: Copies of ``beta`` in the node input.
        count_temperature: Divisor of the count logits (the paper's code: 50).
        edge_temperature: Divisor of the edge logits (the paper's code: 10).

    Shapes:
        - values: ``(n_graphs, n_grid, bundle)``, mask: ``(n_graphs, n_grid)``, beta:
          ``(n_graphs,)``
        - output: :class:`PolicyOutput`
    """

    def __init__(
        self,
        bundle: int = 25,
        latent: int = 64,
        steps: int = 3,
        spacing: float = 0.0016,
        max_action: int = 20,
        beta_repeat: int = 5,
        count_temperature: float = 50.0,
        edge_temperature: float = 10.0,
    ) -> None:
        super().__init__()
        self.spacing, self.max_action, self.beta_repeat = spacing, max_action, beta_repeat
        self.count_temperature, self.edge_temperature = count_temperature, edge_temperature
        self.encode_node = mlp(bundle + 1 + beta_repeat, latent, latent, 4)
        self.encode_edge = mlp(2, latent, latent, 4)
        self.blocks = nn.ModuleList(MessagePassing(latent, 3, "max") for _ in range(steps))
        self.k_split_node = mlp(latent, latent, latent, 2)
        self.k_split_head = nn.Linear(latent + 1, max_action)
        self.k_collapse_node = mlp(latent, latent, latent, 2)
        self.k_collapse_head = nn.Linear(latent + 1, max_action)
        self.split_head = mlp(latent + 1, latent, 1, 3)
        self.collapse_head = mlp(latent + 1, latent, 1, 3)
        self.value_head = nn.Linear(latent + 1, 1)

    def forward(
        self, values: torch.Tensor, mask: torch.Tensor, beta: torch.Tensor
    ) -> PolicyOutput:
        g = mesh.graph(mask)
        n_grid = mask.shape[-1]
        beta_nodes = beta[g.batch, None]
        x = torch.cat(
            [g.nodes(values), g.boundary[:, None], beta_nodes.expand(-1, self.beta_repeat)], -1
        )

        # --- trunk ---
        h = self.encode_node(x)
        e = self.encode_edge(g.edge_features(self.spacing))
        for block in self.blocks:
            h, e = block(h, e, g.edge_index)

        # --- counts and value, from mean-pooled latents ---
        def pooled(nodes: torch.Tensor) -> torch.Tensor:
            pool = scatter(nodes, g.batch, 0, dim_size=g.n_graphs, reduce="mean")
            return torch.cat([pool, beta[:, None]], -1)

        k_split = self.k_split_head(pooled(self.k_split_node(h))) / self.count_temperature
        k_collapse = self.k_collapse_head(pooled(self.k_collapse_node(h)))
        k_collapse = k_collapse / self.count_temperature
        value = self.value_head(pooled(h)).squeeze(-1)

        # --- edges, named by their left vertex ---
        left, right = g.edge_index[:, : g.edge_index.shape[1] // 2]
        edge = torch.cat([(h[left] + h[right]) / 2, beta_nodes[left]], -1)
        split = self.split_head(edge).squeeze(-1) / self.edge_temperature
        collapse = self.collapse_head(edge).squeeze(-1) / self.edge_temperature
        split = _by_left_vertex(split, g, left, n_grid)
        collapse = _by_left_vertex(collapse, g, left, n_grid)
        return PolicyOutput(k_split, k_collapse, split, collapse, value)

    def act(
        self,
        out: PolicyOutput,
        mask: torch.Tensor,
        sample: bool = True,
        generator: torch.Generator | None = None,
        given: Action | None = None,
    ) -> tuple[Action, torch.Tensor, torch.Tensor]:
        """Draws an action (or scores ``given``), with its log-probability and entropy.

        Args:
            out: The policy's output on ``mask``.
            mask: ``(n_graphs, n_grid)`` current meshes.
            sample: Draw counts and edges; ``False`` takes the most likely count and the top
                edges (no repeats).
            generator: Random source of the draws.
            given: Score this action instead of drawing one.

        Returns:
            The action, ``log π(action)`` ``(n_graphs,)`` and the policy entropy ``(n_graphs,)``
            (counts plus edge softmaxes).
        """
        split_candidates = mesh.split_candidates(mask)
        k_s, draws_s, edges_s, logp_s, entropy_s = _choose(
            out.k_split, out.split, split_candidates, sample, generator,
            None if given is None else (given.k_split, given.split_draws),
        )  # fmt: skip
        collapse_candidates = mesh.collapse_candidates(mask, edges_s)
        k_c, draws_c, edges_c, logp_c, entropy_c = _choose(
            out.k_collapse, out.collapse, collapse_candidates, sample, generator,
            None if given is None else (given.k_collapse, given.collapse_draws),
        )  # fmt: skip
        action = Action(k_s, draws_s, k_c, draws_c, edges_s, edges_c)
        return action, logp_s + logp_c, entropy_s + entropy_c


def _by_left_vertex(
    logits: torch.Tensor, g: mesh.Graph, left: torch.Tensor, n_grid: int
) -> torch.Tensor:
    """``(n_edges,)`` edge values → ``(n_graphs, n_grid)`` at each edge's left vertex."""
    dense = logits.new_full((g.n_graphs, n_grid), _OFF)
    dense[g.rows[left], g.columns[left]] = logits
    return dense


def _choose(
    k_logits: torch.Tensor,
    edge_logits: torch.Tensor,
    candidates: torch.Tensor,
    sample: bool,
    generator: torch.Generator | None,
    given: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A count, its draws of candidate edges, the merged edges, log-probability and entropy."""
    max_action = k_logits.shape[-1]
    none = ~candidates.any(-1)
    k_logits = k_logits.masked_fill(none[:, None] & (torch.arange(max_action) > 0), _OFF)
    log_pk = F.log_softmax(k_logits, -1)
    log_pe = F.log_softmax(edge_logits.masked_fill(~candidates, _OFF), -1)

    if given is not None:
        k, draws = given
    elif sample:
        k = torch.multinomial(log_pk.exp(), 1, generator=generator).squeeze(-1)
        draws = torch.multinomial(log_pe.exp(), max_action - 1, True, generator=generator)
    else:
        k = log_pk.argmax(-1)
        draws = log_pe.topk(min(max_action - 1, log_pe.shape[-1]), -1).indices

    counted = torch.arange(draws.shape[-1]) < k[:, None]
    counted &= candidates.gather(1, draws)
    edges = torch.zeros_like(candidates)
    edges[counted.nonzero(as_tuple=True)[0], draws[counted]] = True

    log_prob = log_pk.gather(1, k[:, None]).squeeze(-1) + (log_pe.gather(1, draws) * counted).sum(
        -1
    )
    p_e = log_pe.exp() * candidates
    entropy = -(log_pk.exp() * log_pk).sum(-1) - (p_e * log_pe).sum(-1)
    return k, draws, edges, log_prob, entropy
