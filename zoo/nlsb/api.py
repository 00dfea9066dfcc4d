"""What users call on a loaded ``nlsb`` model: sample paths, marginals, the learned fields,
the paper's evaluation and the plots. Inputs and outputs are in data coordinates."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn

from zoo.nlsb.sde import euler_maruyama

__all__ = ["NLSBApiMixin"]


class NLSBApiMixin:
    """Sampling, fields, evaluation and plots for :class:`~zoo.nlsb.module.NLSBModule`."""

    # -- sampling ---------------------------------------------------------------------------

    @torch.no_grad()
    def sample_trajectories(
        self,
        x0: torch.Tensor,
        t: Sequence[float] | torch.Tensor,
        n_repeat: int = 1,
        dt: float | None = None,
        seed: int | None = None,
        v: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample paths from ``x0`` at ``t[0]``, recorded at every time of ``t``.

        Args:
            x0: Starting points, ``(n, dim)``, in data coordinates.
            t: Increasing times, the first the starting time.
            n_repeat: Independent paths per starting point.
            dt: Euler–Maruyama step; the training step by default.
            seed: Seed of the Brownian increments (``None``: a fresh draw).
            v: Velocities of the starting points (cellular Lagrangian only).

        Returns:
            ``(len(t), n, n_repeat, dim)``; index 0 holds ``x0``.
        """
        x0 = self._check_points(x0, "x0")
        times = self._check_times(t)
        if n_repeat < 1:
            raise ValueError(f"n_repeat must be at least 1, got {n_repeat}")
        dt = self._check_dt(dt)
        generator = self._generator(seed)
        n, dim = x0.shape
        x = self._to_model(x0).repeat_interleave(n_repeat, dim=0)
        v = self._velocity(v, n).repeat_interleave(n_repeat, dim=0) if v is not None else None
        if v is None and self.sde.lagrangian.uses_velocity:
            raise ValueError("this model's cellular Lagrangian needs v, the starting velocities")
        frames = [x]
        for t0, t1 in itertools.pairwise(times):
            x = euler_maruyama(
                self.sde, x, t0, t1, dt, v=v, regularize=False, generator=generator
            ).x
            frames.append(x)
        out = torch.stack([self._to_data(f) for f in frames])
        return out.reshape(len(times), n, n_repeat, dim)

    @torch.no_grad()
    def marginals(
        self,
        t: Sequence[float] | torch.Tensor,
        n: int = 1000,
        seed: int | None = None,
        dt: float | None = None,
    ) -> dict[float, torch.Tensor]:
        """Samples of the model's marginal at each time, started from the stored base sample.

        Args:
            t: Increasing times at or after the base time.
            n: Samples per time (drawn from the base sample, with replacement beyond its size).
            seed: Seed of the draw and of the Brownian increments.
            dt: Euler–Maruyama step.

        Returns:
            ``{time: (n, dim)}``, in data coordinates.
        """
        times = self._check_times(t, at_least=1)
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        t_base = self.times[0]
        if times[0] < t_base:
            raise ValueError(f"marginals start at the base time {t_base}; got t = {times[0]}")
        generator = self._generator(seed)
        index = torch.randint(len(self.base), (n,), generator=generator)
        x0 = self._to_data(self.base[index])
        v = self.base_velocity[index] if self.sde.lagrangian.uses_velocity else None
        grid = [t_base, *times] if times[0] > t_base else times
        paths = self.sample_trajectories(x0, grid, dt=dt, seed=_next_seed(generator), v=v)
        frames = paths[:, :, 0]
        offset = len(grid) - len(times)
        return {float(s): frames[i + offset] for i, s in enumerate(times)}

    # -- the learned fields -----------------------------------------------------------------

    @torch.no_grad()
    def drift(self, x: torch.Tensor, t: float, v: torch.Tensor | None = None) -> torch.Tensor:
        """f(x, t) in data units, ``(n, dim)``."""
        x = self._check_points(x, "x")
        v = self._velocity(v, len(x)) if v is not None else None
        return self.sde.drift(self._to_model(x), float(t), v) * self.std

    @torch.no_grad()
    def diffusion(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """The diagonal of g(x, t) in data units, ``(n, dim)``."""
        x = self._check_points(x, "x")
        return self.sde.diffusion(self._to_model(x), float(t)) * self.std

    @torch.no_grad()
    def potential(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Φ(x, t) (of the standardised coordinates), ``(n,)``."""
        x = self._check_points(x, "x")
        return self.sde.potential(self._to_model(x), float(t))

    # -- evaluation and plots ---------------------------------------------------------------

    def evaluate(self, datamodule: Any = None, **kwargs: Any) -> Any:
        """The paper's MDD and CDD on the test split, with the noise floor; see
        :func:`zoo.nlsb.evaluate.evaluate`. Prints as a table."""
        from zoo.nlsb.evaluate import evaluate

        return evaluate(self, datamodule, **kwargs)

    def plot_trajectories(self, **kwargs: Any) -> Any:
        """Sample paths over the snapshots; see :func:`zoo.nlsb.plots.plot_trajectories`."""
        from zoo.nlsb.plots import plot_trajectories

        return plot_trajectories(self, **kwargs)

    def plot_marginals(self, **kwargs: Any) -> Any:
        """Model marginals next to the data's; see :func:`zoo.nlsb.plots.plot_marginals`."""
        from zoo.nlsb.plots import plot_marginals

        return plot_marginals(self, **kwargs)

    def plot_conditional(self, **kwargs: Any) -> Any:
        """Conditional paths against the truth's; see :func:`zoo.nlsb.plots.plot_conditional`."""
        from zoo.nlsb.plots import plot_conditional

        return plot_conditional(self, **kwargs)

    def plot_potential(self, **kwargs: Any) -> Any:
        """The learned potential Φ(x, t); see :func:`zoo.nlsb.plots.plot_potential`."""
        from zoo.nlsb.plots import plot_potential

        return plot_potential(self, **kwargs)

    def showcase(self, out_dir: Any) -> dict[str, Any]:
        """Marginal W1 of fresh samples against exact ones, and the plots."""
        from zoo.nlsb.plots import showcase

        return showcase(self, out_dir)

    # -- checks and coordinates -------------------------------------------------------------

    def _check_points(self, x: Any, name: str) -> torch.Tensor:
        dim = self.hparams.dim
        x = torch.as_tensor(x, dtype=self.base.dtype, device=self.base.device)
        if x.dim() == 1 and dim == 1:
            raise ValueError(f"{name} must have shape (n, {dim}); reshape with {name}[:, None]")
        if x.dim() != 2 or x.shape[1] != dim:
            raise ValueError(
                f"{name} must have shape (n, {dim}) for this {dim}-D model, got {tuple(x.shape)}"
            )
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        return x

    def _check_times(self, t: Any, at_least: int = 2) -> list[float]:
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.dim() != 1 or len(t) < at_least:
            raise ValueError(f"t must be a 1-D sequence of at least {at_least} times, got {t}")
        if not torch.isfinite(t).all():
            raise ValueError(f"t holds NaN or infinite values: {t.tolist()}")
        if len(t) > 1 and not (t[1:] > t[:-1]).all():
            raise ValueError(f"t must be strictly increasing, got {t.tolist()}")
        times = [float(s) for s in t]
        low, high = self.times[0], self.times[-1]
        if times[0] < low - 1e-9 or times[-1] > high + 1e-9:
            rank_zero_warn(
                f"t spans [{times[0]:g}, {times[-1]:g}] beyond the trained range "
                f"[{low:g}, {high:g}]: the model extrapolates there"
            )
        return times

    def _check_dt(self, dt: float | None) -> float:
        if dt is None:
            return float(self.hparams.dt)
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number, got {dt!r}")
        return float(dt)

    def _velocity(self, v: Any, n: int) -> torch.Tensor:
        v = self._check_points(v, "v")
        if len(v) != n:
            raise ValueError(f"v must have one row per starting point ({n}), got {len(v)}")
        return v / self.std

    def _generator(self, seed: int | None) -> torch.Generator:
        generator = torch.Generator(device=self.base.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        return generator

    def _to_model(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def _to_data(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


def _next_seed(generator: torch.Generator) -> int:
    return int(torch.randint(2**62, (), generator=generator))
