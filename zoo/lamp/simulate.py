"""Rollouts of the evolution model, with or without the remeshing policy, and the paper's metric.

States are bundles of frames on a mesh: ``values (n_graphs, n_grid, bundle)`` with a mask
``(n_graphs, n_grid)``. Ground truth comes as ``(n_graphs, n_frames, n_grid)`` arrays, the layout
the dataset stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from zoo.lamp import mesh
from zoo.lamp.gnn import EvolutionModel
from zoo.lamp.policy import Action, Policy

__all__ = ["START_FRAME", "Rollout", "bundle_error", "bundles", "rollout"]

START_FRAME = 25  #: the paper's task: frames 25..49 in, 50..249 predicted


def bundles(frames: torch.Tensor, start: int, count: int, bundle: int) -> torch.Tensor:
    """Frames ``start + k·bundle …`` as ``count`` bundles.

    Args:
        frames: ``(n_graphs, n_frames, n_grid)``.

    Returns:
        ``(count, n_graphs, n_grid, bundle)``.
    """
    window = frames[:, start : start + count * bundle]
    if window.shape[1] != count * bundle:
        raise ValueError(
            f"need frames {start}..{start + count * bundle - 1}, but the trajectories have "
            f"{frames.shape[1]} frames"
        )
    n_graphs, _, n_grid = frames.shape
    return window.reshape(n_graphs, count, bundle, n_grid).permute(1, 0, 3, 2)


def bundle_error(
    prediction: torch.Tensor, mask: torch.Tensor, truth: torch.Tensor
) -> torch.Tensor:
    """The paper's per-bundle error: the prediction interpolated linearly to the whole grid,
    squared error summed over the bundle's frames and averaged over the grid vertices.

    Args:
        prediction: ``(n_graphs, n_grid, bundle)`` on the mesh ``mask``.
        truth: ``(n_graphs, n_grid, bundle)`` on the grid.

    Returns:
        ``(n_graphs,)``; summed over bundles it is the cumulative MSE of the paper.
    """
    return (mesh.interpolate(prediction, mask) - truth).square().sum(-1).mean(-1)


@dataclass
class Rollout:
    """A rollout of ``n_steps`` bundles from one initial state per graph.

    Attributes:
        masks: ``(n_steps, n_graphs, n_grid)`` the mesh each bundle was predicted on.
        states: ``(n_steps, n_graphs, n_grid, bundle)`` the predictions, zero off the mesh.
        actions: The policy's actions, one per step (empty without remeshing).
        log_probs, entropies, values: ``(n_steps, n_graphs)`` from the policy (empty without).
    """

    masks: torch.Tensor
    states: torch.Tensor
    actions: list[Action] = field(default_factory=list)
    log_probs: torch.Tensor | None = None
    entropies: torch.Tensor | None = None
    values: torch.Tensor | None = None

    @property
    def n_vertices(self) -> torch.Tensor:
        """``(n_steps, n_graphs)`` vertex count of each step's mesh."""
        return self.masks.sum(-1)

    def on_grid(self) -> torch.Tensor:
        """Every prediction interpolated to the grid: ``(n_graphs, n_steps · bundle, n_grid)``."""
        n_steps, n_graphs, n_grid, bundle = self.states.shape
        grid = torch.stack(
            [mesh.interpolate(s, m) for s, m in zip(self.states, self.masks, strict=True)]
        )
        return grid.permute(1, 0, 3, 2).reshape(n_graphs, n_steps * bundle, n_grid)

    def errors(self, truth: torch.Tensor) -> torch.Tensor:
        """``(n_steps, n_graphs)`` :func:`bundle_error` against ``truth``
        ``(n_steps, n_graphs, n_grid, bundle)``."""
        return torch.stack(
            [bundle_error(s, m, t) for s, m, t in zip(self.states, self.masks, truth, strict=True)]
        )


def rollout(
    evolution: EvolutionModel,
    initial: torch.Tensor,
    mask: torch.Tensor,
    n_steps: int,
    *,
    policy: Policy | None = None,
    beta: torch.Tensor | None = None,
    sample: bool = True,
    generator: torch.Generator | None = None,
    grad_policy: bool = False,
    grad_evolution: bool = True,
) -> Rollout:
    """Rolls ``evolution`` out for ``n_steps`` bundles; with a policy, remeshes before each.

    Gradients flow where the caller's context allows them and the flags ask for them.

    Args:
        evolution: The evolution model.
        initial: ``(n_graphs, n_grid, bundle)`` the first input bundle, valid on ``mask``.
        mask: ``(n_graphs, n_grid)`` initial meshes.
        n_steps: Bundles to predict.
        policy: The remeshing policy; ``None`` keeps the initial mesh.
        beta: ``(n_graphs,)`` the trade-off given to the policy.
        sample: Sample actions (``False``: most likely count, top edges).
        generator: Random source of the actions.
        grad_policy: Keep the policy's graph (actor-critic updates).
        grad_evolution: Keep the evolution model's graph (evolution updates).
    """
    if policy is not None and beta is None:
        raise ValueError("rollout: a policy needs beta, one value per trajectory")
    state, masks, states = initial, [], []
    actions, log_probs, entropies, values = [], [], [], []
    for _ in range(n_steps):
        if policy is not None:
            with torch.set_grad_enabled(grad_policy and torch.is_grad_enabled()):
                out = policy(state.detach(), mask, beta)
                action, log_prob, entropy = policy.act(out, mask, sample, generator)
            mask, state = mesh.split(mask, state, action.split_edges)
            mask = mesh.collapse(mask, action.collapse_edges)  # names unsplit edges: unchanged
            actions.append(action)
            log_probs.append(log_prob)
            entropies.append(entropy)
            values.append(out.value)
        with torch.set_grad_enabled(grad_evolution and torch.is_grad_enabled()):
            state = evolution(state, mask)
        masks.append(mask)
        states.append(state)
    result = Rollout(torch.stack(masks), torch.stack(states), actions)
    if policy is not None:
        result.log_probs = torch.stack(log_probs)
        result.entropies = torch.stack(entropies)
        result.values = torch.stack(values)
    return result
