"""The multilevel closed form: sufficient statistics, per-level solves, hold-out tuning.

With input coefficients ``X`` (``n × n_in``) and output coefficients ``Y`` (``n × n_out``),
the estimator for the output modes ``J_l`` of level ``l`` is

- ``ridge``: ``W_Jᵀ = (XᵀX + nλ_l I)⁻¹ XᵀY_J`` with ``λ_l = λ_0 2^(ρl)``, one eigendecomposition
  of ``XᵀX`` serving every level and every ``λ``;
- ``cutoff``: least squares on the first ``N_l = ⌊T 2^(-κl)⌋`` input modes,

and zero on the levels above ``max_level`` (the variance contour). ``ρ = 0`` (``κ = 0``) is the
single-level estimator: one input filter shared by all kept output modes. The hold-out error of
any candidate follows from Gram quantities alone,
``SSE(W) = Σ_j [YᵀY]_jj - 2 [W XᵀY]_jj + [W XᵀX Wᵀ]_jj``, and adds over levels, so one table of
per-level errors scores every candidate. All of it runs in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "Regularisation",
    "Statistics",
    "fit",
    "level_sse_cutoff",
    "level_sse_ridge",
    "select",
    "tune",
]

#: Candidate grids for hold-out tuning.
RIDGE_OFFSET = -48  # λ_0 = 2^(g/2) for g = -48 ... 4: 6e-8 ... 4
RIDGE_RHO = tuple(r / 2 for r in range(0, 9))  # 0 ... 4
CUTOFF_KAPPA = tuple(r / 4 for r in range(0, 13))  # 0 ... 3


@dataclass
class Statistics:
    """Sums over samples: ``XᵀX``, ``XᵀY``, the diagonal of ``YᵀY``, and the count."""

    xtx: torch.Tensor  # (n_in, n_in)
    xty: torch.Tensor  # (n_in, n_out)
    yty: torch.Tensor  # (n_out,)
    n: float

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor) -> Statistics:
        return cls(x.T @ x, x.T @ y, (y**2).sum(0), float(x.shape[0]))

    def __add__(self, other: Statistics) -> Statistics:
        return Statistics(
            self.xtx + other.xtx, self.xty + other.xty, self.yty + other.yty, self.n + other.n
        )


@dataclass(frozen=True)
class Regularisation:
    """A point of the regularisation family.

    Attributes:
        filter: ``ridge`` or ``cutoff``.
        scale: ``λ_0`` (ridge) or ``T`` (cutoff).
        slope: ``ρ`` (ridge: ``λ_l = λ_0 2^(ρl)``) or ``κ`` (cutoff: ``N_l = ⌊T 2^(-κl)⌋``).
        max_level: Output levels above it are zero.
    """

    filter: str
    scale: float
    slope: float
    max_level: int

    def ridge(self, level: int) -> float:
        return self.scale * 2.0 ** (self.slope * level)

    def cutoff(self, level: int) -> int:
        return math.floor(self.scale * 2.0 ** (-self.slope * level) + 1e-9)


def fit(stats: Statistics, levels: torch.Tensor, reg: Regularisation) -> torch.Tensor:
    """The estimate ``W`` (``n_out × n_in``) for one regularisation.

    Args:
        stats: Training statistics.
        levels: Level of each output mode, ``(n_out,)``.
        reg: The regularisation.
    """
    n_in, n_out = stats.xty.shape
    w = torch.zeros(n_out, n_in, dtype=stats.xtx.dtype)
    if reg.filter == "ridge":
        evals, evecs = torch.linalg.eigh(stats.xtx)
        projected = evecs.T @ stats.xty  # (n_in, n_out)
        for level in range(int(levels.max()) + 1):
            rows = levels == level
            if level > reg.max_level or not rows.any():
                continue
            shrink = 1.0 / (evals + stats.n * reg.ridge(level))
            w[rows] = (evecs @ (shrink[:, None] * projected[:, rows])).T
        return w
    for level in range(int(levels.max()) + 1):
        rows = levels == level
        n_kept = min(reg.cutoff(level), n_in)
        if level > reg.max_level or not rows.any() or n_kept == 0:
            continue
        block = stats.xtx[:n_kept, :n_kept]
        w[rows, :n_kept] = torch.linalg.solve(block, stats.xty[:n_kept][:, rows]).T
    return w


def level_sse_ridge(
    train: Statistics, val: Statistics, levels: torch.Tensor, lambdas: torch.Tensor
) -> torch.Tensor:
    """Hold-out error of each level's rows for each ridge ``λ``: ``(n_levels, n_lambdas)``."""
    evals, evecs = torch.linalg.eigh(train.xtx)
    projected = evecs.T @ train.xty  # (n_in, n_out)
    val_xtx = evecs.T @ val.xtx @ evecs  # the hold-out Gram in the eigenbasis
    val_xty = evecs.T @ val.xty
    table = torch.zeros(int(levels.max()) + 1, len(lambdas), dtype=train.xtx.dtype)
    for level in range(table.shape[0]):
        rows = levels == level
        shrink = 1.0 / (evals[None, :] + train.n * lambdas[:, None])  # (n_lambdas, n_in)
        w = shrink[:, None, :] * projected[:, rows].T[None]  # (n_lambdas, |J|, n_in)
        cross = torch.einsum("ljk,kj->l", w, val_xty[:, rows])
        quadratic = torch.einsum("ljk,kp,ljp->l", w, val_xtx, w)
        table[level] = val.yty[rows].sum() - 2 * cross + quadratic
    return table


def level_sse_cutoff(
    train: Statistics, val: Statistics, levels: torch.Tensor, max_kept: int
) -> torch.Tensor:
    """Hold-out error of each level's rows for each input cutoff ``N = 0 ... max_kept``:
    ``(n_levels, max_kept + 1)``."""
    table = torch.zeros(int(levels.max()) + 1, max_kept + 1, dtype=train.xtx.dtype)
    for level in range(table.shape[0]):
        table[level, 0] = val.yty[levels == level].sum()
    for n_kept in range(1, max_kept + 1):
        block = train.xtx[:n_kept, :n_kept]
        w = torch.linalg.solve(block, train.xty[:n_kept]).T  # (n_out, N)
        cross = (w * val.xty[:n_kept].T).sum(1)
        quadratic = ((w @ val.xtx[:n_kept, :n_kept]) * w).sum(1)
        sse = val.yty - 2 * cross + quadratic  # (n_out,)
        table[:, n_kept] = torch.zeros(table.shape[0], dtype=sse.dtype).index_add_(0, levels, sse)
    return table


def schedules(
    filter: str, n_levels: int, max_kept: int, *, single: bool
) -> tuple[list[tuple[float, float]], torch.Tensor]:
    """The candidate input-filter schedules and, for each, its column in a per-level table.

    Ridge tables have one column per ``λ = 2^(h/2)``, ``h`` from :data:`RIDGE_OFFSET`; cutoff
    tables one column per kept count ``N = 0 ... max_kept``.

    Returns:
        ``[(scale, slope), ...]`` and the column of each level, ``(n_schedules, n_levels)``.
    """
    levels = range(n_levels)
    if filter == "ridge":
        slopes = (0.0,) if single else RIDGE_RHO
        pairs = [(g, rho) for g in range(RIDGE_OFFSET, 5) for rho in slopes]
        found = [(2.0 ** (g / 2), rho) for g, rho in pairs]
        columns = [
            [g + round(2 * rho * level) - RIDGE_OFFSET for level in levels] for g, rho in pairs
        ]
    else:
        slopes = (0.0,) if single else CUTOFF_KAPPA
        scales = [2.0 ** (q / 4) for q in range(4 * math.ceil(math.log2(max(max_kept, 1))) + 1)]
        found = [(scale, kappa) for scale in scales for kappa in slopes]
        columns = [
            [min(Regularisation("cutoff", t, k, 0).cutoff(level), max_kept) for level in levels]
            for t, k in found
        ]
    return found, torch.tensor(columns)


def ridge_lambdas(n_levels: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The ridge values a per-level table is computed for: every ``λ_0 2^(ρl)`` on the grids."""
    steps = range(RIDGE_OFFSET, 5 + int(2 * max(RIDGE_RHO)) * n_levels + 1)
    return torch.tensor([2.0 ** (h / 2) for h in steps], dtype=dtype)


def select(
    table: torch.Tensor, zero: torch.Tensor, filter: str, *, single: bool, max_kept: int = 0
) -> tuple[Regularisation, float]:
    """The schedule and output cut with the smallest total of a per-level table.

    Args:
        table: Per-level error (hold-out SSE, or exact risk) of each column, ``(n_levels, C)``.
        zero: Per-level error of predicting zero, ``(n_levels,)``.
        filter: ``ridge`` or ``cutoff``.
        single: Restrict to the single-level family.
        max_kept: The largest cutoff column (cutoff tables).

    Returns:
        The best regularisation and its total error.
    """
    n_levels = table.shape[0]
    found, columns = schedules(filter, n_levels, max_kept, single=single)
    per_level = table[torch.arange(n_levels), columns]  # (n_schedules, n_levels)
    totals = per_level.cumsum(1) + (zero.sum() - zero.cumsum(0))  # keep levels <= cut
    best = int(totals.argmin())
    schedule, cut = divmod(best, n_levels)
    scale, slope = found[schedule]
    return Regularisation(filter, scale, slope, cut), float(totals.flatten()[best])


def tune(
    train: Statistics, val: Statistics, levels: torch.Tensor, filter: str, *, single: bool
) -> tuple[Regularisation, float]:
    """The candidate with the smallest hold-out error, and that error.

    Candidates are an input-filter schedule (``λ_0`` and ``ρ``, or ``T`` and ``κ``, on the
    grids above) times an output cut ``max_level``.

    Args:
        train: Statistics the candidates are fitted on.
        val: Hold-out statistics they are scored on.
        levels: Level of each output mode.
        filter: ``ridge`` or ``cutoff``.
        single: Restrict to the single-level family (``ρ = 0``, ``κ = 0``).
    """
    n_levels = int(levels.max()) + 1
    zero = torch.zeros(n_levels, dtype=train.xtx.dtype).index_add_(0, levels, val.yty)
    if filter == "ridge":
        table = level_sse_ridge(train, val, levels, ridge_lambdas(n_levels, train.xtx.dtype))
        return select(table, zero, filter, single=single)
    max_kept = min(train.xtx.shape[0], int(train.n) - 2)
    table = level_sse_cutoff(train, val, levels, max_kept)
    return select(table, zero, filter, single=single, max_kept=max_kept)
