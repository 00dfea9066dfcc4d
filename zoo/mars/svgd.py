"""Function-space SVGD (Wang et al., 2019) with a learned prior score, on an ensemble of small
MLPs run as one ``torch.func.vmap`` call.

Each step draws measurement points (the task's context and points spread over the input box),
evaluates every particle there (``F``, ``(L, k)``), forms the posterior score
``∇_F log N(y | F_context, σ²) + s_prior(X, F)``, and moves the particles along
``φ_i = (1/L) Σ_j [k(F_j, F_i) ∇ log p(F_j) + ∇_{F_j} k(F_j, F_i)]`` with an RBF kernel
between function vectors, pushed to the weights by the chain rule.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, stack_module_state

__all__ = ["FSVGD", "TaskPosterior", "mlp"]

PriorScore = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mlp(x_dim: int = 1, hidden: int = 32, layers: int = 3) -> nn.Sequential:
    """The particle network: ``layers`` hidden layers of ``hidden`` ELU units."""
    modules: list[nn.Module] = []
    width = x_dim
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ELU()]
        width = hidden
    return nn.Sequential(*modules, nn.Linear(width, 1))


@dataclass
class TaskPosterior:
    """The particles of one fitted task and the predictive they define.

    The predictive at a point is the equal mixture of ``N(f_l(x), σ²)`` over particles ``l``.
    """

    params: dict[str, torch.Tensor]
    template: nn.Module
    noise: float

    def functions(self, x: torch.Tensor) -> torch.Tensor:
        """Every particle's function at ``x`` (``(n, x_dim)``): ``(L, n)``."""
        return _evaluate(self.template, self.params, x)

    def predict(self, x: torch.Tensor, noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixture mean and standard deviation at ``x``; ``noise=False`` for epistemic only."""
        with torch.no_grad():
            f = self.functions(x)
        variance = f.var(0, unbiased=False) + (self.noise**2 if noise else 0.0)
        return f.mean(0), variance.sqrt()

    def sample(self, x: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """Particle functions at ``x``: ``(n, len(x))`` (all particles when ``n`` is None)."""
        with torch.no_grad():
            f = self.functions(x)
        return f if n is None else f[:n]


class FSVGD:
    """Function-space SVGD for one regression task.

    Args:
        particles: Number of particle networks ``L``.
        steps: Optimizer steps.
        lr: Adam learning rate.
        bandwidth: RBF bandwidth ``h`` of the kernel between function vectors.
        noise: Observation noise ``σ`` of the likelihood.
        n_measurement: Points drawn from the input box per step.
        clip: Prior scores are clipped to ``[-clip, clip]``.
        hidden: Particle MLP width.
    """

    def __init__(
        self,
        particles: int = 10,
        steps: int = 2000,
        lr: float = 1e-3,
        bandwidth: float = 0.2,
        noise: float = 0.5,
        n_measurement: int = 10,
        clip: float = 10.0,
        hidden: int = 32,
    ) -> None:
        self.particles, self.steps, self.lr = particles, steps, lr
        self.bandwidth, self.noise, self.n_measurement = bandwidth, noise, n_measurement
        self.clip, self.hidden = clip, hidden

    def fit(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        prior_score: PriorScore | None,
        box: tuple[torch.Tensor, torch.Tensor],
        seed: int = 0,
    ) -> TaskPosterior:
        """Runs fSVGD on context points ``x`` (``(n, x_dim)``), ``y`` (``(n,)``).

        Args:
            prior_score: ``(X, F) -> score`` with ``X`` ``(L, k, x_dim)`` and ``F`` ``(L, k)``;
                ``None`` is the standard normal function-space prior (score ``-F``).
            box: Lower and upper corners of the input box, ``(x_dim,)`` each.
            seed: Seeds the particles and the measurement points.
        """
        return self.fit_many(x[None], y[None], prior_score, box, [seed])[0]

    def fit_many(
        self,
        xs: torch.Tensor,
        ys: torch.Tensor,
        prior_score: PriorScore | None,
        box: tuple[torch.Tensor, torch.Tensor],
        seeds: Sequence[int],
    ) -> list[TaskPosterior]:
        """Runs fSVGD on ``T`` tasks with the same number of context points at once: their
        ``T L`` particles are one vmapped ensemble and the prior score sees one batch.

        The tasks do not interact (Adam is elementwise and each task's kernel is its own), so
        task ``t`` gets what :meth:`fit` gives it with ``seed=seeds[t]``, up to rounding.

        Args:
            xs: Context inputs, ``(T, n, x_dim)``; ys: context outputs, ``(T, n)``.
            prior_score: As in :meth:`fit`, called with ``T L`` measurement sets.
            box: Lower and upper corners of the input box.
            seeds: One seed per task, for its particles and its measurement points.
        """
        n_tasks, n, x_dim = xs.shape
        if len(seeds) != n_tasks:
            raise ValueError(f"FSVGD.fit_many: {n_tasks} tasks but {len(seeds)} seeds")
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        networks = []
        with torch.random.fork_rng():
            for seed in seeds:
                torch.manual_seed(seed)
                networks += [mlp(x_dim, self.hidden).to(xs.dtype) for _ in range(self.particles)]
        params, _ = stack_module_state(networks)
        params = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        template = copy.deepcopy(networks[0]).to("meta")
        optimizer = torch.optim.Adam(params.values(), lr=self.lr)
        low, high = box
        for _ in range(self.steps):
            u = torch.stack(
                [
                    torch.rand(self.n_measurement, x_dim, generator=g, dtype=xs.dtype)
                    for g in generators
                ]
            )
            points = torch.cat([xs, low + (high - low) * u], dim=1)  # (T, k, x_dim)
            points = points.repeat_interleave(self.particles, 0)  # (T L, k, x_dim)
            f = _evaluate(template, params, points)  # (T L, k)
            phi = self._direction(f.detach(), ys, n, points, prior_score)
            optimizer.zero_grad()
            (-(f * phi).sum()).backward()
            optimizer.step()
        return [
            TaskPosterior(
                {
                    k: v.detach()[t * self.particles : (t + 1) * self.particles]
                    for k, v in params.items()
                },
                template,
                self.noise,
            )
            for t in range(n_tasks)
        ]

    def _direction(
        self,
        f: torch.Tensor,
        ys: torch.Tensor,
        n: int,
        points: torch.Tensor,
        prior_score: PriorScore | None,
    ) -> torch.Tensor:
        """The SVGD direction of every particle, ``(T L, k)``, from function values ``f``
        ``(T L, k)`` of the ``T`` tasks in ``ys``."""
        shape = (len(ys), self.particles, f.shape[-1])  # (T, L, k)
        if prior_score is None:
            prior = -f
        else:
            with torch.no_grad():
                prior = prior_score(points, f)
        prior = prior.clamp(-self.clip, self.clip).view(shape)
        f = f.view(shape)
        likelihood = torch.zeros_like(f)
        likelihood[..., :n] = (ys[:, None, :] - f[..., :n]) / self.noise**2
        score = likelihood + prior
        difference = f[:, :, None, :] - f[:, None, :, :]  # (T, L, L, k): F_i - F_j
        kernel = torch.exp(-(difference**2).sum(-1) / self.bandwidth)  # (T, L, L)
        repulsion = (2 / self.bandwidth) * (kernel[..., None] * difference).sum(2)
        return ((kernel @ score + repulsion) / shape[1]).flatten(0, 1)


def _evaluate(
    template: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    """Every particle's outputs, ``(P, k)``, at inputs ``x``: ``(k, x_dim)`` shared by all
    particles, or ``(P, k, x_dim)``, particle ``i`` at ``x[i]``."""

    def one(p: dict[str, torch.Tensor], points: torch.Tensor) -> torch.Tensor:
        return functional_call(template, p, (points,)).squeeze(-1)

    return torch.vmap(one, in_dims=(0, 0 if x.dim() == 3 else None))(params, x)
