"""Plots of LAMP rollouts and of the error-versus-cost trade-off (matplotlib, imported here)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

__all__ = ["plot_rollout", "plot_tradeoff"]


def plot_rollout(out: Any, truth: torch.Tensor | None = None, index: int = 0) -> Any:
    """Space-time field of one trajectory of a rollout, its mesh vertices on top, and the
    vertex count per step; with ``truth``, the reference field beside it.

    Args:
        out: A :class:`~zoo.lamp.api.LampRollout`.
        truth: The reference on the grid, frames as ``out.on_grid()`` (``(n_frames, n_grid)``,
            or batched like the rollout).
        index: The trajectory of a batched rollout.

    Returns:
        The figure.
    """
    import matplotlib.pyplot as plt

    from zoo.lamp.api import LENGTH

    field = out.on_grid()
    field = (field[index] if out.batched else field).numpy()
    masks = out.masks[:, index]
    n_steps, n_grid = masks.shape
    bundle = field.shape[0] // n_steps
    panels = [("LAMP", field)]
    if truth is not None:
        truth = torch.as_tensor(truth)
        panels.append(("reference", (truth[index] if out.batched else truth).numpy()))

    figure, axes = plt.subplots(
        1, len(panels) + 1, figsize=(4.2 * len(panels) + 2.2, 4.2),
        gridspec_kw={"width_ratios": [4] * len(panels) + [1.4]},
    )  # fmt: skip
    scale = float(max(abs(p).max() for _, p in panels))
    extent = (0, LENGTH, field.shape[0], 0)
    for ax, (title, values) in zip(axes, panels, strict=False):
        image = ax.imshow(
            values, aspect="auto", cmap="RdBu_r", vmin=-scale, vmax=scale, extent=extent,
            interpolation="nearest",
        )  # fmt: skip
        ax.set(title=title, xlabel="x", ylabel="predicted frame")
    for k in range(n_steps):
        x = (masks[k].nonzero().squeeze(-1) * (LENGTH / n_grid)).numpy()
        axes[0].plot(x, [(k + 0.5) * bundle] * len(x), "k|", ms=5, mew=0.8)
    figure.colorbar(image, ax=axes[len(panels) - 1], label="u")

    beta = float(out.beta[index])
    rows = [(k + 0.5) * bundle for k in range(n_steps)]
    axes[-1].barh(rows, masks.sum(-1).tolist(), height=0.8 * bundle)
    axes[-1].set(ylim=(field.shape[0], 0), xlabel="vertices", title=f"mesh (β={beta:g})")
    figure.tight_layout()
    return figure


def plot_tradeoff(
    rows: list[dict[str, Any]], baselines: list[dict[str, Any]] | None = None
) -> Any:
    """Cumulative MSE versus average vertices.

    Args:
        rows: :meth:`~zoo.lamp.api.LampAPI.evaluate` rows: LAMP over ``beta`` (a curve per
            initial mesh, labelled by ``beta``) and LAMP without remeshing (squares).
        baselines: Extra rows with ``model``, ``average_vertices`` and ``error`` (triangles).

    Returns:
        The axes.
    """
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(5.5, 4.2))
    curves: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["model"] == "LAMP":
            curves[row["initial_vertices"]].append(row)
    for n0, curve in sorted(curves.items()):
        curve = sorted(curve, key=lambda r: r["beta"])
        x = [r["average_vertices"] for r in curve]
        y = [r["error"] for r in curve]
        ax.plot(x, y, "o-", label=f"LAMP from {n0}")
        for r in curve:
            ax.annotate(f"β={r['beta']:g}", (r["average_vertices"], r["error"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")  # fmt: skip
    fixed = sorted(
        (r for r in rows if r["model"] != "LAMP"), key=lambda r: r["average_vertices"]
    )
    if fixed:
        ax.plot([r["average_vertices"] for r in fixed], [r["error"] for r in fixed], "ks--",
                mfc="none", label="LAMP, no remeshing")  # fmt: skip
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in baselines or []:
        by_model[row["model"]].append(row)
    for model, points in by_model.items():
        points = sorted(points, key=lambda r: r["average_vertices"])
        ax.plot([r["average_vertices"] for r in points], [r["error"] for r in points], "^:",
                label=model)  # fmt: skip
    ax.set(xlabel="average vertices", ylabel="cumulative MSE (200 frames)", yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
