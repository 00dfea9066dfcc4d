"""``KernelOperator``: a linear operator between periodic functions, learned in closed form with
multilevel regularisation.

References:
    Jin, Lu, Blanchet, Ying. "Minimax Optimal Kernel Operator Learning via Multilevel
    Training." ICLR 2023. https://arxiv.org/abs/2209.14430
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from zoo.kernel_operator import fourier
from zoo.kernel_operator.solve import Regularisation, Statistics, fit, tune

__all__ = ["KernelOperator"]

_FOLDS = 5  # sample index mod 5; the last fold is the hold-out


class KernelOperator(pl.LightningModule):
    """A linear operator ``u = W f`` held as a matrix in the orthonormal real Fourier basis.

    Inputs are grid values on the periodic unit interval; the module takes their first ``n_in``
    real Fourier coefficients, applies ``W`` (``n_out × n_in``) and returns the output on the
    same grid, so it works on any even grid of at least ``n_in`` points and is exact for
    band-limited inputs.

    Training is the closed form, run through Lightning: one epoch accumulates ``XᵀX`` and
    ``XᵀY`` over the batches, then each dyadic output level ``l`` (output modes
    ``2^l ... 2^(l+1) - 1``) is solved with its own input regularisation, which grows with the
    output frequency (ridge ``λ_l = λ_0 2^(ρl)``, or spectral cutoff ``N_l = ⌊T 2^(-κl)⌋``);
    levels above ``max_level`` are set to zero. Any of ``lam0``/``T``, ``rho``/``kappa``,
    ``max_level`` left ``None`` is tuned on a hold-out fifth of the training samples from Gram
    quantities alone, then the estimate is refitted on all of them.

    ``levels="single"`` gives the single-level estimator (one input filter shared by every kept
    output mode), for comparison. ``mode="gradient"`` trains the same ridge objective with
    L-BFGS instead (full batches), with the regularisation given.

    Args:
        n_in: Input real modes.
        n_out: Output real modes.
        filter: ``ridge`` or ``cutoff``.
        levels: ``dyadic`` (multilevel) or ``single``.
        lam0: Ridge at level 0.
        rho: Ridge growth per level.
        T: Input cutoff at level 0.
        kappa: Cutoff decay per level.
        max_level: Highest output level kept.
        mode: ``closed_form`` or ``gradient``.

    Shapes:
        - input: ``(batch, M)`` or ``(M,)`` grid values, ``M`` even and ``>= n_in``
        - output: same shape as the input

    Example:
        >>> import torch
        >>> from zoo.kernel_operator import KernelOperator
        >>> model = KernelOperator(n_in=8, n_out=8)
        >>> model(torch.zeros(2, 16)).shape
        torch.Size([2, 16])
    """

    def __init__(
        self,
        n_in: int = 128,
        n_out: int = 128,
        filter: str = "ridge",
        levels: str = "dyadic",
        lam0: float | None = None,
        rho: float | None = None,
        T: float | None = None,
        kappa: float | None = None,
        max_level: int | None = None,
        mode: str = "closed_form",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        _check_choice("filter", filter, ("ridge", "cutoff"))
        _check_choice("levels", levels, ("dyadic", "single"))
        _check_choice("mode", mode, ("closed_form", "gradient"))
        for name, value in (("n_in", n_in), ("n_out", n_out)):
            if value < 1:
                raise ValueError(f"KernelOperator: {name} must be positive, got {value}")
        if mode == "gradient" and (filter != "ridge" or None in (lam0, rho, max_level)):
            raise ValueError(
                "KernelOperator: mode='gradient' trains the ridge objective with the "
                "regularisation given; pass filter='ridge', lam0, rho and max_level (fit the "
                "closed form first and copy its `regularisation`)"
            )
        self.automatic_optimization = mode == "gradient"

        # --- the estimate and its structure (exported) ---
        # W is a parameter in both modes; the closed form sets it without gradients (it is
        # marked trainable only while fitting, so that DDP can wrap the module).
        self.W = nn.Parameter(
            torch.zeros(n_out, n_in, dtype=torch.float64), requires_grad=mode == "gradient"
        )
        self.register_buffer("level", fourier.levels(n_out))
        self.register_buffer("input_variance", torch.zeros(n_in, dtype=torch.float64))
        self.register_buffer("chosen", torch.full((3,), math.nan, dtype=torch.float64))

        # --- sufficient statistics per fold (resume-only state, never exported) ---
        self.register_buffer(
            "xtx", torch.zeros(_FOLDS, n_in, n_in, dtype=torch.float64), persistent=False
        )
        self.register_buffer(
            "xty", torch.zeros(_FOLDS, n_in, n_out, dtype=torch.float64), persistent=False
        )
        self.register_buffer(
            "yty", torch.zeros(_FOLDS, n_out, dtype=torch.float64), persistent=False
        )
        self.register_buffer("count", torch.zeros(_FOLDS, dtype=torch.float64), persistent=False)
        self._stale = False
        self._error = torch.zeros(2, dtype=torch.float64)

        self.example_input_array = torch.sin(2 * math.pi * torch.arange(2 * n_in) / (2 * n_in))

    # ----------------------------------------------------------------------------------------
    # Prediction

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Applies the learned operator to grid values.

        Args:
            f: ``(batch, M)`` or ``(M,)`` values at ``x_i = i/M``.

        Returns:
            The output on the same grid.
        """
        self._check_input(f)
        x = fourier.to_coefficients(f.to(self.W.dtype), self.hparams.n_in)
        y = x @ self.W.T  # (batch, n_out)
        m = f.shape[-1]
        return fourier.from_coefficients(y[..., :m], m).to(f.dtype)

    def apply(
        self, fn: Callable[[torch.Tensor], torch.Tensor], m: int = 256
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Applies the operator to a Python function of ``x`` in ``[0, 1)``.

        Returns:
            The grid ``x`` (``(m,)``) and the output values on it.
        """
        x = torch.arange(m, dtype=torch.float64) / m
        f = torch.as_tensor(fn(x), dtype=torch.float64)
        with torch.no_grad():
            return x, self(f)

    def green(self, m: int = 128) -> torch.Tensor:
        """The learned Green's function as an ``(m, m)`` grid matrix: ``u = green(m) @ f``.

        The kernel ``G(x_i, y_l)`` of ``u(x) = ∫ G(x, y) f(y) dy`` is ``m`` times it.
        """
        with torch.no_grad():
            return self(torch.eye(m, dtype=torch.float64)).T

    def support_mask(self) -> torch.Tensor:
        """The learned ``(output, input)`` modes, ``(n_out, n_in)`` bool: the staircase of the
        paper's Figure 1. Cutoff: ``k < N_l``; ridge: input modes whose variance is at least
        the level's ``λ_l``; levels above ``max_level`` are empty."""
        reg = self.regularisation
        k = torch.arange(self.hparams.n_in, device=self.W.device)
        rows = []
        for level in self.level.tolist():
            if level > reg.max_level:
                rows.append(torch.zeros_like(k, dtype=torch.bool))
            elif reg.filter == "cutoff":
                rows.append(k < reg.cutoff(level))
            else:
                rows.append(self.input_variance >= reg.ridge(level))
        return torch.stack(rows)

    @property
    def regularisation(self) -> Regularisation:
        """The regularisation in use (tuned, or as given)."""
        if torch.isnan(self.chosen).any():
            raise RuntimeError(
                "KernelOperator has not been fitted; run `zoo fit` or `fit_closed_form` first"
            )
        scale, slope, max_level = self.chosen.tolist()
        return Regularisation(self.hparams.filter, scale, slope, int(max_level))

    # ----------------------------------------------------------------------------------------
    # Evaluation and figures

    def evaluate(self, datamodule: pl.LightningDataModule | None = None) -> list[dict[str, Any]]:
        """Test error on the noise-free test functions of the recipe's data (or ``datamodule``).

        Returns:
            The relative L2 error ``‖Û - U‖_F / ‖U‖_F`` pooled over the test set, and the exact
            relative risk ``E‖(Ŵ - A)f‖² / E‖Af‖²`` from the true operator.
        """
        from zoo.recipes import datamodule_from_recipe, recipe_of

        dm = datamodule or datamodule_from_recipe(recipe_of(self))
        f, u = dm.split("test").tensors
        with torch.no_grad():
            prediction = self(f)
        where = f"{dm.hparams.task}, {len(f)} noise-free test functions, M = {f.shape[-1]}"
        task = dm.task
        return [
            {
                "name": "test relative L2 error",
                "value": float((prediction - u).norm() / u.norm()),
                "dataset": where,
            },
            {
                "name": "exact relative risk",
                "value": task.risk(self.W.detach().cpu()) / task.energy(),
                "dataset": f"{dm.hparams.task}, from the true operator",
            },
        ]

    def showcase(self, out_dir: str | Path) -> dict[str, Any]:
        """Evaluates on the recipe's test data and saves the Green's function, the learned
        staircase and one prediction under ``out_dir``."""
        from zoo.kernel_operator import plots
        from zoo.recipes import datamodule_from_recipe, recipe_of

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        dm = datamodule_from_recipe(recipe_of(self))
        rows = self.evaluate(dm)
        f, u = dm.split("test").tensors
        plots.save(self.plot_green(), out_dir / "green.png")
        plots.save(self.plot_support(), out_dir / "support.png")
        plots.save(plots.plot_prediction(self, f[0], u[0]), out_dir / "prediction.png")
        return {
            "task": f"apply the {dm.hparams.task} operator to {len(f)} test functions",
            "metric": rows[0]["name"],
            "value": rows[0]["value"],
        }

    def plot_green(self, m: int = 128, ax: Any = None) -> Any:
        """Draws :meth:`green` as the kernel ``G(x, y)``; returns the axes."""
        from zoo.kernel_operator.plots import plot_green

        return plot_green(self, m, ax)

    def plot_support(self, ax: Any = None) -> Any:
        """Draws :meth:`support_mask`, the learned staircase; returns the axes."""
        from zoo.kernel_operator.plots import plot_support

        return plot_support(self, ax)

    # ----------------------------------------------------------------------------------------
    # The closed form

    def accumulate(self, f: torch.Tensor, u: torch.Tensor) -> None:
        """Adds a batch of input and output grids to the statistics."""
        x = fourier.to_coefficients(f.double(), self.hparams.n_in)
        y = fourier.to_coefficients(u.double(), self.hparams.n_out)
        fold = (self.count.sum().long() + torch.arange(len(x), device=x.device)) % _FOLDS
        for k in range(_FOLDS):
            xk, yk = x[fold == k], y[fold == k]
            self.xtx[k] += xk.T @ xk
            self.xty[k] += xk.T @ yk
            self.yty[k] += (yk**2).sum(0)
            self.count[k] += len(xk)
        self._stale = True

    def solve(self) -> Regularisation:
        """Solves for ``W`` from the accumulated statistics, tuning what was not given."""
        folds = [
            Statistics(self.xtx[k], self.xty[k], self.yty[k], float(self.count[k]))
            for k in range(_FOLDS)
        ]
        full = sum(folds[1:], folds[0])
        if full.n == 0:
            raise RuntimeError("KernelOperator.solve: no data has been accumulated")
        reg = self._given()
        if reg is None:
            train = sum(folds[1:-1], folds[0])
            reg, _ = tune(
                train,
                folds[-1],
                self.level,
                self.hparams.filter,
                single=self.hparams.levels == "single",
            )
            reg = self._override(reg)
        self.W.data.copy_(fit(full, self.level, reg))
        self.input_variance.copy_(torch.diagonal(full.xtx) / full.n)
        self.chosen.copy_(torch.tensor([reg.scale, reg.slope, reg.max_level]))
        self._stale = False
        return reg

    def fit_closed_form(self, f: torch.Tensor, u: torch.Tensor) -> KernelOperator:
        """Fits on in-memory grids ``(n, M)`` without a Trainer; returns ``self``."""
        self.reset_statistics()
        self.accumulate(f, u)
        self.solve()
        return self.eval()

    def reset_statistics(self) -> None:
        for buffer in (self.xtx, self.xty, self.yty, self.count):
            buffer.zero_()

    # ----------------------------------------------------------------------------------------
    # Lightning

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> Any:
        f, u = batch
        if self.hparams.mode == "closed_form":
            self.accumulate(f, u)
            if self.trainer.is_last_batch:
                self.optimizers().step()  # the solve, counted by Lightning as one step
            return None
        loss = self._ridge_objective(f, u)
        self.log("train/objective", loss, prog_bar=True, sync_dist=True)
        return loss

    def on_train_epoch_start(self) -> None:
        if self.hparams.mode == "closed_form":
            self.reset_statistics()

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.mode == "closed_form":
            self.W.requires_grad_(True)  # DDP refuses a module with nothing to train

    def on_fit_end(self) -> None:
        if self.hparams.mode == "closed_form":
            self.W.requires_grad_(False)

    def on_validation_epoch_start(self) -> None:
        # A run stopped mid-epoch (limit_train_batches, max_steps) has not solved yet.
        if self.hparams.mode == "closed_form" and self._stale:
            self._solve_synced()
        self._error.zero_()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self._evaluate_batch(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_errors("val")

    def on_test_epoch_start(self) -> None:
        self._error.zero_()

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self._evaluate_batch(batch)

    def on_test_epoch_end(self) -> None:
        self._log_errors("test")

    def configure_optimizers(self) -> Any:
        if self.hparams.mode == "closed_form":
            return _ClosedFormStep(self)
        return torch.optim.LBFGS(
            [self.W],
            lr=1.0,
            max_iter=100,
            history_size=100,
            tolerance_grad=1e-14,
            tolerance_change=1e-16,
            line_search_fn="strong_wolfe",
        )

    # ----------------------------------------------------------------------------------------

    def _solve_synced(self) -> None:
        strategy = self.trainer.strategy
        for buffer in (self.xtx, self.xty, self.yty, self.count):
            buffer.copy_(strategy.reduce(buffer, reduce_op="sum"))
        reg = self.solve()
        rank_zero_info(f"KernelOperator: solved with {reg} from {int(self.count.sum())} samples")
        self.log_dict(
            {
                "fit/scale": reg.scale,
                "fit/slope": reg.slope,
                "fit/max_level": float(reg.max_level),
            },
            rank_zero_only=True,
        )

    def _ridge_objective(self, f: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``(1/n) Σ‖u_i - W f_i‖² + Σ_l λ_l ‖W_l‖²`` in coefficients, levels above the cut
        held at zero."""
        reg = self._given()
        x = fourier.to_coefficients(f.double(), self.hparams.n_in)
        y = fourier.to_coefficients(u.double(), self.hparams.n_out)
        kept = (self.level <= reg.max_level).double()[:, None]
        w = self.W * kept
        ridge = torch.tensor(
            [reg.ridge(level) for level in self.level.tolist()], dtype=w.dtype, device=w.device
        )
        return ((y - x @ w.T) ** 2).sum(1).mean() + (ridge[:, None] * w**2).sum()

    def on_train_end(self) -> None:
        if self.hparams.mode == "gradient":
            reg = self._given()
            self.W.data.mul_((self.level <= reg.max_level).double()[:, None])
            self.chosen.copy_(torch.tensor([reg.scale, reg.slope, reg.max_level]))

    def _evaluate_batch(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        f, u = batch
        prediction = self(f)
        self._error += torch.stack([((prediction - u) ** 2).sum(), (u**2).sum()]).double().cpu()

    def _log_errors(self, stage: str) -> None:
        error = self.trainer.strategy.reduce(self._error.to(self.device), reduce_op="sum")
        self.log(f"{stage}/rel_l2", (error[0] / error[1]).sqrt(), rank_zero_only=True)
        task = getattr(self.trainer.datamodule, "task", None)
        if task is not None and not torch.isnan(self.chosen).any():
            self.log(
                f"{stage}/rel_risk",
                task.risk(self.W.detach().cpu()) / task.energy(),
                rank_zero_only=True,
            )

    def _requested(self) -> tuple[float | None, float | None, int | None]:
        """``(scale, slope, max_level)`` as the init args fix them (``None``: tune it); the
        single-level estimator fixes the slope at 0."""
        hp = self.hparams
        scale, slope = (hp.lam0, hp.rho) if hp.filter == "ridge" else (hp.T, hp.kappa)
        return scale, 0.0 if hp.levels == "single" else slope, hp.max_level

    def _given(self) -> Regularisation | None:
        """The regularisation fully given by the init args, or ``None`` if some is tuned."""
        scale, slope, max_level = self._requested()
        if None in (scale, slope, max_level):
            return None
        return Regularisation(self.hparams.filter, float(scale), float(slope), int(max_level))

    def _override(self, tuned: Regularisation) -> Regularisation:
        """The tuned regularisation with whatever the init args fix put back."""
        scale, slope, max_level = self._requested()
        return Regularisation(
            tuned.filter,
            tuned.scale if scale is None else float(scale),
            tuned.slope if slope is None else float(slope),
            tuned.max_level if max_level is None else int(max_level),
        )

    def _check_input(self, f: torch.Tensor) -> None:
        if not isinstance(f, torch.Tensor):
            raise TypeError(
                f"KernelOperator expects a torch.Tensor of grid values, got "
                f"{type(f).__name__}; use `apply(fn)` for a Python function"
            )
        if f.ndim not in (1, 2):
            raise ValueError(
                f"KernelOperator expects (batch, M) or (M,) grid values, got "
                f"shape {tuple(f.shape)}"
            )
        m = f.shape[-1]
        if m % 2 or m < self.hparams.n_in:
            raise ValueError(
                f"KernelOperator needs an even grid of at least n_in = {self.hparams.n_in} "
                f"points, got M = {m}; resample the input onto such a grid"
            )
        if not torch.isfinite(f).all():
            bad = int((~torch.isfinite(f)).sum())
            raise ValueError(
                f"KernelOperator input has {bad} NaN or infinite values; clean "
                "or interpolate them first"
            )


class _ClosedFormStep(torch.optim.Optimizer):
    """The closed-form solve as an optimizer, so that Lightning counts it as a training step
    (checkpointing and ``max_steps`` then work as for any model)."""

    def __init__(self, module: KernelOperator) -> None:
        super().__init__([module.W], {})
        self._module = module

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> None:
        if closure is not None:
            with torch.enable_grad():
                closure()
        self._module._solve_synced()


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"KernelOperator: {name} must be one of {choices}, got {value!r}")
