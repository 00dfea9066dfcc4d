"""One metric code for every method: the predictive is a mixture of Gaussians per query point
(one component for a GP, one per particle for SVGD)."""

from __future__ import annotations

import math

import torch

__all__ = ["CALIBRATION_LEVELS", "calibration_error", "mixture_nll", "rmse"]

#: The 20 quantile levels of the calibration error.
CALIBRATION_LEVELS = torch.linspace(0.025, 0.975, 20, dtype=torch.float64)


def mixture_nll(y: torch.Tensor, means: torch.Tensor, stds: torch.Tensor | float) -> float:
    """Mean negative log density of ``y`` under the equal mixture ``(1/L) Σ_l N(means_l, std²)``.

    Shapes:
        - y: ``(n,)``; means: ``(L, n)``; stds: ``(L, n)``, ``(n,)`` or a float
    """
    stds = torch.as_tensor(stds, dtype=means.dtype).expand_as(means)
    log_density = -0.5 * ((y - means) / stds) ** 2 - torch.log(stds) - 0.5 * math.log(2 * math.pi)
    mixture = torch.logsumexp(log_density, dim=0) - math.log(means.shape[0])
    return float(-mixture.mean())


def rmse(y: torch.Tensor, means: torch.Tensor) -> float:
    """Root mean squared error of the mixture mean (the mean over components)."""
    return float(((means.mean(0) - y) ** 2).mean().sqrt())


def calibration_error(y: torch.Tensor, means: torch.Tensor, stds: torch.Tensor | float) -> float:
    """Mean over 20 levels ``q`` in [0.025, 0.975] of ``|P(CDF(y) <= q) - q|``, the CDF being
    the mixture's (with standard deviations, not variances)."""
    stds = torch.as_tensor(stds, dtype=means.dtype).expand_as(means)
    normal = torch.distributions.Normal(means, stds)
    cdf = normal.cdf(y.expand_as(means)).mean(0)  # (n,)
    levels = CALIBRATION_LEVELS.to(cdf)
    observed = (cdf[None, :] <= levels[:, None]).double().mean(1)
    return float((observed - levels).abs().mean())
