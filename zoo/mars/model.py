"""``MARS``: a meta-learned function-space score network, used as the prior of fSVGD.

References:
    Pavasovic, Rothfuss, Krause. "MARS: Meta-Learning as Score Matching in the Function
    Space." ICLR 2023. https://arxiv.org/abs/2210.13319
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch

from zoo.mars.score import ScoreTransformer, score_matching_loss
from zoo.mars.svgd import FSVGD, TaskPosterior

__all__ = ["MARS", "Posterior"]


@dataclass
class Posterior:
    """The fitted posterior of one task, in the task's own units.

    Call :meth:`predict` for the mixture mean and standard deviation, :meth:`sample` for
    particle functions.
    """

    inner: TaskPosterior
    model: MARS
    x: torch.Tensor
    y: torch.Tensor

    def predict(self, x: torch.Tensor, noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and standard deviation at ``x`` (``(n,)`` or ``(n, x_dim)``);
        ``noise=False`` gives the epistemic part only."""
        x = self.model._inputs(x)
        mean, std = self.inner.predict(self.model._normalize_x(x), noise)
        return mean * self.model.y_std + self.model.y_mean, std * self.model.y_std

    def sample(self, x: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """Particle functions at ``x``: ``(n, len(x))``."""
        x = self.model._inputs(x)
        f = self.inner.sample(self.model._normalize_x(x), n)
        return f * self.model.y_std + self.model.y_mean


class MARS(pl.LightningModule):
    """Meta-learning as score matching: the score network and the fSVGD that uses it.

    Training (``zoo fit``) fits the score network by exact score matching on function samples
    of the meta-train tasks' GP interpolators (:class:`~zoo.mars.MarsDataModule`). At
    meta-test, :meth:`fit_task` runs fSVGD on a new task with the network as prior score.
    Inputs and outputs are normalized with the meta-train statistics, stored with the weights.

    Args:
        x_dim: Input dimension.
        width, blocks, heads, key_size, widening, spectral: The score transformer.
        lr: Adam learning rate of the score network.
        particles: fSVGD particles.
        svgd_steps: fSVGD steps per task.
        svgd_lr: fSVGD learning rate.
        bandwidth: fSVGD kernel bandwidth (normalized units).
        noise: fSVGD likelihood and predictive noise (normalized units); ``None`` takes the
            meta-train GP's noise.
        n_measurement: Measurement points per fSVGD step.
        clip: Prior score clipping.

    The fSVGD defaults (``noise``, ``bandwidth``, ``clip``) were chosen on the sinusoid
    meta-validation tasks (``python -m zoo.mars.evaluate --split val``).
    """

    def __init__(
        self,
        x_dim: int = 1,
        width: int = 64,
        blocks: int = 2,
        heads: int = 8,
        key_size: int = 32,
        widening: int = 2,
        spectral: bool = True,
        lr: float = 1e-3,
        particles: int = 10,
        svgd_steps: int = 1000,
        svgd_lr: float = 3e-3,
        bandwidth: float = 2.0,
        noise: float | None = 0.2,
        n_measurement: int = 10,
        clip: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.score = ScoreTransformer(x_dim, width, blocks, heads, key_size, widening, spectral)
        for name, shape in (
            ("x_mean", (x_dim,)),
            ("x_std", (x_dim,)),
            ("box_low", (x_dim,)),
            ("box_high", (x_dim,)),
            ("y_mean", ()),
            ("y_std", ()),
            ("gp_noise", ()),
        ):
            self.register_buffer(name, torch.zeros(shape, dtype=torch.float64))
        self.x_std.fill_(1.0)
        self.y_std.fill_(1.0)
        self.box_low.fill_(-1.0)
        self.box_high.fill_(1.0)
        self.gp_noise.fill_(0.1)
        self.last: Posterior | None = None
        self.example_input_array = (
            torch.linspace(-1, 1, 6).view(1, 6, 1).repeat(1, 1, x_dim),
            torch.linspace(-0.5, 0.5, 6).view(1, 6),
        )

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """The learned score of normalized function values ``f`` at normalized inputs ``x``.

        Shapes:
            - x: ``(batch, k, x_dim)``; f: ``(batch, k)``; output: ``(batch, k)``
        """
        return self.score(x, f)

    # ----------------------------------------------------------------------------------------
    # Training

    def on_fit_start(self) -> None:
        dm = self.trainer.datamodule
        dm.setup()
        norm = dm.normalization
        for name, value in (
            ("x_mean", norm.x_mean),
            ("x_std", norm.x_std),
            ("y_mean", norm.y_mean),
            ("y_std", norm.y_std),
            ("box_low", dm.box[0]),
            ("box_high", dm.box[1]),
            ("gp_noise", torch.tensor(dm.gp.noise)),
        ):
            getattr(self, name).copy_(value)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, f = batch
        loss = score_matching_loss(self.score, x, f)
        self.log("train/score_matching", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.score.parameters(), lr=self.hparams.lr)

    # ----------------------------------------------------------------------------------------
    # Meta-test

    def fit_task(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        steps: int | None = None,
        particles: int | None = None,
        seed: int = 0,
        prior: str = "learned",
    ) -> Posterior:
        """Fits the posterior of a new task with fSVGD.

        Args:
            x: Context inputs, ``(n,)`` or ``(n, x_dim)``.
            y: Context outputs, ``(n,)`` or ``(n, 1)``.
            steps: fSVGD steps (default from the init args).
            particles: Particles (default from the init args).
            seed: Seed of particles and measurement points.
            prior: ``learned`` (the score network) or ``normal`` (a standard normal
                function-space prior: the "vanilla BNN" baseline).

        Returns:
            The posterior; also kept as ``self.last`` for :meth:`predict`.
        """
        x, y = self._check_task(x, y)
        (self.last,) = self._fit([(x, y)], steps, particles, seed, prior)
        return self.last

    def fit_tasks(
        self,
        tasks: Sequence[tuple[Any, Any]],
        *,
        steps: int | None = None,
        particles: int | None = None,
        seed: int = 0,
        prior: str = "learned",
    ) -> list[Posterior]:
        """:meth:`fit_task` on many tasks at once: one fSVGD run over all their particles,
        much faster than a loop. Tasks with equal numbers of context points are batched.

        Args:
            tasks: ``(x, y)`` pairs, each as :meth:`fit_task` takes them.
            steps, particles, seed, prior: As in :meth:`fit_task`; every task gets ``seed``.

        Returns:
            One posterior per task, in order.
        """
        checked = [self._check_task(x, y) for x, y in tasks]
        posteriors: list[Posterior] = [None] * len(checked)  # type: ignore[list-item]
        for n in sorted({len(x) for x, _ in checked}):
            index = [i for i, (x, _) in enumerate(checked) if len(x) == n]
            group = self._fit([checked[i] for i in index], steps, particles, seed, prior)
            for i, post in zip(index, group, strict=True):
                posteriors[i] = post
        return posteriors

    def _fit(
        self,
        tasks: list[tuple[torch.Tensor, torch.Tensor]],
        steps: int | None,
        particles: int | None,
        seed: int,
        prior: str,
    ) -> list[Posterior]:
        """fSVGD on checked tasks that share their number of context points."""
        if prior not in ("learned", "normal"):
            raise ValueError(f"MARS: prior must be 'learned' or 'normal', got {prior!r}")
        hp = self.hparams
        svgd = FSVGD(
            particles=particles or hp.particles,
            steps=steps or hp.svgd_steps,
            lr=hp.svgd_lr,
            bandwidth=hp.bandwidth,
            noise=hp.noise if hp.noise is not None else float(self.gp_noise),
            n_measurement=hp.n_measurement,
            clip=hp.clip,
        )
        xs = torch.stack([self._normalize_x(x) for x, _ in tasks])
        ys = torch.stack([(y - self.y_mean) / self.y_std for _, y in tasks])
        prior_score = self._prior_score if prior == "learned" else None
        box = (self.box_low, self.box_high)
        inner = svgd.fit_many(xs, ys, prior_score, box, [seed] * len(tasks))
        return [Posterior(post, self, x, y) for post, (x, y) in zip(inner, tasks, strict=True)]

    def predict(self, x: torch.Tensor, noise: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`Posterior.predict` of the last task fitted with :meth:`fit_task`."""
        if self.last is None:
            raise RuntimeError("MARS.predict: call fit_task(x, y) first")
        return self.last.predict(x, noise)

    def evaluate(
        self,
        split: str = "meta_test",
        datamodule: Any = None,
        *,
        seeds: int = 5,
        methods: tuple[str, ...] | None = None,
        n_tasks: int | None = None,
    ) -> list[dict[str, Any]]:
        """The meta-test table: MARS and the baselines on the evaluation tasks of the recipe's
        environment (or of ``datamodule``), one metric code for all.

        Args:
            split: ``"meta_test"`` (or ``"test"``) or ``"meta_val"`` (or ``"val"``).
            datamodule: A :class:`~zoo.mars.datamodule.MarsDataModule`; the recipe's by default.
            seeds: Number of fSVGD seeds; the table gives their mean and standard deviation.
            methods: Subset of :data:`zoo.mars.evaluate.METHODS`.
            n_tasks: Evaluate on the first ``n_tasks`` tasks only.

        Returns:
            One row per method and metric: ``name`` (``"<method> <metric>"``), ``value`` (mean
            over seeds), ``std`` (over seeds), ``dataset``.
        """
        from zoo.mars.evaluate import METHODS, evaluate_methods
        from zoo.recipes import datamodule_from_recipe, recipe_of

        split = {"meta_test": "test", "meta_val": "val"}.get(split, split)
        if split not in ("test", "val"):
            raise ValueError(
                f"MARS.evaluate: split must be 'meta_test' or 'meta_val', got {split!r}"
            )
        dm = datamodule or datamodule_from_recipe(recipe_of(self))
        rows = evaluate_methods(
            self,
            dm,
            split=split,
            seeds=tuple(range(seeds)),
            methods=methods or METHODS,
            n_tasks=n_tasks,
        )
        return [
            {
                "name": f"{r['method']} {r['name']}",
                "value": r["value"],
                "std": r["std"],
                "dataset": r["dataset"],
            }
            for r in rows
        ]

    def showcase(self, out_dir: Any) -> dict[str, Any]:
        """Fits the first meta-test task of the recipe's environment, saves the plot, and
        reports MARS's NLL on that task's query points."""
        from pathlib import Path

        from zoo.mars.metrics import mixture_nll
        from zoo.recipes import datamodule_from_recipe, recipe_of

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        dm = datamodule_from_recipe(recipe_of(self))
        task = dm.tasks("test")[0]
        post = self.fit_task(task.x, task.y)
        ax = self.plot_task(post, x_true=task.x_query, y_true=task.y_query)
        ax.figure.savefig(out_dir / "task.png", dpi=120)
        nll = mixture_nll(
            task.y_query, post.sample(task.x_query), float(post.inner.noise * self.y_std)
        )
        return {
            "task": f"fit a new {dm.hparams.env} task from {len(task.x)} points",
            "metric": "NLL on 200 query points",
            "value": nll,
        }

    def plot_task(
        self,
        post: Posterior | None = None,
        *,
        x_true: torch.Tensor | None = None,
        y_true: torch.Tensor | None = None,
        ax: Any = None,
    ) -> Any:
        """Draws a fitted task: context points, predictive mean, 95% band, the particles, and
        optionally the true function. Returns the axes."""
        import matplotlib.pyplot as plt

        post = post or self.last
        if post is None:
            raise RuntimeError("MARS.plot_task: fit a task first (fit_task)")
        if ax is None:
            ax = plt.subplots(figsize=(5.5, 3.4), layout="constrained")[1]
        low, high = (float(corner[0]) for corner in self._raw_box())
        grid = torch.linspace(low, high, 300, dtype=torch.float64)
        mean, std = post.predict(grid)
        ax.fill_between(
            grid,
            mean - 1.96 * std,
            mean + 1.96 * std,
            color="tab:blue",
            alpha=0.2,
            lw=0,
            label="95% predictive",
        )
        for i, f in enumerate(post.sample(grid)):
            ax.plot(
                grid, f, color="tab:blue", lw=0.6, alpha=0.5, label="particles" if i == 0 else None
            )
        ax.plot(grid, mean, color="tab:blue", lw=1.8, label="mean")
        if x_true is not None and y_true is not None:
            order = torch.argsort(x_true.flatten())
            ax.plot(x_true.flatten()[order], y_true[order], "k--", lw=1, label="truth")
        ax.plot(post.x[:, 0], post.y, "o", color="tab:red", ms=5, label="context")
        ax.set(xlabel="x", ylabel="y")
        ax.legend(frameon=False, fontsize=8)
        return ax

    def _prior_score(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        self.score.eval()
        return self.score(x.float(), f.float()).to(f.dtype)

    def _raw_box(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The measurement box in the task's own input units."""
        return self.box_low * self.x_std + self.x_mean, self.box_high * self.x_std + self.x_mean

    def _normalize_x(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_std

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float64)
        if x.ndim == 1 and self.hparams.x_dim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.hparams.x_dim:
            raise ValueError(
                f"MARS expects inputs of shape (n, {self.hparams.x_dim}), got {tuple(x.shape)}"
            )
        if not torch.isfinite(x).all():
            raise ValueError("MARS inputs contain NaN or infinite values")
        low, high = self._raw_box()
        if ((x < low) | (x > high)).any():
            warnings.warn(
                f"MARS: inputs outside the meta-train box [{low.tolist()}, {high.tolist()}]; "
                "the score network never saw them, so the prior there is unreliable",
                stacklevel=3,
            )
        return x

    def _check_task(self, x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._inputs(x)
        y = torch.as_tensor(y, dtype=torch.float64)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(
                f"MARS: x has shape {tuple(x.shape)} but y has shape "
                f"{tuple(y.shape)}; give one output per input, as (n,) or (n, 1)"
            )
        if not torch.isfinite(y).all():
            raise ValueError("MARS: y contains NaN or infinite values")
        return x, y
