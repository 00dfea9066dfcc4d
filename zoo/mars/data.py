"""Meta-learning environments: families of 1-d regression tasks, generated from seeds.

- ``sinusoid``: ``f(x) = a x + A sin(1.5 (x - x0)) + b`` with ``A ~ U(0.7, 1.3)``,
  ``x0 ~ N(0, 0.1²)``, ``b ~ N(5, 0.1²)``, ``a ~ N(0.5, 0.2²)``, inputs ``x ~ U(-4, 4)``,
  noise std 0.1 (the PACOH / MARS benchmark generator);
- ``oscillator``: the displacement of a damped, driven oscillator
  ``x'' + 2ζω x' + ω² x = F cos(ω_d t)`` on ``t ∈ [0, 10]`` from a random initial state, in
  closed form; ``ω ~ U(0.8, 1.6)``, ``ζ ~ U(0.05, 0.3)``, ``F ~ U(0, 0.5)``,
  ``ω_d ~ U(0.5, 2)``, noise std 0.05; non-stationary (the transient decays);
- ``gp-shift``: draws of a Gaussian process (RBF, length scale 1, variance 1) around the shared
  mean ``2.5 x + 7.5 sin(1.25 x)`` on ``x ∈ [-5, 5]``, noise std 0.1. Its finite marginals are
  Gaussian, so the true score is known in closed form.

Meta-train tasks hold a few noisy points each; meta-validation and meta-test tasks hold a few
noisy context points and 200 noisy query points. The three splits come from independent seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "ENVIRONMENTS",
    "Environment",
    "MetaTask",
    "environment",
    "gp_shift_covariance",
    "gp_shift_mean",
    "gp_shift_score",
    "sample_tasks",
]


@dataclass(frozen=True)
class MetaTask:
    """One regression task: context points, and (for evaluation tasks) query points.

    Shapes:
        - x: ``(n, x_dim)``, y: ``(n,)`` (context)
        - x_query: ``(n_query, x_dim)``, y_query: ``(n_query,)``
    """

    x: torch.Tensor
    y: torch.Tensor
    x_query: torch.Tensor | None = None
    y_query: torch.Tensor | None = None


@dataclass(frozen=True)
class Environment:
    """A task family and its benchmark sizes.

    Attributes:
        name: Environment name.
        low: Lower end of the input box.
        high: Upper end of the input box.
        noise: Observation noise standard deviation.
        n_train_tasks: Meta-train tasks.
        points_per_task: Points per meta-train task (and context points at meta-test).
    """

    name: str
    low: float
    high: float
    noise: float
    n_train_tasks: int
    points_per_task: int

    def functions(self, n: int, generator: torch.Generator):
        """``n`` random functions of the family, as one batched callable ``x -> (n, len(x))``."""
        return _FAMILIES[self.name](n, generator)


ENVIRONMENTS = {
    "sinusoid": Environment("sinusoid", -4.0, 4.0, 0.1, 20, 5),
    "oscillator": Environment("oscillator", 0.0, 10.0, 0.05, 30, 8),
    "gp-shift": Environment("gp-shift", -5.0, 5.0, 0.1, 20, 5),
}


def environment(name: str) -> Environment:
    """The environment called ``name``, with an error listing the known ones."""
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {name!r}; choose one of {sorted(ENVIRONMENTS)}")
    return ENVIRONMENTS[name]


def sample_tasks(
    env: Environment, n_tasks: int, n_context: int, n_query: int, seed: int
) -> list[MetaTask]:
    """Draws tasks of an environment: ``n_context`` noisy points each, plus ``n_query`` noisy
    query points when ``n_query > 0``. Float64 throughout."""
    generator = torch.Generator().manual_seed(seed)
    functions = env.functions(n_tasks, generator)
    n_points = n_context + n_query
    x = env.low + (env.high - env.low) * torch.rand(
        n_tasks, n_points, generator=generator, dtype=torch.float64
    )
    f = functions(x)  # (n_tasks, n_points)
    y = f + env.noise * torch.randn(f.shape, generator=generator, dtype=torch.float64)
    tasks = []
    for i in range(n_tasks):
        context = slice(0, n_context)
        query = slice(n_context, n_points)
        tasks.append(
            MetaTask(
                x[i, context, None],
                y[i, context],
                x[i, query, None] if n_query else None,
                y[i, query] if n_query else None,
            )
        )
    return tasks


def _sinusoid(n: int, generator: torch.Generator):
    def draw(shape: tuple[int, ...], mean: float, std: float) -> torch.Tensor:
        return mean + std * torch.randn(shape, generator=generator, dtype=torch.float64)

    amplitude = 0.7 + 0.6 * torch.rand(n, 1, generator=generator, dtype=torch.float64)
    phase, offset, slope = draw((n, 1), 0.0, 0.1), draw((n, 1), 5.0, 0.1), draw((n, 1), 0.5, 0.2)

    def functions(x: torch.Tensor) -> torch.Tensor:
        return slope * x + amplitude * torch.sin(1.5 * (x - phase)) + offset

    return functions


def _oscillator(n: int, generator: torch.Generator):
    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, 1, generator=generator, dtype=torch.float64)

    omega, zeta, force, drive = (
        uniform(0.8, 1.6),
        uniform(0.05, 0.3),
        uniform(0, 0.5),
        uniform(0.5, 2.0),
    )
    x0, v0 = torch.randn(2, n, 1, generator=generator, dtype=torch.float64)
    # Steady state F/R cos(ω_d t - φ), then the decaying transient that meets x0, v0.
    gain = torch.hypot(omega**2 - drive**2, 2 * zeta * omega * drive)
    lag = torch.atan2(2 * zeta * omega * drive, omega**2 - drive**2)
    damped = omega * torch.sqrt(1 - zeta**2)
    c1 = x0 - force / gain * torch.cos(-lag)
    c2 = (v0 + force / gain * drive * torch.sin(-lag) + zeta * omega * c1) / damped

    def functions(t: torch.Tensor) -> torch.Tensor:
        steady = force / gain * torch.cos(drive * t - lag)
        transient = torch.exp(-zeta * omega * t) * (
            c1 * torch.cos(damped * t) + c2 * torch.sin(damped * t)
        )
        return steady + transient

    return functions


def _gp_shift(n: int, generator: torch.Generator):
    # Each task's deviation from the shared mean is drawn on first evaluation, at its inputs.
    def functions(x: torch.Tensor) -> torch.Tensor:
        cov = gp_shift_covariance(x) + 1e-9 * torch.eye(x.shape[-1], dtype=x.dtype)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return gp_shift_mean(x) + (torch.linalg.cholesky(cov) @ z.unsqueeze(-1)).squeeze(-1)

    return functions


def gp_shift_covariance(x: torch.Tensor) -> torch.Tensor:
    """Covariance of ``gp-shift`` functions at inputs ``x`` (``(..., k)`` → ``(..., k, k)``)."""
    return torch.exp(-0.5 * (x.unsqueeze(-1) - x.unsqueeze(-2)) ** 2)


def gp_shift_mean(x: torch.Tensor) -> torch.Tensor:
    """The shared mean of ``gp-shift`` functions."""
    return 2.5 * x + 7.5 * torch.sin(1.25 * x)


def gp_shift_score(x: torch.Tensor, y: torch.Tensor, noise: float) -> torch.Tensor:
    """The exact score ``∇_y log p(y)`` of noisy ``gp-shift`` observations ``y`` at inputs
    ``x`` (both ``(..., k)``): ``-(K + σ² I)⁻¹ (y - m(x))``, raw units."""
    cov = gp_shift_covariance(x) + noise**2 * torch.eye(x.shape[-1], dtype=x.dtype)
    residual = (y - gp_shift_mean(x)).unsqueeze(-1)
    return -torch.linalg.solve(cov, residual).squeeze(-1)


_FAMILIES = {"sinusoid": _sinusoid, "oscillator": _oscillator, "gp-shift": _gp_shift}
