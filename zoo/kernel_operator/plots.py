"""Figures of a fitted ``KernelOperator``: Green's function, learned staircase, predictions,
and the rate study."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from zoo.kernel_operator.model import KernelOperator

__all__ = ["plot_green", "plot_prediction", "plot_rates", "plot_support"]


def _axes(ax: Axes | None, size: tuple[float, float] = (4.2, 3.6)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, layout="constrained")[1]


def plot_green(model: KernelOperator, m: int = 128, ax: Axes | None = None) -> Axes:
    """The learned Green's function ``G(x, y)`` on an ``m``-point grid."""
    ax = _axes(ax)
    kernel = (m * model.green(m)).numpy()
    limit = np.abs(kernel).max()
    image = ax.imshow(
        kernel, origin="lower", extent=(0, 1, 0, 1), cmap="RdBu_r", vmin=-limit, vmax=limit
    )
    ax.figure.colorbar(image, ax=ax, shrink=0.85)
    ax.set(xlabel="y (input)", ylabel="x (output)", title="learned Green's function G(x, y)")
    return ax


def plot_support(model: KernelOperator, ax: Axes | None = None) -> Axes:
    """The learned (output mode, input mode) staircase, with the dyadic levels marked."""
    ax = _axes(ax)
    mask = model.support_mask().numpy()
    ax.imshow(
        mask,
        origin="lower",
        cmap="Greys",
        aspect="auto",
        interpolation="nearest",
        extent=(0.5, mask.shape[1] + 0.5, 0.5, mask.shape[0] + 0.5),
    )
    for level in range(1, int(model.level.max()) + 1):
        ax.axhline(2**level - 0.5, color="tab:orange", lw=0.6, alpha=0.7)
    reg = model.regularisation
    ax.set(
        xlabel="input mode k",
        ylabel="output mode j",
        title=f"learned modes ({reg.filter}, levels ≤ {reg.max_level})",
    )
    return ax


def plot_prediction(
    model: KernelOperator, f: torch.Tensor, u: torch.Tensor | None = None, ax: Axes | None = None
) -> Axes:
    """Input, prediction and (optionally) the true output of one sample on its grid."""
    ax = _axes(ax, (5.0, 3.2))
    x = np.arange(f.shape[-1]) / f.shape[-1]
    with torch.no_grad():
        prediction = model(f)
    scale = float(prediction.abs().max()) / max(float(f.abs().max()), 1e-12)
    ax.plot(x, f.numpy() * scale, color="0.6", lw=1, label=f"input f (× {scale:.2g})")
    if u is not None:
        ax.plot(x, u.numpy(), "k--", lw=1.5, label="true u")
    ax.plot(x, prediction.numpy(), color="tab:blue", lw=1.2, label="prediction")
    ax.set(xlabel="x")
    ax.legend(frameon=False, fontsize=8)
    return ax


def plot_rates(
    n: Sequence[int],
    risks: Mapping[str, Sequence[float]],
    slopes: Mapping[str, float] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Risk against sample size on log-log axes, with theoretical slopes as dotted lines.

    Args:
        n: Sample sizes.
        risks: ``{label: risk per n}``.
        slopes: ``{label: theoretical log-log slope}``, drawn through each curve's first point.
    """
    ax = _axes(ax, (4.6, 3.6))
    n_arr = np.asarray(n, dtype=float)
    for (label, risk), color in zip(
        risks.items(), ("tab:blue", "tab:red", "tab:green", "tab:purple"), strict=False
    ):
        risk_arr = np.asarray(risk, dtype=float)
        fitted = np.polyfit(np.log(n_arr), np.log(risk_arr), 1)[0]
        ax.loglog(n_arr, risk_arr, "o-", color=color, label=f"{label} (slope {fitted:.3f})")
        if slopes and label in slopes:
            ax.loglog(
                n_arr,
                risk_arr[0] * (n_arr / n_arr[0]) ** slopes[label],
                ":",
                color=color,
                label=f"theory {slopes[label]:.3f}",
            )
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(n_arr, labels=[str(int(k)) for k in n_arr])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="training samples n", ylabel="risk E‖(Â − A)f‖²")
    ax.legend(frameon=False, fontsize=8)
    return ax


def save(ax: Any, path: Any) -> None:
    ax.figure.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(ax.figure)
