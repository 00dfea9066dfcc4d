"""``FABModule``: a normalizing flow trained by Flow Annealed Importance Sampling Bootstrap.

FAB minimises the α-divergence D_α(p‖q_θ) (α = 2: the second moment of the importance weights
p/q_θ). Its gradient is an expectation under g ∝ p^α q_θ^(1-α), which AIS reaches from the
flow; each iteration runs AIS towards g and fits the flow to the weighted samples,

    loss = -Σ_i w̄_i log q_θ(x_i),   w̄ = softmax(log w),   x_i, log w_i from AIS (no gradient).

With the prioritised replay buffer (the paper's main variant) the AIS samples are stored and
each is reused in several updates, its weight corrected for the flow's move since it was drawn.
The baselines are settings of the same module: ``loss="reverse_kl"`` (KL(q‖p) by the
reparameterisation trick) and ``loss="forward_kl"`` (maximum likelihood on exact samples).

Training uses manual optimisation: one ``training_step`` is one FAB *iteration*, which takes
``n_updates`` optimiser steps with the buffer and one otherwise; ``trainer.global_step`` (and
so ``max_steps``) counts optimiser steps. Everything is float64.

References:
    Midgley, Stimper, Simm, Schölkopf, Hernández-Lobato, "Flow Annealed Importance Sampling
    Bootstrap", ICLR 2023, arXiv:2208.01893.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn

from zoo.fab.ais import AIS, ess, log_Z_estimate
from zoo.fab.api import FABApiMixin
from zoo.fab.buffer import PrioritisedReplayBuffer, adjusted_weights
from zoo.fab.flows import Flow, RealNVP
from zoo.fab.targets import Target
from zoo.fab.targets import target as make_target

__all__ = ["FLOW_KINDS", "LOSSES", "FABModule"]

#: Values of ``FABModule(loss=...)``.
LOSSES = ("fab_buffer", "fab_no_buffer", "reverse_kl", "forward_kl")
#: Values of ``FABModule(flow={"kind": ...})``.
FLOW_KINDS = ("realnvp", "circular_spline")

_F64 = torch.float64


class FABModule(FABApiMixin, pl.LightningModule):
    """A normalizing flow for an unnormalised target, trained by FAB or a baseline loss.

    Args:
        target: Name of the target (``gmm40``, ``manywell6``, ``manywell32``, ``aldp``).
        flow: ``kind`` (``realnvp`` by default, or ``circular_spline``) and the keyword
            arguments of :class:`~zoo.fab.flows.RealNVP` (``n_layers``, ``hidden``, ...) or of
            :class:`~zoo.fab.spline.CircularSplineFlow` (its circular coordinates and their
            bound come from the target); the paper's GMM-40 RealNVP by default.
        loss: ``fab_buffer`` (FAB with the prioritised replay buffer), ``fab_no_buffer``,
            ``reverse_kl`` or ``forward_kl`` (maximum likelihood on exact target samples).
        alpha: α of the divergence and of AIS's target g = p^α q^(1-α).
        n_intermediate: K, AIS's intermediate distributions.
        transition: ``metropolis`` or ``hmc``.
        step_size: Initial HMC step size (tuned towards 65% acceptance during training).
        n_leapfrog: HMC leapfrog steps per transition.
        metropolis_std: Standard deviation of the Metropolis proposal.
        batch_size: AIS chains per iteration and samples per optimiser step.
        buffer_max: Capacity of the replay buffer.
        buffer_min: Samples in the buffer before the first update (the buffer is filled with
            AIS batches first); at least ``n_updates · batch_size``.
        n_updates: Optimiser steps per AIS batch with the buffer.
        weight_clip: Upper bound of the buffer's weight corrections (``None``: unbounded).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        grad_clip: Gradient-norm clip (``None`` or 0: no clipping). Steps whose loss or
            gradient norm is not finite are skipped.
        n_eval: Flow samples for the validation metrics and for :meth:`evaluate`.
        warmup_steps: Optimiser steps of a linear learning-rate warm-up from ``lr /
            warmup_steps`` (0: none).
        lr_schedule: ``None`` (constant after the warm-up) or ``"cosine"`` (cosine decay to 0
            over ``trainer.max_steps``), the paper's alanine schedule.
    """

    def __init__(
        self,
        target: str = "gmm40",
        flow: Mapping[str, Any] | None = None,
        loss: str = "fab_buffer",
        alpha: float = 2.0,
        n_intermediate: int = 1,
        transition: str = "metropolis",
        step_size: float = 1.0,
        n_leapfrog: int = 5,
        metropolis_std: float = 5.0,
        batch_size: int = 128,
        buffer_max: int = 12800,
        buffer_min: int = 1280,
        n_updates: int = 4,
        weight_clip: float | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        grad_clip: float | None = 100.0,
        n_eval: int = 10000,
        warmup_steps: int = 0,
        lr_schedule: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False

        # argument checks
        if loss not in LOSSES:
            raise ValueError(f"FABModule: unknown loss {loss!r}; choose one of {LOSSES}")
        if lr_schedule not in (None, "cosine"):
            raise ValueError(
                f"FABModule: unknown lr_schedule {lr_schedule!r}; choose None or 'cosine'"
            )
        if warmup_steps < 0:
            raise ValueError(f"FABModule: warmup_steps must be >= 0, got {warmup_steps}")
        for key in ("batch_size", "n_updates", "n_eval"):
            if self.hparams[key] < 1:
                raise ValueError(f"FABModule: {key} must be >= 1, got {self.hparams[key]}")
        if loss == "fab_buffer" and not n_updates * batch_size <= buffer_min <= buffer_max:
            raise ValueError(
                "FABModule: the buffer needs n_updates * batch_size <= buffer_min <= buffer_max, "
                f"got {n_updates} * {batch_size} = {n_updates * batch_size}, buffer_min="
                f"{buffer_min}, buffer_max={buffer_max}"
            )

        # the target (no saved state), the flow and AIS (its HMC step sizes are saved)
        self.target = make_target(target).double()
        dim = self.target.dim
        self.flow = _make_flow(self.target, flow).double()
        self.ais = AIS(
            dim,
            n_intermediate,
            transition,
            alpha=alpha,
            step_size=step_size,
            n_leapfrog=n_leapfrog,
            metropolis_std=metropolis_std,
        ).double()

        # the replay buffer: plain tensors, built on the training device, in resume
        # checkpoints only (never in state_dict, so never in exported weights)
        self.buffer: PrioritisedReplayBuffer | None = None
        self._buffer_state: dict[str, Any] | None = None
        self._skipped = 0  # optimiser steps skipped for a non-finite loss or gradient

        # export probe: log q at a few fixed points (deterministic)
        offsets = torch.linspace(-1.5, 1.5, 4, dtype=_F64)[:, None]
        self.example_input_array = offsets * torch.linspace(1.0, 0.5, dim, dtype=_F64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The flow's log density log q_θ(x).

        Shapes:
            - x: ``(n, dim)``; output: ``(n,)``
        """
        return self.flow.log_prob(x)

    # -- setup, seeding, the buffer in checkpoints ------------------------------------------

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        name = getattr(datamodule, "hparams", {}).get("target")
        if name is not None and name != self.hparams.target:
            raise ValueError(
                f"the datamodule's target is {name!r} but the model's is "
                f"{self.hparams.target!r}; set data.target and model.target alike"
            )

    def on_train_start(self) -> None:
        # each DDP rank runs its own AIS: seed + rank (+ the step, so a resumed run does not
        # replay the random numbers of the start)
        trainer = self.trainer
        seed = torch.initial_seed() + trainer.world_size * trainer.global_step
        torch.manual_seed((seed + trainer.global_rank) % 2**63)
        if self.hparams.loss == "fab_buffer":
            self.buffer = PrioritisedReplayBuffer(
                self.target.dim,
                self.hparams.buffer_max,
                self.hparams.buffer_min,
                dtype=_F64,
                device=self.device,
            )
            if self._buffer_state is not None:
                self.buffer.load_state_dict(self._buffer_state)
                self._buffer_state = None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.buffer is not None:
            checkpoint["fab_buffer"] = self.buffer.state_dict()
        elif self._buffer_state is not None:
            checkpoint["fab_buffer"] = self._buffer_state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._buffer_state = checkpoint.get("fab_buffer")
        if self.buffer is not None and self._buffer_state is not None:
            self.buffer.load_state_dict(self._buffer_state)
            self._buffer_state = None

    # -- training ---------------------------------------------------------------------------

    def training_step(self, batch: Any, batch_idx: int) -> None:
        loss = self.hparams.loss
        if loss == "fab_buffer":
            self._buffer_iteration()
        elif loss == "fab_no_buffer":
            self._fab_iteration()
        elif loss == "reverse_kl":
            x, log_q = self.flow.sample_and_log_prob(self.hparams.batch_size)
            self._log_losses([self._step((log_q - self.target.log_prob(x)).mean())])
        else:
            x = self.target.sample(self.hparams.batch_size)
            self._log_losses([self._step(-self.flow.log_prob(x).mean())])

    def _fab_iteration(self) -> None:
        """AIS towards g, then one step on -Σ softmax(log w) log q_θ(x)."""
        result = self._ais_batch()
        w_bar = torch.softmax(result.log_w, 0)
        self._log_losses([self._step(-(w_bar * self.flow.log_prob(result.x)).sum())])

    def _buffer_iteration(self) -> None:
        """AIS towards g into the buffer; once it is full enough, ``n_updates`` steps on
        minibatches drawn ∝ w, each followed by the weight correction of its samples."""
        hp = self.hparams
        assert self.buffer is not None, "the buffer is built in on_train_start"
        result = self._ais_batch()
        self.buffer.add(result.x, result.log_w, result.log_q)
        n_valid = int(torch.isfinite(self.buffer.log_w[: len(self.buffer)]).sum())
        ready = self.buffer.ready and n_valid >= hp.n_updates * hp.batch_size
        # every DDP rank must take the same number of steps (the backward is collective)
        if not self.trainer.strategy.reduce_boolean_decision(ready, all=True):
            self.log("train/buffer_size", float(len(self.buffer)), sync_dist=True)
            return
        losses = []
        for sample in self.buffer.sample(hp.n_updates, hp.batch_size):
            log_q = self.flow.log_prob(sample.x)
            w, log_adj = adjusted_weights(
                log_q.detach(), sample.log_q_old, hp.alpha, hp.weight_clip
            )
            losses.append(self._step(-(w * log_q).mean()))
            self.buffer.adjust(sample.indices, log_adj, log_q.detach())
        self.log("train/buffer_size", float(len(self.buffer)), sync_dist=True)
        self._log_losses(losses)

    def _ais_batch(self) -> Any:
        """One AIS batch towards g; logs its ESS (w.r.t. g), acceptance and step size."""
        result = self.ais(self.flow, self.target, self.hparams.batch_size)
        n = self.hparams.batch_size
        metrics = {
            "train/ais_ess": ess(result.log_w, n),
            "train/ais_log_Z": log_Z_estimate(result.log_w, n),
            "train/n_dropped": float(result.n_dropped),
        }
        if len(result.acceptance):
            metrics["train/acceptance"] = result.acceptance.mean()
        if self.ais.transition_kind == "hmc":
            metrics["train/step_size"] = self.ais.step_sizes.mean()
        self.log_dict(metrics, sync_dist=True)
        return result

    def _step(self, loss: torch.Tensor) -> torch.Tensor:
        """One optimiser step on ``loss``, skipped when the loss or the gradient norm is not
        finite. Returns the detached loss."""
        opt = self.optimizers()
        params = [p for p in self.flow.parameters() if p.requires_grad]
        opt.zero_grad()
        if not torch.isfinite(loss):
            # still run a backward (DDP's all-reduce is collective), with NaN gradients, so
            # that every rank sees a non-finite norm and skips this step alike
            self.manual_backward(sum(p.sum() for p in params) * math.nan)
        else:
            self.manual_backward(loss)
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
        if not torch.isfinite(norm):
            rank_zero_warn("FABModule: a loss or gradient norm is not finite; the step is skipped")
            self._skipped += 1
            self.log("train/skipped_steps", float(self._skipped), sync_dist=True)
            opt.zero_grad()
            return loss.detach()
        self.log("train/grad_norm", norm, sync_dist=True)
        if self.hparams.grad_clip:
            self.clip_gradients(
                opt, gradient_clip_val=self.hparams.grad_clip, gradient_clip_algorithm="norm"
            )
        opt.step()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        return loss.detach()

    def _log_losses(self, losses: list[torch.Tensor]) -> None:
        finite = [loss for loss in losses if torch.isfinite(loss)]
        if finite:
            self.log("train/loss", torch.stack(finite).mean(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = torch.optim.Adam(self.flow.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if not hp.warmup_steps and hp.lr_schedule is None:
            return opt
        total = self.trainer.max_steps
        if hp.lr_schedule == "cosine" and (total is None or total < 1):
            raise ValueError(
                "FABModule: lr_schedule 'cosine' decays over trainer.max_steps; set "
                "--trainer.max_steps"
            )

        def factor(step: int) -> float:
            warm = min(1.0, (step + 1) / hp.warmup_steps) if hp.warmup_steps else 1.0
            if hp.lr_schedule == "cosine":
                return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / total)))
            return warm

        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # -- validation -------------------------------------------------------------------------

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._score(batch, "val")

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self._score(batch, "test")

    def _score(self, x_exact: torch.Tensor, stage: str) -> None:
        """Mean log q on exact samples; ESS, modes and |log Z error| of ``n_eval`` flow
        samples (a fixed seed, so successive validations are comparable)."""
        n = self.hparams.n_eval
        generator = torch.Generator(device=self.device).manual_seed(0)
        x, log_w = self._flow_weights(n, generator=generator)
        log_Z = log_Z_estimate(log_w, n)
        if not self.target.exact:  # no exact samples, log Z or modes (alanine dipeptide)
            metrics = {f"{stage}/ess_flow": ess(log_w, n), f"{stage}/log_Z": log_Z}
            self.log_dict(metrics, sync_dist=True, batch_size=1)
            return
        metrics = {
            f"{stage}/log_q_exact": self.flow.log_prob(x_exact.to(_F64)).mean(),
            f"{stage}/ess_flow": ess(log_w, n),
            f"{stage}/log_Z_error": (log_Z - self.target.log_Z).abs(),
            f"{stage}/modes": float(self.target.modes_covered(x, 0.1)),
        }
        self.log_dict(metrics, sync_dist=True, batch_size=len(x_exact))


def _make_flow(target: Target, flow: Mapping[str, Any] | None) -> Flow:
    """The flow of ``FABModule(flow=...)``, built deterministically from its arguments."""
    options = dict(flow or {"n_layers": 15, "hidden": [80, 80]})
    kind = options.pop("kind", "realnvp")
    if kind == "realnvp":
        return RealNVP(target.dim, **options)
    if kind == "circular_spline":
        from zoo.fab.spline import CircularSplineFlow

        circular = getattr(target, "circular", ())
        bound = getattr(target, "circular_bound", math.pi)
        return CircularSplineFlow(target.dim, circular, circular_bound=bound, **options)
    raise ValueError(f"FABModule: unknown flow kind {kind!r}; choose one of {FLOW_KINDS}")
