"""``NLSBModule``: the regularised potential-drift neural SDE, trained interval by interval.

Each observed interval [t_{k-1}, t_k] starts from the observed samples at t_{k-1} (the first
from the base sample) and is integrated by Euler–Maruyama; its loss is

    α_D · Sinkhorn(X̂_{t_k}, X_{t_k}) + α_L,k · E∫L(X, f, t) dt + α_R,k · E∫|r(X, t)| dt,

and the interval losses are summed into one Adam step. The paper's baselines are settings of
the same module: the neural SDE is ``alpha_L = alpha_R = 0``, the ODE is ``sigma = 0``.

References:
    Koshizuka, Sato, "Neural Lagrangian Schrödinger Bridge: Diffusion Modeling for Population
    Dynamics", ICLR 2023, arXiv:2204.04853.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn

from zoo.nlsb.api import NLSBApiMixin
from zoo.nlsb.lagrangian import make_lagrangian
from zoo.nlsb.potential import OTFlowPotential
from zoo.nlsb.sde import Diffusion, LagrangianSDE, euler_maruyama

__all__ = ["NLSBModule"]


class NLSBModule(NLSBApiMixin, pl.LightningModule):
    """Neural Lagrangian Schrödinger bridge between population snapshots.

    Args:
        dim: Dimension of the samples.
        times: All snapshot times, the base time first (``[0, 1, 2, 3, 4]``).
        holdout: Times left out of training (each interval then spans the gap).
        dataset: Name of the snapshot set (``ou1d``, ``psde3d``, ``branch2d``, ``eb``), used by
            :meth:`evaluate` when no datamodule is given.
        width: Width of the potential's residual network (OT-Flow's m).
        n_layers: Layers of that network.
        rank: Rank of the potential's quadratic term.
        sigma: Diffusion: ``"mlp"`` (the paper's), ``"const"`` or a fixed number (0: an ODE).
        g_max: Bound of |g|; the paper's tanh output layer gives 1.
        diffusion_width: Hidden width of the diffusion MLP.
        lagrangian: The Lagrangian as JSON, ``{"kind": "potential-free"}`` by default (see
            :func:`zoo.nlsb.lagrangian.make_lagrangian`).
        alpha_D: Weight of the Sinkhorn divergence.
        alpha_L: Weight of E∫L, one number or one per training interval.
        alpha_R: Weight of E∫|HJB residual|, one number or one per training interval.
        dt: Euler–Maruyama step.
        blur: Sinkhorn blur (geomloss; p = 2).
        lr: Adam learning rate.
        drop_first_step: Leave the first step of each interval out of the regularisers, as the
            paper's code does.
        n_base: Base samples kept in the weights, for :meth:`marginals`.
    """

    def __init__(
        self,
        dim: int = 1,
        times: Sequence[float] = (0.0, 1.0, 2.0, 3.0, 4.0),
        holdout: list[float] | None = None,
        dataset: str | None = "ou1d",
        width: int = 32,
        n_layers: int = 2,
        rank: int = 10,
        sigma: float | str = "mlp",
        g_max: float = 1.0,
        diffusion_width: int = 16,
        lagrangian: Mapping[str, Any] | None = None,
        alpha_D: float = 1.0,
        alpha_L: float | Sequence[float] = 0.0,
        alpha_R: float | Sequence[float] = 0.0,
        dt: float = 0.01,
        blur: float = 0.05,
        lr: float = 1e-3,
        drop_first_step: bool = True,
        n_base: int = 2048,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.times = [float(t) for t in times]
        if sorted(set(self.times)) != self.times or len(self.times) < 2:
            raise ValueError(f"NLSBModule needs at least two increasing times, got {times}")
        holdout = list(holdout or [])
        bad = [t for t in holdout if float(t) not in self.times[1:-1]]
        if bad:
            raise ValueError(
                f"NLSBModule cannot hold out {bad}: choose among the inner times "
                f"{self.times[1:-1]}"
            )
        self.train_times = [t for t in self.times if t not in {float(h) for h in holdout}]
        if dt <= 0:
            raise ValueError(f"NLSBModule needs dt > 0, got {dt}")
        intervals = len(self.train_times) - 1
        self.alpha_L = _per_interval("alpha_L", alpha_L, intervals)
        self.alpha_R = _per_interval("alpha_R", alpha_R, intervals)
        self.regularize = any(a > 0 for a in (*self.alpha_L, *self.alpha_R))

        lagrangian = dict(lagrangian or {"kind": "potential-free"})
        self.sde = LagrangianSDE(
            OTFlowPotential(dim, width, n_layers, rank),
            Diffusion(dim, sigma, g_max, diffusion_width),
            make_lagrangian(lagrangian, dim=dim, times=self.train_times),
        )
        # what the API needs after loading: base samples and the data's standardisation
        self.register_buffer("base", torch.zeros(n_base, dim))
        self.register_buffer("base_velocity", torch.zeros(n_base, dim))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.example_input_array = (torch.linspace(-1.0, 1.0, 4).repeat(dim, 1).T, 1.5)
        self._sinkhorn = None

    def forward(self, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Drift and diffusion at ``(x, t)``, in the model's (standardised) coordinates.

        Shapes:
            - x: ``(batch, dim)``
            - outputs: ``(batch, dim)`` each
        """
        return self.sde.drift(x, t), self.sde.diffusion(x, t)

    # -- training -------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is None or stage != "fit":
            return
        self._check_datamodule(datamodule)
        train = datamodule.splits["train"]
        generator = torch.Generator().manual_seed(0)
        index = _fill_index(len(train[0]), self.hparams.n_base, generator)
        self.base.copy_(train[0][index])
        velocities = getattr(datamodule, "velocities", None)
        if velocities:
            self.base_velocity.copy_(velocities["train"][0][index])
        if getattr(datamodule, "mean", None) is not None:
            self.mean.copy_(datamodule.mean)
            self.std.copy_(datamodule.std)
        lagrangian = self.sde.lagrangian
        if hasattr(lagrangian, "fit") and not bool(lagrangian.fitted):
            kept = [train[self.times.index(t)] for t in self.train_times]
            lagrangian.fit(kept, seed=0)

    def _check_datamodule(self, datamodule: Any) -> None:
        times = [float(t) for t in datamodule.times]
        train_times = [float(t) for t in datamodule.train_times]
        if times != self.times or train_times != self.train_times:
            raise ValueError(
                f"the data has times {times} (training on {train_times}) but the model was "
                f"built for {self.times} (training on {self.train_times}); set model.times and "
                "model.holdout to match data.holdout"
            )
        if datamodule.dim != self.hparams.dim:
            raise ValueError(
                f"the data has dimension {datamodule.dim}, the model {self.hparams.dim}; "
                f"set model.dim {datamodule.dim}"
            )

    @property
    def sinkhorn(self) -> Any:
        """geomloss' debiased Sinkhorn divergence, p = 2 (built on first use)."""
        if self._sinkhorn is None:
            from geomloss import SamplesLoss

            self._sinkhorn = SamplesLoss("sinkhorn", p=2, blur=self.hparams.blur)
        return self._sinkhorn

    def training_step(self, batch: Mapping[str, Sequence[torch.Tensor]], _: int) -> torch.Tensor:
        xs = batch["x"]
        vs = batch.get("v")
        total = xs[0].new_zeros(())
        for k in range(1, len(self.train_times)):
            t0, t1 = self.train_times[k - 1], self.train_times[k]
            path = euler_maruyama(
                self.sde,
                xs[k - 1],
                t0,
                t1,
                self.hparams.dt,
                v=None if vs is None else vs[k - 1],
                regularize=self.regularize,
                drop_first_step=self.hparams.drop_first_step,
            )
            sinkhorn = self.sinkhorn(path.x, xs[k])
            action, residual = path.action.mean(), path.residual.mean()
            loss = self.hparams.alpha_D * sinkhorn
            loss = loss + self.alpha_L[k - 1] * action + self.alpha_R[k - 1] * residual
            total = total + loss
            self.log_dict(
                {
                    f"train/sinkhorn_{k}": sinkhorn,
                    f"train/action_{k}": action,
                    f"train/residual_{k}": residual,
                },
                sync_dist=True,
            )
        if not torch.isfinite(total):
            rank_zero_warn(f"non-finite loss at step {self.global_step}; the step is skipped")
            return None
        self.log("train/loss", total, prog_bar=True, sync_dist=True)
        return total

    def validation_step(self, batch: Mapping[str, Sequence[torch.Tensor]], _: int) -> None:
        self._one_step_w1(batch, "val")

    def test_step(self, batch: Mapping[str, Sequence[torch.Tensor]], _: int) -> None:
        self._one_step_w1(batch, "test")

    def _one_step_w1(self, batch: Mapping[str, Sequence[torch.Tensor]], stage: str) -> None:
        """W1 at each time, from the observed samples at the time before (a fixed seed)."""
        from zoo.nlsb.metrics import wasserstein1

        xs, vs = batch["x"], batch.get("v")
        generator = torch.Generator(device=xs[0].device).manual_seed(0)
        values = {}
        for k in range(1, len(self.times)):
            path = euler_maruyama(
                self.sde,
                xs[k - 1][:512],
                self.times[k - 1],
                self.times[k],
                self.hparams.dt,
                v=None if vs is None else vs[k - 1][:512],
                regularize=False,
                generator=generator,
            )
            values[f"{stage}/w1_t{self.times[k]:g}"] = wasserstein1(path.x, xs[k][:512])
        observed = [values[f"{stage}/w1_t{t:g}"] for t in self.train_times[1:]]
        self.log_dict(values, sync_dist=True, batch_size=len(xs[1]))
        self.log(
            f"{stage}/w1",
            sum(observed) / len(observed),
            prog_bar=True,
            sync_dist=True,
            batch_size=len(xs[1]),
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def _per_interval(name: str, value: float | Sequence[float], intervals: int) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * intervals
    value = [float(v) for v in value]
    if len(value) != intervals:
        raise ValueError(
            f"NLSBModule got {len(value)} values of {name} for {intervals} training intervals; "
            "give one number or one per interval"
        )
    return value


def _fill_index(available: int, wanted: int, generator: torch.Generator) -> torch.Tensor:
    """``wanted`` indices into ``available`` rows: a permutation, repeated when too short."""
    repeats = -(-wanted // available)
    return torch.cat([torch.randperm(available, generator=generator) for _ in range(repeats)])[
        :wanted
    ]
