"""Gaussian-process interpolators of the meta-train tasks, with hyperparameters shared across
tasks and fit by the summed log marginal likelihood.

MARS first turns each sparsely observed meta-train task into a distribution over functions;
the score network then learns from *samples* of these posteriors at random measurement sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["GPInterpolator", "log_marginal", "rbf"]


def rbf(
    x1: torch.Tensor, x2: torch.Tensor, lengthscale: torch.Tensor, variance: torch.Tensor
) -> torch.Tensor:
    """RBF kernel ``s² exp(-|x - x'|² / 2ℓ²)``.

    Shapes:
        ``(..., n, d)`` and ``(..., m, d)`` give ``(..., n, m)``.
    """
    distance = torch.cdist(x1 / lengthscale, x2 / lengthscale) ** 2
    return variance * torch.exp(-0.5 * distance)


@dataclass
class GPInterpolator:
    """Zero-mean GP posteriors of a set of tasks under one shared RBF kernel and noise level.

    Inputs and outputs are expected normalized with meta-level statistics.

    Attributes:
        xs: Context inputs of each task, ``(n_tasks, n, d)``.
        ys: Context outputs, ``(n_tasks, n)``.
        log_lengthscale, log_variance, log_noise: The shared hyperparameters.
    """

    xs: torch.Tensor
    ys: torch.Tensor
    log_lengthscale: torch.Tensor
    log_variance: torch.Tensor
    log_noise: torch.Tensor

    @classmethod
    def fit(
        cls, xs: torch.Tensor, ys: torch.Tensor, steps: int = 300, lr: float = 0.05
    ) -> GPInterpolator:
        """Fits the shared hyperparameters by maximizing the summed log marginal likelihood
        (Adam on the log-parameters, float64)."""
        params = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        with torch.no_grad():
            params[2] = math.log(0.1)  # start with little noise
        optimizer = torch.optim.Adam([params], lr=lr)
        for _ in range(steps):
            optimizer.zero_grad()
            loss = -log_marginal(xs, ys, *params.exp()).sum()
            loss.backward()
            optimizer.step()
        log_l, log_v, log_n = params.detach()
        return cls(xs, ys, log_l, log_v, log_n)

    @property
    def noise(self) -> float:
        return float(self.log_noise.exp())

    def log_marginal(self) -> torch.Tensor:
        """Log marginal likelihood of each task, ``(n_tasks,)``."""
        return log_marginal(
            self.xs,
            self.ys,
            self.log_lengthscale.exp(),
            self.log_variance.exp(),
            self.log_noise.exp(),
        )

    def posterior(self, tasks: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and covariance of the noise-free functions of some tasks.

        Args:
            tasks: Task indices, ``(b,)``.
            x: Measurement inputs per task, ``(b, k, d)``.

        Returns:
            Mean ``(b, k)`` and covariance ``(b, k, k)``.
        """
        lengthscale, variance = self.log_lengthscale.exp(), self.log_variance.exp()
        xs, ys = self.xs[tasks], self.ys[tasks]
        k_nn = rbf(xs, xs, lengthscale, variance) + self.log_noise.exp() ** 2 * _eye(xs)
        k_xn = rbf(x, xs, lengthscale, variance)
        chol = torch.linalg.cholesky(k_nn)
        alpha = torch.cholesky_solve(ys.unsqueeze(-1), chol)  # (b, n, 1)
        v = torch.linalg.solve_triangular(chol, k_xn.transpose(-1, -2), upper=False)
        mean = (k_xn @ alpha).squeeze(-1)
        cov = rbf(x, x, lengthscale, variance) - v.transpose(-1, -2) @ v
        return mean, cov

    def sample(
        self,
        tasks: torch.Tensor,
        x: torch.Tensor,
        n_samples: int,
        generator: torch.Generator | None = None,
        noisy: bool = True,
    ) -> torch.Tensor:
        """Posterior samples at the measurement inputs: ``(n_samples, b, k)``.

        Args:
            noisy: Sample observations (the function plus the fitted noise), whose covariance
                is bounded below by the noise variance, rather than the noise-free function.

        One Cholesky per measurement set serves all its samples.
        """
        mean, cov = self.posterior(tasks, x)
        jitter = self.log_noise.exp() ** 2 if noisy else 1e-8 * self.log_variance.exp()
        chol = torch.linalg.cholesky(cov + jitter * _eye(x))
        z = torch.randn((n_samples, *mean.shape), generator=generator, dtype=mean.dtype)
        return mean + (chol @ z.unsqueeze(-1)).squeeze(-1)


def log_marginal(
    xs: torch.Tensor,
    ys: torch.Tensor,
    lengthscale: torch.Tensor,
    variance: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    k = rbf(xs, xs, lengthscale, variance) + noise**2 * _eye(xs)
    chol = torch.linalg.cholesky(k)
    alpha = torch.cholesky_solve(ys.unsqueeze(-1), chol).squeeze(-1)
    n = ys.shape[-1]
    log_det = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (ys * alpha).sum(-1) - 0.5 * log_det - 0.5 * n * math.log(2 * math.pi)


def _eye(x: torch.Tensor) -> torch.Tensor:
    return torch.eye(x.shape[-2], dtype=x.dtype, device=x.device)
