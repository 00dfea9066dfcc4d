"""FAB's synthetic targets: the 40-mode Gaussian mixture and the Many Well energies.

Both have exact samples and a known normalising constant, so the flow's density, the
log Z estimates and the mode coverage can be scored against the truth.

References:
    Midgley, Stimper, Simm, Schölkopf, Hernández-Lobato, "Flow Annealed Importance Sampling
    Bootstrap", ICLR 2023, arXiv:2208.01893.
    Noé, Olsson, Köhler, Wu, "Boltzmann generators: Sampling equilibrium states of many-body
    systems with deep learning", Science 2019, arXiv:1812.01729 (the double well).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch
from torch import nn

__all__ = ["GMM40", "TARGETS", "ManyWell", "Target", "target"]

_LOG_2PI = math.log(2 * math.pi)


class Target(nn.Module):
    """Base class: an (unnormalised) density p on R^dim, with exact samples, a known log Z and
    known modes where ``exact`` (the synthetic targets; alanine dipeptide has none of them).

    The state lives in non-persistent buffers, so ``.to(dtype)`` and ``.to(device)`` move a
    target and checkpoints of a model holding one stay free of it.

    Attributes:
        dim: Dimension of x.
        log_Z: log ∫ p, 0.0 for a normalised target, NaN where unknown.
        n_modes: Number of modes.
        exact: Whether ``sample``, ``log_Z`` and the modes are available.

    Shapes:
        - x: ``(n, dim)``; ``log_prob(x)``: ``(n,)``; ``modes``: ``(n_modes, dim)``;
          ``mode_counts(x)``: ``(n_modes,)``
    """

    dim: int
    log_Z: float
    n_modes: int
    exact: bool = True

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    @property
    def modes(self) -> torch.Tensor:
        raise NotImplementedError

    def mode_counts(self, x: torch.Tensor) -> torch.Tensor:
        """Points ``(n, dim)`` per mode (the nearest centre), ``(n_modes,)``."""
        nearest = torch.cdist(x, self.modes.to(x)).argmin(-1)
        return torch.bincount(nearest, minlength=self.n_modes)

    @property
    def mode_weights(self) -> torch.Tensor:
        """Probability mass of each mode, ``(n_modes,)``: equal unless a target says otherwise."""
        return torch.full((self.n_modes,), 1.0 / self.n_modes, dtype=torch.float64)

    def modes_covered(self, x: torch.Tensor, fraction: float = 0.1) -> int:
        """Number of modes holding at least ``fraction`` of their fair share.

        A mode's fair share is ``len(x)`` times its mass, ``len(x) / n_modes`` for equal modes.
        """
        counts = self.mode_counts(x).cpu()
        return int((counts >= fraction * len(x) * self.mode_weights.cpu()).sum())


class GMM40(Target):
    """The paper's 2-D mixture of 40 equal-weight Gaussians, normalised.

    Means (U - 0.5)·80 with U = ``torch.rand(40, 2)`` from a generator seeded with 0 (the same
    values as after ``torch.manual_seed(0)``); every component has diagonal std softplus(1).

    Args:
        n_modes: Number of components.
        dim: Dimension.
        loc_scaling: Means are uniform on [-loc_scaling, loc_scaling]^dim.
        seed: Seed of the means.
        min_log_prob: log p below this value is set to -inf, as in the paper's code (far from
            every mode the mixture underflows anyway); ``None`` keeps the exact values.
    """

    log_Z = 0.0

    def __init__(
        self,
        n_modes: int = 40,
        dim: int = 2,
        *,
        loc_scaling: float = 40.0,
        seed: int = 0,
        min_log_prob: float | None = -1e4,
    ) -> None:
        super().__init__()
        self.n_modes, self.dim, self.min_log_prob = n_modes, dim, min_log_prob
        u = torch.rand(n_modes, dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("means", (u - 0.5) * 2 * loc_scaling, persistent=False)
        self.register_buffer("std", nn.functional.softplus(torch.ones(dim)), persistent=False)

    @property
    def modes(self) -> torch.Tensor:
        return self.means

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) by a logsumexp over the components, ``(n, dim) -> (n,)``."""
        u = (x.unsqueeze(-2) - self.means) / self.std  # (n, n_modes, dim)
        log_n = -0.5 * (u**2).sum(-1) - self.std.log().sum() - 0.5 * self.dim * _LOG_2PI
        log_p = torch.logsumexp(log_n, -1) - math.log(self.n_modes)
        if self.min_log_prob is None:
            return log_p
        return log_p.masked_fill(log_p < self.min_log_prob, -math.inf)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact samples, ``(n, dim)``."""
        means = self.means
        k = torch.randint(self.n_modes, (n,), generator=generator, device=means.device)
        eps = torch.randn(n, self.dim, generator=generator, dtype=means.dtype, device=means.device)
        return means[k] + self.std * eps


# The 1-D well f(x) = exp(-(x⁴ - 6x² - 0.5x)) of each Many Well pair: quadrature constants and
# a rejection sampler whose proposal g is a two-Gaussian mixture centred on the minima.
_WELL_SIGMA = 0.42  # proposal std: acceptance ≈ 0.49 (the best is ≈ 0.50 near 0.41)


def _well_energy(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    return x**4 - 6 * x**2 - 0.5 * x


@cache
def _well_constants() -> dict[str, float]:
    """Stationary points, Z1 = ∫ f by quadrature, the weight of the left well, the envelope M.

    The envelope bounds f/g with g = w₋N(μ₋, σ²) + w₊N(μ₊, σ²) ≥ w_k N(μ_k, σ²), so
    f/g ≤ min_k f/(w_k N_k). Each h_k = log f - log(w_k N_k) is a quartic in x with leading
    term -x⁴, and h₋ - h₊ is linear and increasing: h₊ is the smaller right of their crossing
    x_c, h₋ left of it. log M is the larger of max h₊ on [x_c, ∞) and max h₋ on (-∞, x_c],
    each found among the real roots of the cubic h_k' and the end point x_c.
    """
    roots = np.sort(np.roots([4.0, 0.0, -12.0, -0.5]).real)
    for _ in range(3):  # Newton steps take the roots to machine precision
        roots = roots - (4 * roots**3 - 12 * roots - 0.5) / (12 * roots**2 - 12)
    low, barrier, high = (float(r) for r in roots)
    grid = np.linspace(-6.0, 6.0, 240_001)  # f < e^-1000 beyond ±6
    f = np.exp(-_well_energy(grid))
    step = grid[1] - grid[0]
    z1 = float(f.sum() * step)  # the end points are negligible: a plain sum is the trapezoid rule
    w_low = float(f[grid <= barrier].sum() * step / z1)

    s2 = _WELL_SIGMA**2
    quartics, consts = [], []
    for mu, w in ((low, w_low), (high, 1 - w_low)):
        c = math.log(_WELL_SIGMA * math.sqrt(2 * math.pi) / w)
        quartics.append(np.poly1d([-1.0, 0.0, 6 + 0.5 / s2, 0.5 - mu / s2, mu**2 / (2 * s2) + c]))
        consts.append(c)
    x_c = s2 * ((high**2 - low**2) / (2 * s2) - (consts[0] - consts[1])) / (high - low)
    log_m = -math.inf
    for h, right in ((quartics[1], True), (quartics[0], False)):
        crit = [r.real for r in h.deriv().roots if abs(r.imag) < 1e-12]
        crit = [r for r in crit if (r >= x_c) == right] + [x_c]
        log_m = max(log_m, max(float(h(r)) for r in crit))
    return {"low": low, "barrier": barrier, "high": high, "z1": z1, "w_low": w_low, "log_m": log_m}


def _sample_well(
    n: int, generator: torch.Generator | None, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``n`` exact draws from f / Z1 by rejection from the two-Gaussian proposal."""
    k = _well_constants()
    accept_rate = k["z1"] / math.exp(k["log_m"])
    kept, n_kept = [], 0
    while n_kept < n:
        m = int(1.2 * (n - n_kept) / accept_rate) + 16
        left = torch.rand(m, generator=generator, dtype=dtype, device=device) < k["w_low"]
        centre = torch.tensor([k["high"], k["low"]], dtype=dtype, device=device)[left.long()]
        x = centre + _WELL_SIGMA * torch.randn(m, generator=generator, dtype=dtype, device=device)
        log_g = torch.logaddexp(
            math.log(k["w_low"]) - 0.5 * ((x - k["low"]) / _WELL_SIGMA) ** 2,
            math.log(1 - k["w_low"]) - 0.5 * ((x - k["high"]) / _WELL_SIGMA) ** 2,
        ) - math.log(_WELL_SIGMA * math.sqrt(2 * math.pi))
        log_u = torch.rand(m, generator=generator, dtype=dtype, device=device).log()
        x = x[log_u < -_well_energy(x) - k["log_m"] - log_g]
        kept.append(x)
        n_kept += len(x)
    return torch.cat(kept)[:n]


class ManyWell(Target):
    """Many Well: d/2 independent double wells, log p = -Σᵢ (x₁⁴ - 6x₁² - 0.5x₁ + 0.5x₂²).

    Pairs are consecutive coordinates (x₀, x₁), (x₂, x₃), …; the first of each pair is the
    double-well coordinate, the second a standard normal. There are 2^(d/2) modes, at the two
    minima μ₋ ≈ -1.711, μ₊ ≈ 1.753 of each pair's first coordinate (x₂ = 0), and
    log Z = (d/2)(log Z1 + ½ log 2π) with Z1 = ∫ exp(-(x⁴ - 6x² - 0.5x)) dx ≈ 11784.509.

    Args:
        dim: Dimension, even (6 and 32 in the paper).

    Mode ``k`` has μ₊ in pair ``i`` when bit ``i`` of ``k`` is set; ``mode_counts`` sorts a
    point by which side of the barrier (x ≈ -0.042) each pair's first coordinate lies.
    """

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"ManyWell needs an even dim >= 2, got dim={dim}")
        k = _well_constants()
        self.dim, self.n_wells = dim, dim // 2
        self.n_modes = 2**self.n_wells
        self.log_Z = self.n_wells * (math.log(k["z1"]) + 0.5 * _LOG_2PI)
        self.minima = (k["low"], k["high"])
        # carries the dtype and device of samples and modes (.to() moves it)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)
        self.barrier = k["barrier"]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised log p(x), ``(n, dim) -> (n,)``."""
        pairs = x.reshape(*x.shape[:-1], self.n_wells, 2)
        x1, x2 = pairs[..., 0], pairs[..., 1]
        return -(_well_energy(x1) + 0.5 * x2**2).sum(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact samples, ``(n, dim)``."""
        dtype, device = self._anchor.dtype, self._anchor.device
        x1 = _sample_well(n * self.n_wells, generator, dtype, device)
        x2 = torch.randn(n * self.n_wells, generator=generator, dtype=dtype, device=device)
        return torch.stack([x1, x2], -1).reshape(n, self.dim)

    @property
    def modes(self) -> torch.Tensor:
        centres = torch.zeros(self.n_modes, self.n_wells, 2, dtype=self._anchor.dtype)
        centres[..., 0] = torch.tensor(self.minima, dtype=centres.dtype)[self._bits()]
        return centres.reshape(self.n_modes, self.dim).to(self._anchor.device)

    @property
    def mode_weights(self) -> torch.Tensor:
        w_low = _well_constants()["w_low"]
        return torch.where(self._bits() == 1, 1 - w_low, w_low).to(torch.float64).prod(-1)

    def mode_counts(self, x: torch.Tensor) -> torch.Tensor:
        self._check_countable()
        bits = (x[:, 0::2] > self.barrier).long()
        index = (bits << torch.arange(self.n_wells, device=x.device)).sum(-1)
        return torch.bincount(index, minlength=self.n_modes)

    def _bits(self) -> torch.Tensor:
        """Bit ``i`` of mode ``k`` (1: pair ``i`` in the right well), ``(n_modes, n_wells)``."""
        self._check_countable()
        return (torch.arange(self.n_modes).unsqueeze(-1) >> torch.arange(self.n_wells)) & 1

    def _check_countable(self) -> None:
        if self.n_wells > 24:
            raise ValueError(
                f"ManyWell(dim={self.dim}) has 2^{self.n_wells} modes, too many to list or "
                "count; count modes per pair instead (the sign pattern of x[:, 0::2])"
            )


#: Names accepted by :func:`target`.
TARGETS = ("gmm40", "manywell6", "manywell32", "aldp")


def target(name: str) -> Target:
    """Build a target by name: ``gmm40``, ``manywell6``, ``manywell32`` or ``aldp`` (alanine
    dipeptide, :class:`~zoo.fab.alanine.AlanineDipeptide`, imported on first use).

    >>> target("manywell6").n_modes
    8
    """
    if name == "gmm40":
        return GMM40()
    if name.startswith("manywell") and name in TARGETS:
        return ManyWell(int(name.removeprefix("manywell")))
    if name == "aldp":
        from zoo.fab.alanine import AlanineDipeptide

        return AlanineDipeptide()
    raise ValueError(f"unknown FAB target {name!r}; choose one of {', '.join(TARGETS)}")
