"""What users call on a loaded ``fab`` model: flow samples and densities, importance weights
w.r.t. the target (from the flow alone or after AIS), log Z, expectations, mode coverage, the
evaluation rows and the sample plots."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from zoo.fab.ais import AIS, ess, log_Z_estimate

__all__ = ["FABApiMixin", "plot_samples", "showcase"]


class FABApiMixin:
    """Sampling, importance sampling, evaluation and plots for
    :class:`~zoo.fab.module.FABModule`. All tensors are float64 on the module's device."""

    # -- the flow ---------------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` flow samples x ~ q_θ, ``(n, dim)``; warns if any is not finite (see
        :meth:`sample_and_log_prob`)."""
        return self.sample_and_log_prob(n)[0]

    @torch.no_grad()
    def sample_and_log_prob(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` flow samples and their log q_θ, ``(n, dim)`` and ``(n,)``.

        An affine-coupling flow can overflow for base points far in the tail (a fraction of a
        percent of draws for some trained weights); such rows come back as they are, with a
        warning. :meth:`importance_sample` and the metrics give them weight zero.
        """
        x, log_q = self.flow.sample_and_log_prob(_check_n(n))
        _warn_non_finite(x)
        return x, log_q

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """The flow's log density at points ``(n, dim)``, ``(n,)``."""
        return self.flow.log_prob(self._check_points(x))

    # -- importance sampling w.r.t. the target ----------------------------------------------

    @torch.no_grad()
    def importance_sample(
        self, n: int, ais: bool = False, n_intermediate: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples with log importance weights w.r.t. the (unnormalised) target p.

        Args:
            n: Number of samples (AIS chains).
            ais: Move the flow samples by AIS towards p (α = 1), with the trained transitions
                and frozen step sizes; otherwise log w = log p - log q_θ.
            n_intermediate: AIS intermediate distributions, the trained number by default;
                another number uses every HMC step size at the mean of the trained ones.

        Returns:
            ``(x, log_w)``, ``(n_kept, dim)`` and ``(n_kept,)``. The flow keeps all ``n``
            samples (log w = -inf where p = 0); AIS drops chains that leave the support
            (weight zero), so ``n_kept <= n``: divide by ``n``, not ``n_kept``, in averages.
        """
        n = _check_n(n)
        if not ais:
            return self._flow_weights(n)
        with self._frozen_ais(n_intermediate) as sampler:
            result = sampler(self.flow, self.target, n, alpha=1.0)
        return result.x, result.log_w

    def ess(self, n: int = 10000, ais: bool = False) -> float:
        """Normalised effective sample size 1 / (n Σ w̄²) of ``n`` importance samples, in
        (0, 1]; 1 when q_θ = p (or AIS reaches p exactly)."""
        n = _check_n(n)
        _, log_w = self.importance_sample(n, ais=ais)
        return float(ess(log_w, n))

    def log_Z(self, n: int = 10000, ais: bool = False, n_splits: int = 10) -> tuple[float, float]:
        """Importance-sampling estimate of log Z = log ∫ p, over ``n_splits`` independent
        batches of ``n // n_splits`` samples.

        Returns:
            ``(mean, stderr)`` of the per-batch estimates logsumexp(log w) - log n_batch.
        """
        n = _check_n(n)
        if not isinstance(n_splits, int) or not 1 <= n_splits <= n:
            raise ValueError(f"n_splits must be an int in 1..n ({n}), got {n_splits!r}")
        size = n // n_splits
        estimates = []
        for _ in range(n_splits):
            _, log_w = self.importance_sample(size, ais=ais)
            estimates.append(float(log_Z_estimate(log_w, size)))
        values = torch.tensor(estimates, dtype=torch.float64)
        stderr = float(values.std() / math.sqrt(n_splits)) if n_splits > 1 else math.nan
        return float(values.mean()), stderr

    @torch.no_grad()
    def expectation(
        self, f: Callable[[torch.Tensor], Any], n: int = 10000, ais: bool = False
    ) -> torch.Tensor:
        """Self-normalised importance-sampling estimate of E_p[f(x)].

        Args:
            f: Maps points ``(n, dim)`` to values ``(n, ...)`` (or a constant).
            n: Number of samples.
            ais: Reweight AIS samples instead of flow samples.

        Returns:
            Σ w̄_i f(x_i), of shape ``f``'s value shape after the first dimension.
        """
        if not callable(f):
            raise ValueError(f"f must be a function of x (n, dim), got {type(f).__name__}")
        x, log_w = self.importance_sample(n, ais=ais)
        w_bar = torch.softmax(log_w, 0)
        values = torch.as_tensor(f(x), dtype=x.dtype, device=x.device)
        if values.dim() == 0:
            values = values.expand(len(x))
        if values.shape[:1] != (len(x),):
            raise ValueError(
                f"f must return one value per point, shape ({len(x)}, ...), got "
                f"{tuple(values.shape)}"
            )
        return (w_bar.view(-1, *([1] * (values.dim() - 1))) * values).sum(0)

    def modes_covered(self, n: int = 10000, fraction: float = 0.1) -> int:
        """Modes of the target holding at least ``fraction`` of their fair share of ``n``
        flow samples (of :attr:`target.n_modes <zoo.fab.targets.Target.n_modes>`)."""
        return self.target.modes_covered(_finite_flow_samples(self, n), fraction)

    # -- evaluation and plots ---------------------------------------------------------------

    def evaluate(self, datamodule: Any = None) -> list[dict[str, Any]]:
        """The paper's metrics: flow and AIS ESS, log Z error (flow and AIS) with its standard
        error, modes covered and mean log q on exact samples (the datamodule's test batch, or
        2000 fresh ones of seed 0). For a target without exact samples or a known log Z
        (alanine dipeptide) the rows are the two ESS and the two log Z estimates. ``paper`` is
        ``None``: the model card quotes the paper.

        Returns:
            Rows ``{"name", "value", "dataset", "paper", ...}``.
        """
        name, n = self.hparams.target, self.hparams.n_eval
        on = f"{name}, {n} samples"
        rows = [
            {"name": "flow ESS", "value": self.ess(n), "dataset": on, "lower_is_better": False},
            {
                "name": "AIS ESS",
                "value": self.ess(n, ais=True),
                "dataset": on,
                "lower_is_better": False,
            },
        ]
        exact = self.target.exact
        for label, ais in (("flow", False), ("AIS", True)):
            mean, stderr = self.log_Z(n, ais=ais)
            row = {
                "stderr": stderr,
                "estimate": mean,
                "dataset": f"{name}, 10 x {n // 10} samples",
            }
            if exact:
                row.update(
                    name=f"log Z error ({label})",
                    value=abs(mean - self.target.log_Z),
                    truth=self.target.log_Z,
                )
            else:
                row.update(name=f"log Z ({label})", value=mean)
            rows.append(row)
        if not exact:
            return [{**row, "paper": None} for row in rows]

        from zoo.fab.data import exact_samples

        if datamodule is not None:
            datamodule.setup("test")
            x_exact = datamodule.splits["test"]
        else:
            x_exact = exact_samples(name, 2000, 0, "test")
        rows.append(
            {
                "name": "modes covered",
                "value": float(self.modes_covered(n)),
                "of": self.target.n_modes,
                "dataset": f"{on}, a mode counts with >= 10% of its fair share",
                "lower_is_better": False,
            }
        )
        log_q = self.log_prob(x_exact.to(self.example_input_array))
        rows.append(
            {
                "name": "mean log q on exact samples",
                "value": float(log_q.mean()),
                "dataset": f"{name}, {len(x_exact)} exact samples",
                "lower_is_better": False,
            }
        )
        return [{**row, "paper": None} for row in rows]

    def plot_ramachandran(self, n: int = 10000, ais: bool = False, ax: Any = None) -> Any:
        """Alanine dipeptide only: the Ramachandran histogram (φ, ψ) of ``n`` flow samples
        reweighted to the target (or AIS samples with ``ais=True``); returns the figure."""
        from zoo.fab.alanine import plot_ramachandran

        if not hasattr(self.target, "dihedrals"):
            raise ValueError(
                f"plot_ramachandran needs a molecular target (aldp); this model's is "
                f"{self.hparams.target!r}: use plot_samples"
            )
        x, log_w = self.importance_sample(_check_n(n), ais=ais)
        kind = "AIS" if ais else "flow"
        title = f"{n} {kind} samples reweighted to the target"
        return plot_ramachandran(self.target.dihedrals(x).cpu(), log_w.cpu(), ax=ax, title=title)

    def plot_samples(self, n: int = 2000, ax: Any = None, dims: tuple[int, int] = (0, 1)) -> Any:
        """Flow samples over the target's (marginal) log density; see :func:`plot_samples`."""
        return plot_samples(self, n=n, ax=ax, dims=dims)

    def showcase(self, out_dir: str | Path) -> dict[str, Any]:
        """Flow ESS and mode coverage of fresh samples, and the sample plots."""
        return showcase(self, out_dir)

    # -- helpers ----------------------------------------------------------------------------

    def _flow_weights(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow samples and log w = log p - log q (NaN or +inf weights set to -inf)."""
        with torch.no_grad():
            x, log_q = self.flow.sample_and_log_prob(n, generator=generator)
            log_w = self.target.log_prob(x) - log_q
        bad = torch.isnan(log_w) | (log_w == math.inf)
        return x, log_w.masked_fill(bad, -math.inf)

    @contextmanager
    def _frozen_ais(self, n_intermediate: int | None) -> Any:
        """The module's AIS in eval mode (frozen step sizes), or a copy with another K."""
        sampler = self.ais
        if n_intermediate is not None and n_intermediate != sampler.n_intermediate:
            if not isinstance(n_intermediate, int) or n_intermediate < 0:
                raise ValueError(f"n_intermediate must be an int >= 0, got {n_intermediate!r}")
            step = float(sampler.step_sizes.mean()) if sampler.n_intermediate else 1.0
            sampler = AIS(
                sampler.dim,
                n_intermediate,
                sampler.transition_kind,
                step_size=step,
                n_leapfrog=sampler.n_leapfrog,
                metropolis_std=sampler.metropolis_std,
                adapt=False,
            ).to(self.example_input_array)
        was_training = sampler.training
        sampler.eval()
        try:
            yield sampler
        finally:
            sampler.train(was_training)

    def _check_points(self, x: Any) -> torch.Tensor:
        dim = self.target.dim
        probe = self.example_input_array
        x = torch.as_tensor(x, dtype=probe.dtype, device=probe.device)
        if x.dim() != 2 or x.shape[1] != dim:
            raise ValueError(
                f"x must have shape (n, {dim}) for this {dim}-D model, got {tuple(x.shape)}"
            )
        return x


@torch.no_grad()
def _finite_flow_samples(model: Any, n: int) -> torch.Tensor:
    """``n`` flow samples without the rows that overflowed (see ``sample_and_log_prob``), for
    plots and mode counts."""
    x = model.flow.sample(_check_n(n))
    return x[torch.isfinite(x).all(-1)]


def _warn_non_finite(x: torch.Tensor) -> None:
    bad = int((~torch.isfinite(x).all(-1)).sum())
    if bad:
        warnings.warn(
            f"{bad} of {len(x)} flow samples are not finite (the flow overflows far in the tail "
            "of its base); drop them with x[torch.isfinite(x).all(-1)], or use "
            "importance_sample, which gives them weight zero",
            RuntimeWarning,
            stacklevel=4,
        )


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    return n


def _marginal_log_density(model: Any, dims: tuple[int, int], u: torch.Tensor, v: torch.Tensor):
    """The target's log density on a grid of two coordinates: exact for a 2-D target, the
    product of the 1-D marginals for Many Well (its coordinates are independent); ``None``
    when there is no closed form."""
    from zoo.fab.targets import ManyWell

    target = model.target
    if target.dim == 2:
        points = torch.stack([u.flatten(), v.flatten()], -1)
        if dims == (1, 0):
            points = points.flip(-1)
        return target.log_prob(points.to(model.example_input_array)).reshape(u.shape)
    if isinstance(target, ManyWell):

        def marginal(i: int, x: torch.Tensor) -> torch.Tensor:
            return -(x**4 - 6 * x**2 - 0.5 * x) if i % 2 == 0 else -0.5 * x**2

        return marginal(dims[0], u) + marginal(dims[1], v)
    return None


def plot_samples(model: Any, *, n: int = 2000, ax: Any = None, dims: tuple[int, int] = (0, 1)):
    """Flow samples (coordinates ``dims``) over contours of the target's log density.

    In 2-D the contours are the target's own; for Many Well they are the two coordinates'
    marginal (exact: the coordinates are independent); otherwise exact samples stand in.
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    i, j = dims
    dim = model.target.dim
    if not (0 <= i < dim and 0 <= j < dim and i != j):
        raise ValueError(f"dims must be two different coordinates in 0..{dim - 1}, got {dims}")
    x = _finite_flow_samples(model, n).cpu()
    figure = None
    if ax is None:
        figure, ax = plt.subplots(figsize=(5, 5))
    modes = model.target.modes.cpu()
    span = torch.cat([x[:, [i, j]], modes[:, [i, j]]])
    low, high = span.quantile(0.001, 0).tolist(), span.quantile(0.999, 0).tolist()
    pad = [0.1 * (h - lo) + 1.0 for lo, h in zip(low, high, strict=True)]
    u = torch.linspace(low[0] - pad[0], high[0] + pad[0], 200, dtype=torch.float64)
    v = torch.linspace(low[1] - pad[1], high[1] + pad[1], 200, dtype=torch.float64)
    grid_u, grid_v = torch.meshgrid(u, v, indexing="xy")
    log_p = _marginal_log_density(model, (i, j), grid_u, grid_v)
    if log_p is not None:
        top = float(log_p.max())
        log_p = log_p.cpu().clamp(min=top - 40.0)
        grids = (grid_u.numpy(), grid_v.numpy(), log_p.numpy())
        levels = torch.linspace(top - 30.0, top, 16).tolist()  # above the clamped floor
        ax.contour(*grids, levels=levels, cmap="viridis", linewidths=0.6)
    else:
        from zoo.fab.data import exact_samples

        truth = exact_samples(model.hparams.target, n, 0, "test").numpy()
        ax.scatter(truth[:, i], truth[:, j], s=2, color="grey", alpha=0.3, label="exact")
    x = x.numpy()
    ax.scatter(x[:, i], x[:, j], s=2, color="tab:red", alpha=0.4, label="flow")
    limits = {"xlim": (float(u[0]), float(u[-1])), "ylim": (float(v[0]), float(v[-1]))}
    ax.set(xlabel=f"x{i}", ylabel=f"x{j}", **limits)
    ax.set_title(f"{model.hparams.target}: {n} flow samples over log p", fontsize=9)
    ax.legend(markerscale=4, fontsize=7, loc="upper right")
    return figure if figure is not None else ax.figure


def showcase(model: Any, out_dir: str | Path) -> dict[str, Any]:
    """Flow samples over the target (and, above 2-D, a second pair of coordinates), saved
    under ``out_dir``; flow ESS of 10k samples and the modes they cover."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pairs = [(0, 1)] if model.target.dim == 2 else [(0, 1), (0, 2)]
    figure, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 5), squeeze=False)
    for ax, dims in zip(axes[0], pairs, strict=True):
        plot_samples(model, ax=ax, dims=dims)
    figure.tight_layout()
    figure.savefig(out_dir / "samples.png", dpi=110)
    plt.close(figure)
    n_modes = model.target.n_modes
    return {
        "task": f"sample {model.hparams.target} with the flow, reweight to the target",
        "metric": "flow ESS (10k samples)",
        "value": model.ess(10000),
        "modes": f"{model.modes_covered(10000)}/{n_modes}",
    }
