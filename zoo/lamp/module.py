"""The two training phases of LAMP as LightningModules.

``LampEvolutionModule`` pretrains the evolution model alone on mixed meshes. ``LampModule``
starts from it and alternates actor-critic updates of the remeshing policy (evolution model
frozen) with evolution updates on the policy's meshes and on the full grid (policy frozen),
switching every ``phase_steps`` optimizer steps; it is what ``lamp.burgers1d`` holds, with the
user API of :class:`~zoo.lamp.api.LampAPI`.

References:
    Wu, Maruyama, Zhao, Wetzstein, Leskovec. "Learning Controllable Adaptive Simulation for
    Multi-resolution Physics." ICLR 2023. https://arxiv.org/abs/2305.01122
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch

from zoo.checkpoint import has_loaded_weights
from zoo.lamp import mesh
from zoo.lamp.api import LampAPI
from zoo.lamp.gnn import EvolutionModel
from zoo.lamp.policy import Policy
from zoo.lamp.simulate import START_FRAME, bundles, rollout

__all__ = ["LampEvolutionModule", "LampModule", "cosine_adam"]

_SPACING = 16 / 100 / 100  # lattice spacing of the 100-vertex grid, positions divided by 100


def cosine_adam(module: pl.LightningModule) -> dict[str, Any]:
    """Adam at ``hparams.lr``, annealed to zero by a cosine over the run's optimizer steps."""
    optimizer = torch.optim.Adam(module.parameters(), lr=module.hparams.lr)
    total = max(1, int(module.trainer.estimated_stepping_batches))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _mesh_mse(prediction: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the mesh vertices (the ground truth is exact there)."""
    weight = mask[..., None].to(prediction.dtype)
    return ((prediction - truth).square() * weight).sum() / (weight.sum() * prediction.shape[-1])


def _rollout_loss(
    evolution: EvolutionModel,
    truth: torch.Tensor,
    mask: torch.Tensor,
    weights: Sequence[float],
    policy: Policy | None = None,
    beta: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Weighted mesh MSE of a ``len(weights)``-bundle rollout from ``truth[0]``."""
    out = rollout(
        evolution, truth[0], mask, len(weights), policy=policy, beta=beta, generator=generator
    )
    return sum(
        w * _mesh_mse(state, target, m)
        for w, state, target, m in zip(weights, out.states, truth[1:], out.masks, strict=True)
    )


class _EvaluationMixin:
    """Validation and test: the paper's cumulative MSE from frame 25 on uniform meshes."""

    evolution: EvolutionModel

    def _evaluation_step(self, batch: Any, stage: str) -> None:
        (frames,) = batch
        hp = self.hparams
        n_steps = (frames.shape[1] - START_FRAME) // hp.bundle - 1
        truth = bundles(frames, START_FRAME, n_steps + 1, hp.bundle)
        n = frames.shape[0]
        generator = torch.Generator().manual_seed(0)
        policy = getattr(self, "policy", None)
        for spec in hp.eval_meshes:
            mask = mesh.make_mask(spec, n, frames.shape[2])
            n0 = int(mask[0].sum())
            plain = rollout(self.evolution, truth[0], mask, n_steps)
            error = plain.errors(truth[1:]).sum(0).mean()
            self.log(f"{stage}/error_{n0}_fixed", error, batch_size=n, sync_dist=True)
            if policy is None:
                continue
            for beta in hp.eval_betas:
                betas = torch.full((n,), float(beta))
                out = rollout(
                    self.evolution, truth[0], mask, n_steps, policy=policy, beta=betas,
                    generator=generator,
                )  # fmt: skip
                tag = f"{n0}_beta{beta:g}"
                error = out.errors(truth[1:]).sum(0).mean()
                self.log(f"{stage}/error_{tag}", error, batch_size=n, sync_dist=True)
                vertices = out.n_vertices.float().mean()
                self.log(f"{stage}/vertices_{tag}", vertices, batch_size=n, sync_dist=True)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")


class LampEvolutionModule(_EvaluationMixin, pl.LightningModule):
    """Pretraining of the evolution model: multi-bundle rollout loss on mixed meshes.

    Args:
        bundle: Frames per bundle (time bundling).
        latent: Latent width.
        steps: Message-passing steps.
        rollout_weights: Loss weight of each predicted bundle of a training window.
        lr: Adam learning rate, annealed to zero by a cosine over the run.
        eval_meshes: Initial meshes of the validation rollouts.
        spacing: Lattice spacing in the edge features' units (the paper's code divides
            positions by 100: 0.0016).
        residual: Predict changes from the last input frame instead of absolute values.
    """

    def __init__(
        self,
        bundle: int = 25,
        latent: int = 64,
        steps: int = 3,
        rollout_weights: tuple[float, ...] = (1.0, 0.1, 0.1, 0.1),
        lr: float = 1e-3,
        eval_meshes: tuple[str, ...] = ("uniform:4", "uniform:2", "full"),
        spacing: float = _SPACING,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.evolution = EvolutionModel(bundle, latent, steps, spacing, residual=residual)

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The next bundle on each mesh: ``(n_graphs, n_grid, bundle)``."""
        return self.evolution(values, mask)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        weights = self.hparams.rollout_weights
        truth = bundles(batch["frames"], 0, len(weights) + 1, self.hparams.bundle)
        loss = _rollout_loss(self.evolution, truth, batch["mask"], weights)
        self.log("train/loss", loss, prog_bar=True, batch_size=truth.shape[1])
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        return cosine_adam(self)


class LampModule(LampAPI, _EvaluationMixin, pl.LightningModule):
    """The joint phase: remeshing actor-critic and evolution model, trained in turns.

    Actor-critic step (evolution frozen): per trajectory ``beta ~ U[0, beta_max]`` and a start
    mesh from ``start_meshes``; the policy rolls out ``horizon`` bundles, and so does the
    evolution model on the unchanged mesh ("alt"). Reward of step ``k``:
    ``c_L (1 - beta) (L_alt,k - L_pol,k) + beta (N_alt - N_pol,k) / 100``, ``L`` the bundle error
    on the grid and ``N`` the vertex count; return ``G_k`` the mean reward from ``k`` on.
    Loss: REINFORCE with the value as baseline and an entropy bonus, plus the value's squared
    error. Evolution step (policy frozen): rollout loss on the policy's meshes plus on the full
    grid.

    Args:
        bundle, latent, steps, spacing, residual: The evolution model, as
            :class:`LampEvolutionModule`.
        policy_latent, policy_steps, max_action, count_temperature, edge_temperature: The
            policy (:class:`~zoo.lamp.policy.Policy`).
        init_from: Pretrained evolution weights: a ``zoo fit`` checkpoint of
            :class:`LampEvolutionModule`, an export folder or a registry name; loaded strictly
            when fitting starts (not when resuming).
        c_L: Weight of the error reduction in the reward.
        entropy_weight: Entropy bonus ``η``.
        horizon: Bundles per actor-critic rollout.
        phase_steps: Optimizer steps per phase before switching.
        lr_policy, lr_evolution: Adam learning rates.
        gradient_clip: Gradient-norm clip of both phases.
        beta_max: ``beta`` is drawn from ``U[0, beta_max]``, the trained range.
        start_meshes: Initial meshes of the training rollouts (one drawn per trajectory).
        rollout_weights: Loss weights of the evolution phase's bundles.
        eval_meshes, eval_betas: Initial meshes and ``beta`` values of validation.
    """

    def __init__(
        self,
        bundle: int = 25,
        latent: int = 64,
        steps: int = 3,
        policy_latent: int = 64,
        policy_steps: int = 3,
        max_action: int = 20,
        init_from: str | None = None,
        c_L: float = 5.0,
        entropy_weight: float = 1e-2,
        horizon: int = 4,
        phase_steps: int = 200,
        lr_policy: float = 5e-4,
        lr_evolution: float = 1e-4,
        gradient_clip: float = 2.0,
        beta_max: float = 0.5,
        start_meshes: tuple[str, ...] = ("uniform:2", "uniform:4"),
        rollout_weights: tuple[float, ...] = (1.0, 0.1, 0.1, 0.1),
        eval_meshes: tuple[str, ...] = ("uniform:4", "uniform:2"),
        eval_betas: tuple[float, ...] = (0.0, 0.2, 0.5),
        spacing: float = _SPACING,
        residual: bool = False,
        count_temperature: float = 50.0,
        edge_temperature: float = 10.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.evolution = EvolutionModel(bundle, latent, steps, spacing, residual=residual)
        self.policy = Policy(
            bundle, policy_latent, policy_steps, spacing, max_action,
            count_temperature=count_temperature, edge_temperature=edge_temperature,
        )  # fmt: skip
        self.example_input_array = _example_input(bundle)

    def forward(
        self, values: torch.Tensor, mask: torch.Tensor, beta: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The evolution model's next bundle and the policy's logits and value on ``mask``.

        Returns:
            ``prediction`` ``(n_graphs, n_grid, bundle)``, ``value`` ``(n_graphs,)``, the count
            logits ``k_split``, ``k_collapse`` ``(n_graphs, max_action)`` and the edge logits
            ``split``, ``collapse`` ``(n_graphs, n_grid)``.
        """
        out = self.policy(values, mask, beta)
        return {
            "prediction": self.evolution(values, mask),
            "value": out.value,
            "k_split": out.k_split,
            "k_collapse": out.k_collapse,
            "split": out.split,
            "collapse": out.collapse,
        }

    # ----------------------------------------------------------------------------------------
    # Training

    def setup(self, stage: str) -> None:
        # each DDP rank draws its own betas, start meshes and actions
        seed = torch.initial_seed() % 2**31 + 7919 * self.global_rank
        self._generator = torch.Generator().manual_seed(seed)
        # resuming restores every weight, and weights from zoo.load are trained already
        fresh = self.trainer.ckpt_path is None and not has_loaded_weights(self)
        if stage == "fit" and fresh and self.hparams.init_from:
            self.load_evolution(self.hparams.init_from)

    def load_evolution(self, source: str) -> None:
        """Loads pretrained evolution weights strictly (every tensor, the same shapes).

        Args:
            source: A ``.ckpt`` of :class:`LampEvolutionModule`, an export folder or a registry
                name.
        """
        if str(source).endswith(".ckpt"):
            from zoo.export import load_checkpoint

            pretrained, _ = load_checkpoint(source)
        else:
            import zoo

            pretrained = zoo.load(source)
        evolution = getattr(pretrained, "evolution", None)
        if not isinstance(evolution, EvolutionModel):
            raise ValueError(
                f"{source} holds no LAMP evolution model ({type(pretrained).__name__})"
            )
        try:
            self.evolution.load_state_dict(evolution.state_dict(), strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"LampModule: the evolution model of {source} does not fit bundle/latent/steps "
                f"{self.hparams.bundle}/{self.hparams.latent}/{self.hparams.steps}: {error}"
            ) from None

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        hp = self.hparams
        frames = batch["frames"]
        truth = bundles(frames, 0, hp.horizon + 1, hp.bundle)
        n, n_grid = frames.shape[0], frames.shape[2]
        choice = torch.randint(len(hp.start_meshes), (n,), generator=self._generator)
        starts = torch.cat([mesh.make_mask(spec, 1, n_grid) for spec in hp.start_meshes])
        mask = starts[choice]
        beta = torch.rand(n, generator=self._generator) * hp.beta_max

        policy_phase = (self.global_step // hp.phase_steps) % 2 == 0
        optimizer = self.optimizers()[0 if policy_phase else 1]
        self.toggle_optimizer(optimizer)
        if policy_phase:
            loss = self._actor_critic_loss(truth, mask, beta)
        else:
            loss = self._evolution_loss(truth, mask, beta)
        optimizer.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(
            optimizer, gradient_clip_val=hp.gradient_clip, gradient_clip_algorithm="norm"
        )
        optimizer.step()
        self.untoggle_optimizer(optimizer)

    def _actor_critic_loss(
        self, truth: torch.Tensor, mask: torch.Tensor, beta: torch.Tensor
    ) -> torch.Tensor:
        hp = self.hparams
        n = truth.shape[1]
        with torch.no_grad():
            alt = rollout(self.evolution, truth[0], mask, hp.horizon)
            loss_alt = alt.errors(truth[1:])
        out = rollout(
            self.evolution, truth[0], mask, hp.horizon, policy=self.policy, beta=beta,
            generator=self._generator, grad_policy=True, grad_evolution=False,
        )  # fmt: skip
        loss_pol = out.errors(truth[1:])
        reward = hp.c_L * (1 - beta) * (loss_alt - loss_pol)
        reward = reward + beta * (mask.sum(-1) - out.n_vertices) / 100  # (horizon, n)

        steps_left = torch.arange(hp.horizon, 0, -1, dtype=reward.dtype)[:, None]
        target = reward.flip(0).cumsum(0).flip(0) / steps_left  # mean of r_k .. r_{H-1}
        advantage = (target - out.values).detach()
        acted = slice(0, hp.horizon - 1)
        actor = -(out.log_probs[acted] * advantage[acted]).sum(0).mean()
        entropy = out.entropies[acted].sum(0).mean()
        critic = 0.25 * (target - out.values).square().sum(0).mean()

        log = {"reward": reward.mean(), "actor": actor, "critic": critic, "entropy": entropy}
        log["vertices"] = out.n_vertices.float().mean()
        log["error_gain"] = (loss_alt - loss_pol).sum(0).mean()
        self.log_dict({f"train/{k}": v for k, v in log.items()}, batch_size=n)
        return actor - hp.entropy_weight * entropy + critic

    def _evolution_loss(
        self, truth: torch.Tensor, mask: torch.Tensor, beta: torch.Tensor
    ) -> torch.Tensor:
        weights = self.hparams.rollout_weights
        truth = truth[: len(weights) + 1]
        on_policy = _rollout_loss(
            self.evolution, truth, mask, weights, self.policy, beta, self._generator
        )
        full = torch.ones_like(mask)
        on_full = _rollout_loss(self.evolution, truth, full, weights)
        n = truth.shape[1]
        self.log_dict(
            {"train/evolution_policy_mesh": on_policy, "train/evolution_full": on_full},
            batch_size=n,
        )
        return on_policy + on_full

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            torch.optim.Adam(self.policy.parameters(), lr=self.hparams.lr_policy),
            torch.optim.Adam(self.evolution.parameters(), lr=self.hparams.lr_evolution),
        ]


def _example_input(bundle: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small fixed probe: two 12-vertex lattices, one full, one every 3rd vertex."""
    n_grid = 12
    x = torch.arange(n_grid) / n_grid
    t = torch.arange(bundle)[:, None] / bundle
    values = torch.sin(2 * torch.pi * (x + 0.1 * t)).T[None].repeat(2, 1, 1)  # (2, n_grid, bundle)
    mask = torch.stack([torch.ones(n_grid, dtype=torch.bool), torch.arange(n_grid) % 3 == 0])
    return values, mask, torch.tensor([0.0, 0.3])
