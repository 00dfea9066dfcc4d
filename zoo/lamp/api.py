"""The user API of ``lamp.burgers1d``: rollouts from an initial condition, the paper's table,
and plots.

Example:
    >>> import zoo                                                   # doctest: +SKIP
    >>> m = zoo.load("lamp")
    >>> ic = m.sample_initial_condition(seed=0)                      # (25, 100) frames 25..49
    >>> out = m.rollout(ic, steps=200, beta=0.2, init_mesh="uniform:4")
    >>> out.n_vertices, out.on_grid().shape                          # (8,), (200, 100)
    >>> rows = m.evaluate(beta=[0, 0.1, 0.2, 0.3, 0.5])              # the paper's table
    >>> m.plot_rollout(out), m.plot_tradeoff(rows)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoo.lamp import mesh
from zoo.lamp.policy import Action
from zoo.lamp.simulate import START_FRAME, Rollout, bundles, rollout

__all__ = ["LENGTH", "START_FRAME", "LampAPI", "LampRollout"]

LENGTH = 16.0  # period of the E2 domain
_USER_SEEDS = 1 << 20  # sample_trajectory's seeds start here, far from the data sets' streams


@dataclass(repr=False)
class LampRollout:
    """A rollout from :meth:`LampAPI.rollout`; one trajectory unless ``initial`` was batched.

    Attributes:
        masks: ``(n_steps, n, n_grid)`` the mesh each bundle was predicted on.
        values: ``(n_steps, n, n_grid, bundle)`` the predictions, zero off the mesh.
        actions: The policy's action before each step (empty for ``remesh=False``).
        beta: ``(n,)`` the trade-off used.
        batched: Whether the input had a batch dimension.
        initial_mask: ``(n, n_grid)`` the mesh before the first action.
    """

    masks: torch.Tensor
    values: torch.Tensor
    actions: list[Action]
    beta: torch.Tensor
    batched: bool
    initial_mask: torch.Tensor

    def __repr__(self) -> str:
        n_steps, n, _, bundle = self.values.shape
        vertices = self.masks.sum(-1).float()
        return (
            f"LampRollout({n} trajector{'y' if n == 1 else 'ies'}, {n_steps} steps of {bundle} "
            f"frames, vertices {vertices[0].mean():.1f} → {vertices[-1].mean():.1f} (mean "
            f"{vertices.mean():.1f}), remeshing {'on' if self.actions else 'off'})"
        )

    def _unbatch(self, x: torch.Tensor) -> torch.Tensor:
        """Drops the batch axis (first) of a single-trajectory rollout."""
        return x if self.batched else x[0]

    @property
    def positions(self) -> list[Any]:
        """Per step, the vertex positions in ``[0, 16)`` (per trajectory when batched)."""
        spacing = LENGTH / self.masks.shape[-1]
        per_step = [[m.nonzero().squeeze(-1) * spacing for m in step] for step in self.masks]
        return per_step if self.batched else [step[0] for step in per_step]

    @property
    def states(self) -> list[Any]:
        """Per step, the predicted bundle at the vertices: ``(n_vertices, bundle)``."""
        per_step = [
            [v[m] for v, m in zip(vs, ms, strict=True)]
            for vs, ms in zip(self.values, self.masks, strict=True)
        ]
        return per_step if self.batched else [step[0] for step in per_step]

    @property
    def n_vertices(self) -> torch.Tensor:
        """``(n_steps,)`` (``(n, n_steps)`` when batched) vertices of each step's mesh."""
        return self._unbatch(self.masks.sum(-1).T)

    @property
    def splits(self) -> torch.Tensor:
        """Edges split before each step, like :attr:`n_vertices` (zeros without remeshing)."""
        if not self.actions:
            return torch.zeros_like(self.n_vertices)
        return self._unbatch(torch.stack([a.split_edges.sum(-1) for a in self.actions], -1))

    @property
    def collapses(self) -> torch.Tensor:
        """Vertices deleted before each step (collapses left by the no-chain rule)."""
        counts = torch.cat([self.initial_mask[None], self.masks]).sum(-1)  # (n_steps + 1, n)
        before = counts[:-1].T + (self.splits if self.batched else self.splits[None])
        return self._unbatch(before - counts[1:].T)

    def on_grid(self) -> torch.Tensor:
        """The predictions interpolated to the grid: ``(n_steps · bundle, n_grid)`` (batched:
        ``(n, …)``), frames 50, 51, … for the paper's task."""
        return self._unbatch(Rollout(self.masks, self.values).on_grid())

    def error(self, truth: torch.Tensor) -> torch.Tensor:
        """The paper's cumulative MSE against ``truth`` on the grid, frames as :meth:`on_grid`:
        squared error summed over frames, averaged over grid vertices (per trajectory)."""
        truth = torch.as_tensor(truth, dtype=self.values.dtype)
        truth = truth if self.batched else truth[None]
        n_steps, _, _, bundle = self.values.shape
        target = bundles(truth, 0, n_steps, bundle)
        return self._unbatch(Rollout(self.masks, self.values).errors(target).sum(0))


class LampAPI:
    """Methods of :class:`~zoo.lamp.module.LampModule` that users call in notebooks."""

    hparams: Any

    # ----------------------------------------------------------------------------------------
    # Data

    def sample_trajectory(self, seed: int = 0, n: int | None = None) -> torch.Tensor:
        """A fresh E2 trajectory solved by our solver: ``(250, 100)`` (``(n, 250, 100)``).

        Seeds here are disjoint from those of the training, validation and test sets.
        """
        from zoo.lamp.burgers import generate

        u, _ = generate(1 if n is None else n, _USER_SEEDS + seed)
        u = torch.from_numpy(u)
        return u[0] if n is None else u

    def sample_initial_condition(self, seed: int = 0) -> torch.Tensor:
        """Frames 25..49 of :meth:`sample_trajectory`: the input of the paper's task,
        ``(25, 100)``."""
        return self.sample_trajectory(seed)[START_FRAME : START_FRAME + self.hparams.bundle]

    # ----------------------------------------------------------------------------------------
    # Rollouts

    def rollout(
        self,
        initial: torch.Tensor | np.ndarray,
        steps: int = 200,
        beta: float | Sequence[float] | torch.Tensor = 0.2,
        init_mesh: str | torch.Tensor = "uniform:4",
        *,
        sample: bool = True,
        remesh: bool = True,
        seed: int = 0,
    ) -> LampRollout:
        """Simulates ``steps`` frames from ``initial``, remeshing before each bundle.

        Args:
            initial: ``(bundle, n_grid)`` frames on the grid (or ``(n, bundle, n_grid)``);
                the initial mesh takes its values at its vertices.
            steps: Frames to predict, a multiple of the bundle (25).
            beta: Error-versus-cost trade-off in the trained range ``[0, 0.5]``: larger means
                fewer vertices. One value, or one per trajectory.
            init_mesh: ``"uniform:4"`` (25 vertices), ``"uniform:2"`` (50), ``"full"`` (100)
                or a boolean mask over the grid.
            sample: Sample the policy's actions, as the paper evaluates; ``False`` takes the
                most likely count and the top edges.
            remesh: ``False`` rolls the evolution model out on the initial mesh ("LAMP (no
                remeshing)").
            seed: Seed of the action sampling.
        """
        initial, batched = self._as_frames(initial)
        bundle = self.hparams.bundle
        if steps <= 0 or steps % bundle:
            raise ValueError(
                f"rollout: steps={steps} must be a positive multiple of the bundle ({bundle}); "
                f"the paper's task predicts 200 frames"
            )
        n, _, n_grid = initial.shape
        beta = self._as_beta(beta, n)
        mask = mesh.make_mask(init_mesh, n, n_grid)
        param = next(self.parameters())
        was_training = self.training
        self.eval()
        with torch.no_grad():
            out = rollout(
                self.evolution,
                bundles(initial.to(param.dtype), 0, 1, bundle)[0],
                mask,
                steps // bundle,
                policy=self.policy if remesh else None,
                beta=beta,
                sample=sample,
                generator=torch.Generator().manual_seed(seed),
            )
        self.train(was_training)
        return LampRollout(out.masks, out.states, out.actions, beta, batched, mask)

    def _as_frames(self, initial: Any) -> tuple[torch.Tensor, bool]:
        x = torch.as_tensor(initial, dtype=torch.float32)
        bundle = self.hparams.bundle
        if x.dim() not in (2, 3) or x.shape[-2] != bundle:
            raise ValueError(
                f"rollout: initial must be ({bundle}, n_grid) frames, or (n, {bundle}, n_grid), "
                f"got shape {tuple(x.shape)}; sample_initial_condition() gives one"
            )
        if not torch.isfinite(x).all():
            raise ValueError("rollout: initial holds NaN or infinite values")
        return (x, True) if x.dim() == 3 else (x[None], False)

    def _as_beta(self, beta: Any, n: int) -> torch.Tensor:
        beta = torch.as_tensor(beta, dtype=torch.float32).flatten()
        if beta.numel() == 1:
            beta = beta.expand(n).clone()
        if beta.numel() != n:
            raise ValueError(
                f"rollout: beta needs one value or one per trajectory ({n}), got {beta.numel()}"
            )
        low, high = 0.0, float(self.hparams.beta_max)
        if (beta < low).any() or (beta > high).any():
            warnings.warn(
                f"beta {beta.tolist()} is outside the trained range [{low}, {high}]: the policy "
                "extrapolates",
                stacklevel=3,
            )
        return beta

    # ----------------------------------------------------------------------------------------
    # The paper's table

    def evaluate(
        self,
        split: str = "test",
        datamodule: Any = None,
        *,
        beta: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.5),
        init_mesh: Sequence[str] = ("uniform:4", "uniform:2"),
        seed: int = 0,
        sample: bool = True,
        n: int | None = None,
    ) -> list[dict[str, Any]]:
        """Average vertices and cumulative MSE of LAMP for each ``beta`` and initial mesh, next
        to the same evolution model without remeshing and on the full grid.

        The metric is the paper's: from frames 25..49, predict 50..249, interpolate to the
        100-vertex grid, sum the squared error over the 200 frames, divide by 100, average over
        the trajectories. Every ``beta`` uses the same action seed.

        Args:
            split: ``test`` (128 trajectories in the recipe) or ``val``.
            datamodule: A :class:`~zoo.lamp.datamodule.LampDataModule`; the recipe's by default.
            beta: Trade-offs to evaluate.
            init_mesh: Initial meshes.
            seed: Seed of the action sampling.
            sample: Sample actions (the paper's evaluation) or take the most likely.
            n: Evaluate on the first ``n`` trajectories only.

        Returns:
            One row per (model, initial mesh, beta): ``model``, ``init_mesh``,
            ``initial_vertices``, ``beta``, ``average_vertices``, ``error``, and ``name`` /
            ``value`` / ``dataset`` for ``zoo export``.
        """
        from zoo.recipes import datamodule_from_recipe, recipe_of

        dm = datamodule or datamodule_from_recipe(recipe_of(self))
        truth = dm.trajectories(split)[:n]
        initial = truth[:, START_FRAME : START_FRAME + self.hparams.bundle]
        target = truth[:, START_FRAME + self.hparams.bundle :]
        steps = target.shape[1]
        dataset = f"E2 Burgers, {len(truth)} {split} trajectories"

        runs = []  # (model, initial mesh, beta); beta None: no remeshing
        for spec in init_mesh:
            runs.append(("LAMP (no remeshing)", spec, None))
            runs += [("LAMP", spec, float(b)) for b in beta]
        runs.append(("LAMP (no remeshing)", "full", None))

        rows = []
        for model, spec, b in runs:
            out = self.rollout(
                initial, steps, b or 0.0, spec, remesh=b is not None, sample=sample, seed=seed
            )
            n0 = int(out.initial_mask[0].sum())
            error = float(out.error(target).mean())
            name = f"{model} cumulative MSE from {n0} vertices"
            rows.append(
                {
                    "model": model,
                    "init_mesh": spec,
                    "initial_vertices": n0,
                    "beta": b,
                    "average_vertices": float(out.masks.sum(-1).float().mean()),
                    "error": error,
                    "name": name if b is None else f"{name}, beta {b:g}",
                    "value": error,
                    "dataset": dataset,
                }
            )
        return rows

    # ----------------------------------------------------------------------------------------
    # Plots and showcase

    def plot_rollout(
        self, out: LampRollout, truth: torch.Tensor | None = None, index: int = 0
    ) -> Any:
        """Space-time field of a rollout with its mesh, and the vertex count per step; with
        ``truth`` (frames as :meth:`LampRollout.on_grid`), the reference next to it.

        Returns:
            The matplotlib figure.
        """
        from zoo.lamp.plots import plot_rollout

        return plot_rollout(out, truth, index)

    def plot_tradeoff(
        self, rows: list[dict[str, Any]], baselines: list[dict[str, Any]] | None = None
    ) -> Any:
        """Error versus average vertices: LAMP over ``beta`` per initial mesh, the evolution
        model without remeshing at each resolution, and optional baseline rows (``model``,
        ``average_vertices``, ``error``).

        Returns:
            The matplotlib axes.
        """
        from zoo.lamp.plots import plot_tradeoff

        return plot_tradeoff(rows, baselines)

    def showcase(self, out_dir: Any) -> dict[str, Any]:
        """Rolls out one fresh trajectory from 25 vertices with remeshing, saves the plot and
        reports its cumulative MSE."""
        from pathlib import Path

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        truth = self.sample_trajectory(seed=0)
        start = START_FRAME + self.hparams.bundle
        out = self.rollout(truth[START_FRAME:start], steps=truth.shape[0] - start, beta=0.2)
        figure = self.plot_rollout(out, truth[start:])
        figure.savefig(out_dir / "rollout.png", dpi=120)
        return {
            "task": f"remesh and roll out a new E2 trajectory from 25 vertices (beta 0.2, "
            f"{float(out.n_vertices.float().mean()):.1f} vertices on average)",
            "metric": "cumulative MSE",
            "value": float(out.error(truth[start:])),
        }
