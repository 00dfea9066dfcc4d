"""The rate study: multilevel against single-level regularisation on the ``powerlaw`` task.

Two routes to the risk at each sample size ``n``:

- the exact formula (no sampling): with whitened Gaussian features, row ``j`` fitted by least
  squares on its first ``N`` inputs has risk ``b_j + (σ² + b_j) N / (n - N - 1)``, where
  ``b_j = Σ_{k>N} θ_jk²`` is the bias of the dropped inputs;
- Monte Carlo: fit on sampled data and compute the exact risk ``Σ_jk λ_k (Ŵ - A)²_jk`` of the
  estimate from the true operator, tuned either by that risk (oracle) or on a hold-out.

The slopes are fitted on ``log risk`` against ``log n``. Run it with
``python -m zoo.kernel_operator.rates --out rates/``.

References:
    Jin, Lu, Blanchet, Ying. "Minimax Optimal Kernel Operator Learning via Multilevel
    Training." ICLR 2023. https://arxiv.org/abs/2209.14430 (the rates here are derived in the
    sequence model of that setting, see the model card, not quoted from the paper).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zoo.kernel_operator.data import OperatorTask, make_task
from zoo.kernel_operator.fourier import levels as mode_levels
from zoo.kernel_operator.solve import Statistics, fit, select, tune

__all__ = [
    "SAMPLE_SIZES",
    "Theory",
    "exact_risk_table",
    "fit_slope",
    "monte_carlo",
    "oracle_exact",
    "theory",
]

SAMPLE_SIZES = (256, 512, 1024, 2048, 4096, 8192)


@dataclass(frozen=True)
class Theory:
    """Exponents of the sequence model (derived, see the model card).

    Attributes:
        rho_in: Input-side exponent ``aβ / (aβ + 1)``.
        rho_out: Output-side exponent ``2r / (2r + 1)``.
        multilevel: Minimax (multilevel) log-log slope, ``-min(rho_in, rho_out)``.
        single: Single-level slope, ``-1 / (1/rho_in + 1/rho_out - 1)``.
        kappa: Staircase exponent of the cutoff, ``K(j) ~ j^(-kappa)``.
    """

    rho_in: float
    rho_out: float
    multilevel: float
    single: float
    kappa: float


def theory(a_beta: float = 1.0, two_r: float = 2.0, eta: float = 0.05) -> Theory:
    """The derived exponents for the ``powerlaw`` task (slack ``eta`` added to both sides)."""
    s_in, s_out = a_beta + eta, two_r + eta
    rho_in, rho_out = s_in / (s_in + 1), s_out / (s_out + 1)
    return Theory(
        rho_in, rho_out, -min(rho_in, rho_out), -1 / (1 / rho_in + 1 / rho_out - 1), s_out / s_in
    )


def exact_risk_table(
    theta: torch.Tensor, sigma: float, n: int, levels: torch.Tensor
) -> torch.Tensor:
    """Exact risk of each level's rows for each cutoff ``N = 0 ... M``, ``(n_levels, M + 1)``
    (``inf`` where ``N >= n - 1``)."""
    m = theta.shape[1]
    squares = theta**2
    tail = torch.cat(
        [squares.flip(1).cumsum(1).flip(1), torch.zeros(len(theta), 1, dtype=theta.dtype)], 1
    )
    kept = torch.arange(m + 1, dtype=theta.dtype)
    inflation = torch.where(kept < n - 1, kept / (n - kept - 1), torch.full_like(kept, math.inf))
    rows = tail + (sigma**2 + tail) * inflation  # (n_out, M + 1)
    rows[:, 0] = tail[:, 0]
    n_levels = int(levels.max()) + 1
    return torch.zeros(n_levels, m + 1, dtype=theta.dtype).index_add_(0, levels, rows)


def oracle_exact(task: OperatorTask, n: int, *, single: bool) -> float:
    """The smallest exact-formula risk over the multilevel cutoff family (or, with
    ``single``, over one shared cutoff ``N`` and any number of kept output rows)."""
    theta = task.operator * task.input_variance.sqrt()
    m = theta.shape[0]
    if single:
        per_row = exact_risk_table(theta, task.noise, n, torch.arange(m))  # one row per "level"
        zero = per_row[:, 0]
        totals = per_row.cumsum(0) + (zero.sum() - zero.cumsum(0))[:, None]  # (J, N)
        return float(totals.min())
    levels = mode_levels(m)
    table = exact_risk_table(theta, task.noise, n, levels)
    return select(table, table[:, 0], "cutoff", single=False, max_kept=m)[1]


def fit_slope(n: list[int] | tuple[int, ...], risk: list[float]) -> float:
    """Least-squares slope of ``log risk`` against ``log n``."""
    return float(np.polyfit(np.log(n), np.log(risk), 1)[0])


def _risk_table_of_fits(
    stats: Statistics, task: OperatorTask, levels: torch.Tensor, max_kept: int
) -> torch.Tensor:
    """Exact risk of each level's rows of the least-squares fit on the first ``N`` inputs."""
    a, variance = task.operator, task.input_variance
    n_levels = int(levels.max()) + 1
    table = torch.zeros(n_levels, max_kept + 1, dtype=a.dtype)
    table[:, 0] = torch.zeros(n_levels, dtype=a.dtype).index_add_(0, levels, a**2 @ variance)
    for n_kept in range(1, max_kept + 1):
        w = torch.linalg.solve(stats.xtx[:n_kept, :n_kept], stats.xty[:n_kept]).T
        error = a.clone()
        error[:, :n_kept] -= w
        table[:, n_kept] = torch.zeros(n_levels, dtype=a.dtype).index_add_(
            0, levels, error**2 @ variance
        )
    return table


def monte_carlo(
    task: OperatorTask,
    sample_sizes: tuple[int, ...] = SAMPLE_SIZES,
    repeats: int = 8,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Mean exact risk over ``repeats`` data sets per ``n``: multilevel and single-level
    cutoff tuned by the exact risk (oracle), and multilevel tuned on a hold-out fifth."""
    from tqdm.auto import tqdm

    from zoo.kernel_operator.fourier import to_coefficients

    m = task.grid_size
    levels = mode_levels(m)
    results: dict[str, list[float]] = {"multilevel": [], "single-level": [], "hold-out": []}
    progress = tqdm(total=len(sample_sizes) * repeats, desc="rate study", leave=False)
    for n in sample_sizes:
        sums = dict.fromkeys(results, 0.0)
        for r in range(repeats):
            generator = torch.Generator().manual_seed(seed * 100_003 + 1_000 * n + r)
            f, u = task.sample(n, generator, noisy=True)
            x, y = to_coefficients(f), to_coefficients(u)
            stats = Statistics.of(x, y)
            max_kept = min(m, n - 2)
            table = _risk_table_of_fits(stats, task, levels, max_kept)
            zero = table[:, 0]
            sums["multilevel"] += select(table, zero, "cutoff", single=False, max_kept=max_kept)[1]
            sums["single-level"] += select(table, zero, "cutoff", single=True, max_kept=max_kept)[
                1
            ]
            held = torch.arange(n) % 5 == 4
            train = Statistics.of(x[~held], y[~held])
            reg, _ = tune(train, Statistics.of(x[held], y[held]), levels, "cutoff", single=False)
            sums["hold-out"] += task.risk(fit(stats, levels, reg))
            progress.update()
        for key in results:
            results[key].append(sums[key] / repeats)
    progress.close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("rates"), help="folder for results")
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--modes", type=int, default=384)
    args = parser.parse_args(argv)

    from zoo.kernel_operator.plots import plot_rates, save

    torch.set_num_threads(1)
    task = make_task("powerlaw", args.modes, noise_std=1.0)
    expected = theory()
    n = list(SAMPLE_SIZES)
    exact = {
        "multilevel": [oracle_exact(task, k, single=False) for k in n],
        "single-level": [oracle_exact(task, k, single=True) for k in n],
    }
    sampled = monte_carlo(task, SAMPLE_SIZES, args.repeats)
    summary = {
        "theory": expected.__dict__,
        "n": n,
        "exact_formula": {k: {"risk": v, "slope": fit_slope(n, v)} for k, v in exact.items()},
        "monte_carlo": {
            k: {"risk": v, "slope": fit_slope(n, v), "slope_n_ge_1024": fit_slope(n[2:], v[2:])}
            for k, v in sampled.items()
        },
        "repeats": args.repeats,
        "modes": args.modes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rates.json").write_text(json.dumps(summary, indent=2) + "\n")
    slopes = {"multilevel": expected.multilevel, "single-level": expected.single}
    save(plot_rates(n, exact, slopes), args.out / "rates_exact.png")
    save(plot_rates(n, sampled, slopes), args.out / "rates_monte_carlo.png")
    print(
        json.dumps(
            {
                k: {m: round(v["slope"], 3) for m, v in summary[k].items()}
                for k in ("exact_formula", "monte_carlo")
            },
            indent=2,
        )
    )
    ratio = sampled["single-level"][-1] / sampled["multilevel"][-1]
    print(f"risk ratio single/multilevel at n = {n[-1]}: {ratio:.2f}")


if __name__ == "__main__":
    main()
