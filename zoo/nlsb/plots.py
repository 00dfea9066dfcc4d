"""Figures of a trained ``nlsb`` model: sample paths over the snapshots, marginals next to the
data, and the learned potential. Each function returns its matplotlib ``Figure``."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "plot_conditional",
    "plot_marginals",
    "plot_potential",
    "plot_trajectories",
    "showcase",
    "snapshots",
]

_SYNTHETIC = ("ou1d", "psde3d", "branch2d")
_SUBSCRIPTS = "₀₁₂₃₄₅₆₇₈₉"


def snapshots(model: Any, split: str = "test") -> list[torch.Tensor] | None:
    """The model's synthetic snapshot set (regenerated from its seed), ``None`` for ``eb``."""
    from zoo.nlsb.data import make_snapshots

    if model.hparams.dataset not in _SYNTHETIC:
        return None
    return make_snapshots(model.hparams.dataset)[split]


def plot_trajectories(
    model: Any,
    *,
    n: int = 30,
    n_repeat: int = 1,
    seed: int = 0,
    steps_per_unit: int = 20,
    coordinate: int | None = None,
) -> Any:
    """Paths from ``n`` base samples over the observed snapshots: a space-time fan of one
    coordinate (always in 1-D; in more dimensions when ``coordinate`` is given), otherwise the
    first two coordinates in the plane."""
    import matplotlib.pyplot as plt

    dim = model.hparams.dim
    if coordinate is None and dim == 1:
        coordinate = 0
    if coordinate is not None and not (isinstance(coordinate, int) and 0 <= coordinate < dim):
        raise ValueError(f"coordinate must be an int in 0..{dim - 1}, got {coordinate!r}")
    data = snapshots(model)
    t_grid = _grid(model.times, steps_per_unit)
    generator = torch.Generator().manual_seed(seed)
    x0 = model._to_data(model.base[torch.randint(len(model.base), (n,), generator=generator)])
    paths = model.sample_trajectories(x0, t_grid, n_repeat=n_repeat, seed=seed).flatten(1, 2)
    figure, ax = plt.subplots(figsize=(7, 4))
    if coordinate is not None:
        ax.plot(t_grid, paths[..., coordinate].numpy(), color="tab:blue", lw=0.7, alpha=0.6)
        if data is not None:
            for t, x in zip(model.times, data, strict=True):
                ax.scatter(
                    torch.full((len(x),), t) + 0.04 * torch.randn(len(x), generator=generator),
                    x[:, coordinate],
                    s=2,
                    color="black",
                    alpha=0.15,
                )
        ax.set(xlabel="t", ylabel="x" if dim == 1 else f"x{_SUBSCRIPTS[coordinate + 1]}")
    else:
        if data is not None:
            for t, x in zip(model.times, data, strict=True):
                ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.2, label=f"data t = {t:g}")
        for i in range(paths.shape[1]):
            ax.plot(paths[:, i, 0], paths[:, i, 1], color="black", lw=0.6, alpha=0.6)
        ax.set(xlabel="x₁", ylabel="x₂")
        ax.legend(markerscale=4, fontsize=7)
    ax.set_title(f"NLSB sample paths ({model.hparams.dataset})")
    figure.tight_layout()
    return figure


def plot_marginals(model: Any, *, n: int = 1000, seed: int = 0) -> Any:
    """The model's marginals from the base sample at each observed time, next to the data's."""
    import matplotlib.pyplot as plt

    data = snapshots(model)
    times = model.times[1:]
    marginals = model.marginals(times, n=n, seed=seed)
    figure, axes = plt.subplots(1, len(times), figsize=(3 * len(times), 3), squeeze=False)
    for i, (ax, t) in enumerate(zip(axes[0], times, strict=True)):
        x = marginals[t]
        truth = None if data is None else data[i + 1]
        held = " (held out)" if t not in model.train_times else ""
        if model.hparams.dim == 1:
            bins = 40
            if truth is not None:
                ax.hist(truth[:, 0], bins=bins, density=True, alpha=0.5, label="data")
            ax.hist(x[:, 0], bins=bins, density=True, alpha=0.5, label="model")
        else:
            if truth is not None:
                ax.scatter(truth[:, 0], truth[:, 1], s=2, alpha=0.3, label="data")
            ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.3, label="model")
        ax.set_title(f"t = {t:g}{held}")
    axes[0, 0].legend(fontsize=7)
    figure.suptitle(f"marginals from the base sample ({model.hparams.dataset})")
    figure.tight_layout()
    return figure


def plot_conditional(
    model: Any,
    *,
    x0: Sequence[float] = (-0.8, 0.0, 0.8),
    n_repeat: int = 200,
    seed: int = 0,
    ax: Any = None,
    steps_per_unit: int = 10,
) -> Any:
    """Conditional mean ± one sd of the model's paths from a few starting points, over the true
    process's (its sampler, ``n_repeat`` paths each): what the CDD measures. First coordinate,
    the others of each start at the base-sample mean."""
    import matplotlib.pyplot as plt

    from zoo.nlsb.data import process

    if model.hparams.dataset not in _SYNTHETIC:
        raise ValueError("plot_conditional needs a synthetic dataset with a known process")
    truth = process(model.hparams.dataset)
    t_grid = _grid(model.times, steps_per_unit)
    starts = model._to_data(model.base).mean(0).repeat(len(x0), 1)
    starts[:, 0] = torch.as_tensor(x0, dtype=starts.dtype)
    paths = model.sample_trajectories(starts, t_grid, n_repeat=n_repeat, seed=seed)[..., 0]
    generator = torch.Generator().manual_seed(seed)
    x = starts.repeat_interleave(n_repeat, dim=0)
    true = [x[:, 0]]
    for t0, t1 in itertools.pairwise(t_grid):
        x = truth.sample_at(x, t0, t1, generator)
        true.append(x[:, 0])
    true = torch.stack(true).reshape(len(t_grid), len(x0), n_repeat)
    figure = None
    if ax is None:
        figure, ax = plt.subplots(figsize=(7, 3.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, start in enumerate(x0):
        color = colors[i % len(colors)]
        mean, sd = true[:, i].mean(-1), true[:, i].std(-1)
        ax.fill_between(t_grid, mean - sd, mean + sd, color=color, alpha=0.15)
        ax.plot(t_grid, mean, "--", color=color)
        mean, sd = paths[:, i].mean(-1), paths[:, i].std(-1)
        ax.plot(t_grid, mean, color=color, label=f"x0 = {start:g}")
        ax.plot(t_grid, mean - sd, ":", color=color)
        ax.plot(t_grid, mean + sd, ":", color=color)
    ax.set(xlabel="t", ylabel="x" if model.hparams.dim == 1 else "x₁")
    ax.set_title("model: solid, ±1 sd dotted; truth: dashed, band", fontsize=9)
    ax.legend(fontsize=7)
    return figure if figure is not None else ax.figure


def plot_potential(model: Any, *, times: Sequence[float] | None = None, size: int = 100) -> Any:
    """Φ over (t, x) in 1-D; Φ contours at a few times over the first two coordinates
    otherwise (the others at their base-sample mean)."""
    import matplotlib.pyplot as plt

    base = model._to_data(model.base)
    low, high = base.min(0).values, base.max(0).values
    data = snapshots(model)
    if data is not None:
        stacked = torch.cat(data)
        low, high = stacked.min(0).values, stacked.max(0).values
    pad = 0.1 * (high - low)
    low, high = low - pad, high + pad
    if model.hparams.dim == 1:
        t = torch.linspace(model.times[0], model.times[-1], size)
        x = torch.linspace(float(low[0]), float(high[0]), size)
        phi = torch.stack([model.potential(x[:, None], float(s)) for s in t], dim=1)
        figure, ax = plt.subplots(figsize=(7, 4))
        mesh = ax.pcolormesh(t, x, phi, shading="auto", cmap="viridis")
        ax.contour(t, x, phi, colors="white", linewidths=0.5, levels=12)
        figure.colorbar(mesh, ax=ax, label="Φ")
        ax.set(xlabel="t", ylabel="x", title="learned potential Φ(x, t)")
        figure.tight_layout()
        return figure
    times = list(times or model.times)
    figure, axes = plt.subplots(1, len(times), figsize=(3 * len(times), 3), squeeze=False)
    u = torch.linspace(float(low[0]), float(high[0]), size)
    v = torch.linspace(float(low[1]), float(high[1]), size)
    grid_u, grid_v = torch.meshgrid(u, v, indexing="xy")
    points = base.mean(0).repeat(size * size, 1)
    points[:, 0], points[:, 1] = grid_u.flatten(), grid_v.flatten()
    for ax, t in zip(axes[0], times, strict=True):
        phi = model.potential(points, float(t)).reshape(size, size)
        ax.contourf(grid_u, grid_v, phi, levels=20, cmap="viridis")
        ax.set_title(f"Φ at t = {t:g}")
    figure.tight_layout()
    return figure


def showcase(model: Any, out_dir: str | Path) -> dict[str, Any]:
    """Fresh marginals against the test snapshots (mean W1 over the observed times) and the
    three plots, saved under ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.nlsb.metrics import wasserstein1

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, plot in (
        ("trajectories", plot_trajectories),
        ("marginals", plot_marginals),
        ("potential", plot_potential),
    ):
        figure = plot(model)
        figure.savefig(out_dir / f"{name}.png", dpi=110)
        plt.close(figure)
    data = snapshots(model)
    marginals = model.marginals(model.times[1:], n=1000, seed=0)
    distances = [wasserstein1(marginals[t], data[k + 1]) for k, t in enumerate(model.times[1:])]
    return {
        "task": f"sample {model.hparams.dataset} marginals from the base sample, plot paths",
        "metric": "MDD all-step, mean over observed times",
        "value": sum(distances) / len(distances),
    }


def _grid(times: Sequence[float], steps_per_unit: int) -> list[float]:
    grid = [times[0]]
    for t0, t1 in itertools.pairwise(times):
        steps = max(1, round((t1 - t0) * steps_per_unit))
        grid += [t0 + (t1 - t0) * (i + 1) / steps for i in range(steps)]
    return grid
