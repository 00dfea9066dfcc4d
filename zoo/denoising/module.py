"""The two Lightning modules of ``denoising``: pre-training by coordinate denoising, and property
fine-tuning with denoising kept as an auxiliary loss ("Noisy Nodes").

References:
    Zaidi et al., "Pre-training via Denoising for Molecular Property Prediction", ICLR 2023,
    arXiv:2206.00133.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from zoo.checkpoint import has_loaded_weights
from zoo.denoising.et import ET
from zoo.denoising.heads import NoiseHead, ScalarHead

__all__ = ["DenoisingPretrainModule", "Prediction", "PropertyFinetuneModule"]

_VAL_NOISE_SEED = 12345  # validation and test noise is the same draw at every evaluation


class Prediction(NamedTuple):
    """Predicted property values with their unit: a float for one molecule, a ``(n,)`` tensor
    for a list."""

    value: float | torch.Tensor
    unit: str
    target: str


class _Denoiser(pl.LightningModule):
    """The ET encoder and its noise head, the optimiser and the learning-rate schedule (from the
    subclass's ``lr``, ``weight_decay`` and ``warmup_steps`` hyperparameters)."""

    def __init__(self, encoder: Mapping[str, Any] | None) -> None:
        super().__init__()
        self.encoder = ET(**dict(encoder or {}))
        self.noise_head = NoiseHead(self.encoder.embedding_dimension)

    # ----------------------------------------------------------------------------------------
    # User API

    def embed(
        self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's per-atom features.

        Shapes:
            - z: ``(n_atoms,)`` atomic numbers; pos: ``(n_atoms, 3)`` in Å; batch:
              ``(n_atoms,)`` molecule of each atom (one molecule if ``None``)
            - output: scalars ``(n_atoms, F)``, vectors ``(n_atoms, 3, F)``
        """
        if batch is None:
            batch = torch.zeros_like(z)
        return self.encoder(z, pos, batch)

    def predict_noise(
        self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The predicted coordinate noise, in units of the training ``sigma``: ``(n_atoms, 3)``.
        ``-sigma * predict_noise(...)`` points from the noisy towards the equilibrium
        structure."""
        x, vec = self.embed(z, pos, batch)
        return self.noise_head(x, vec)

    # ----------------------------------------------------------------------------------------
    # Training

    def _noise_loss(self, x: torch.Tensor, vec: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(self.noise_head(x, vec), eps)

    def _noised(self, batch: Any, sigma: float, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pos + sigma * eps, eps)``; fixed noise outside training, so that validation
        losses are comparable across epochs."""
        if stage == "train":
            eps = torch.randn_like(batch.pos)
        else:
            generator = torch.Generator(device=batch.pos.device).manual_seed(
                _VAL_NOISE_SEED + int(batch.idx[0])
            )
            eps = torch.randn(
                batch.pos.shape,
                generator=generator,
                device=batch.pos.device,
                dtype=batch.pos.dtype,
            )
        if getattr(self.hparams, "center_noise", False):
            eps = eps - _molecule_mean(eps, batch.batch, batch.num_graphs)[batch.batch]
        return batch.pos + sigma * eps, eps

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: Any, _: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, _: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, _: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.hparams.warmup_steps, total)

        def factor(step: int) -> float:  # linear warm-up, then cosine to zero
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(total - warmup, 1)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": schedule, "interval": "step"},
        }


class DenoisingPretrainModule(_Denoiser):
    """Pre-training by denoising: Gaussian noise of ``sigma`` Å is added to equilibrium
    coordinates and the network regresses it, ``mean ‖ε̂ − ε‖²`` (the target is ``ε`` itself,
    a fixed ``1/sigma`` scaling of the added noise). Validation and test inputs are noised too,
    with a fixed draw.

    Args:
        encoder: Options of :class:`~zoo.denoising.et.ET` (the paper's configuration when
            empty).
        sigma: Noise standard deviation in Å (paper: 0.04).
        center_noise: Remove each molecule's mean noise (a global translation cannot be
            recovered); the reference code does not.
        lr: AdamW peak learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up, then cosine decay to zero at the run's last step.
    """

    def __init__(
        self,
        encoder: Mapping[str, Any] | None = None,
        sigma: float = 0.04,
        center_noise: bool = False,
        lr: float = 4e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 10_000,
    ) -> None:
        super().__init__(encoder)
        if not sigma > 0:
            raise ValueError(f"DenoisingPretrainModule: sigma must be positive, got {sigma}")
        self.save_hyperparameters()
        self.example_input_array = _example_molecule()

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        return self.predict_noise(z, pos, batch)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        pos, eps = self._noised(batch, self.hparams.sigma, stage)
        x, vec = self.encoder(batch.z, pos, batch.batch)
        loss = self._noise_loss(x, vec, eps)
        self.log(f"{stage}/denoise_mse", loss, batch_size=batch.num_graphs, sync_dist=True)
        return loss

    @torch.no_grad()
    def evaluate(self, datamodule: Any = None) -> list[dict[str, Any]]:
        """Denoising MSE (of ``ε``, so 1.0 for a network that predicts zero) on the held-out
        pre-training test structures, noised with a fixed draw.

        Args:
            datamodule: A :class:`~zoo.denoising.QM9DataModule`; the recipe's by default.
        """
        datamodule = datamodule or _recipe_datamodule(self)
        datamodule.setup("test")
        total, count = 0.0, 0
        for batch in _progress(datamodule.test_dataloader(), "denoising test"):
            pos, eps = self._noised(batch, self.hparams.sigma, "test")
            total += F.mse_loss(self(batch.z, pos, batch.batch), eps, reduction="sum").item()
            count += eps.numel()
        n = len(datamodule.dataset("test"))
        return [
            {
                "name": "test denoising MSE",
                "value": total / count,
                "dataset": f"{n} held-out QM9 structures, sigma {self.hparams.sigma} Å",
            }
        ]

    def showcase(self, out_dir: Any) -> dict[str, Any]:
        """Denoises 256 held-out QM9 structures and plots predicted against true noise."""
        batches = _first_test_batches(self, 256)
        true, predicted = [], []
        with torch.no_grad():
            for batch in batches:
                pos, eps = self._noised(batch, self.hparams.sigma, "test")
                predicted.append(self(batch.z, pos, batch.batch))
                true.append(eps)
        true, predicted = torch.cat(true), torch.cat(predicted)
        _parity_plot(out_dir, true.flatten(), predicted.flatten(), "true ε", "predicted ε")
        return {
            "task": f"denoise 256 held-out QM9 structures (sigma {self.hparams.sigma} Å)",
            "metric": "MSE of ε (1 = predicting 0)",
            "value": F.mse_loss(predicted, true).item(),
        }


class PropertyFinetuneModule(_Denoiser):
    """Property prediction from a (pre-trained) encoder, with denoising as an auxiliary loss.

    Training inputs are noised by ``noisy_nodes_sigma``; the loss is the MSE of the
    standardised property plus ``noisy_nodes_weight`` times the denoising MSE. Validation and
    test inputs stay clean; their MAE is logged in the target's units.

    Args:
        target: One of :data:`zoo.denoising.TARGETS` (``homo``, ``lumo``, ``gap``, ...).
        encoder: Options of :class:`~zoo.denoising.et.ET`; must match ``init_from``'s.
        init_from: A registry name (``denoising.qm9-pretrain``) or export folder whose encoder
            and noise head are loaded strictly when training starts; ``None`` trains from
            scratch.
        noisy_nodes_sigma: Noise in Å on training inputs (paper: 0.005); 0 turns it off.
        noisy_nodes_weight: Weight of the denoising loss (paper: 0.1).
        lr, weight_decay, warmup_steps: As in :class:`DenoisingPretrainModule`.
        label_mean, label_std: Label statistics in target units; set from the training split
            when training starts (unless resuming).
    """

    def __init__(
        self,
        target: str = "homo",
        encoder: Mapping[str, Any] | None = None,
        init_from: str | None = None,
        noisy_nodes_sigma: float = 0.005,
        noisy_nodes_weight: float = 0.1,
        lr: float = 4e-4,
        weight_decay: float = 0.0,
        warmup_steps: int = 10_000,
        label_mean: float = 0.0,
        label_std: float = 1.0,
    ) -> None:
        from zoo.denoising.molecules import TARGETS

        super().__init__(encoder)
        if target not in TARGETS:
            raise ValueError(
                f"PropertyFinetuneModule: unknown target {target!r}; choose one of "
                f"{', '.join(TARGETS)}"
            )
        if noisy_nodes_sigma < 0 or noisy_nodes_weight < 0:
            raise ValueError(
                "PropertyFinetuneModule: noisy_nodes_sigma and noisy_nodes_weight must be >= 0"
            )
        self.save_hyperparameters()
        self.unit = TARGETS[target].unit
        self.head = ScalarHead(self.encoder.embedding_dimension, mean=label_mean, std=label_std)
        self.example_input_array = _example_molecule()

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        x, _ = self.encoder(z, pos, batch)
        return self.head(x, batch)

    # ----------------------------------------------------------------------------------------
    # User API

    @torch.no_grad()
    def predict(self, molecules: Any) -> Prediction:
        """The property of one molecule or a list of them.

        Args:
            molecules: An ``ase.Atoms``, an RDKit molecule with a 3D conformer, a pair
                ``(atomic_numbers, positions_in_angstrom)``, or a list of these.

        Returns:
            The values (a float for one molecule, a tensor for a list), the unit, the target.

        Raises:
            ValueError: For a molecule without a 3D conformer, no atoms, an element outside
                H C N O F, or non-finite coordinates.
        """
        from zoo.denoising.inputs import as_batch

        single, (z, pos, batch) = as_batch(molecules)
        was_training = self.training
        self.eval()
        param = next(self.parameters())
        values = self(
            z.to(param.device), pos.to(param.device, param.dtype), batch.to(param.device)
        )
        self.train(was_training)
        values = values.double().cpu()
        return Prediction(values[0].item() if single else values, self.unit, self.hparams.target)

    # ----------------------------------------------------------------------------------------
    # Training

    def setup(self, stage: str) -> None:
        if stage != "fit" or self.trainer.ckpt_path is not None:
            return  # resuming restores every weight and statistic
        if has_loaded_weights(self):
            return  # fine-tuning loaded weights further: keep their encoder and label statistics
        datamodule = self.trainer.datamodule
        if not callable(getattr(datamodule, "target_stats", None)):
            raise ValueError(
                "PropertyFinetuneModule needs a QM9DataModule (or a datamodule with "
                "target_stats()) for its label statistics; pass datamodule=, not dataloaders"
            )
        stats = datamodule.target_stats()
        if stats["target"] != self.hparams.target:
            raise ValueError(
                f"PropertyFinetuneModule(target={self.hparams.target!r}) is given data of "
                f"target {stats['target']!r}; set both to the same target"
            )
        self.head.set_label_statistics(stats["mean"], stats["std"])
        self.hparams.label_mean, self.hparams.label_std = stats["mean"], stats["std"]
        if self.hparams.init_from is not None:
            self.load_encoder(self.hparams.init_from)

    def load_encoder(self, source: str) -> None:
        """Loads the encoder and noise head of a pre-trained model, strictly: every tensor must
        be present and of the same shape.

        Args:
            source: A registry name or an export folder, as :func:`zoo.load` takes it.
        """
        import zoo

        pretrained = zoo.load(source)
        encoder = getattr(pretrained, "encoder", None)
        if not isinstance(encoder, ET):
            raise ValueError(f"{source} holds no ET encoder (a {type(pretrained).__name__})")
        if dict(pretrained.hparams.encoder or {}) != dict(self.hparams.encoder or {}):
            raise ValueError(
                f"PropertyFinetuneModule: encoder options {dict(self.hparams.encoder or {})} "
                f"differ from those of {source}: {dict(pretrained.hparams.encoder or {})}; "
                "copy them into the fine-tuning recipe"
            )
        self.encoder.load_state_dict(encoder.state_dict(), strict=True)
        self.noise_head.load_state_dict(pretrained.noise_head.state_dict(), strict=True)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        head = self.head
        noisy = stage == "train" and self.hparams.noisy_nodes_sigma > 0
        if noisy:
            pos, eps = self._noised(batch, self.hparams.noisy_nodes_sigma, stage)
        else:
            pos = batch.pos
        x, vec = self.encoder(batch.z, pos, batch.batch)
        pred = head(x, batch.batch, batch.num_graphs)
        loss = F.mse_loss((pred - head.mean) / head.std, (batch.y - head.mean) / head.std)
        n = batch.num_graphs
        self.log(f"{stage}/property_mse", loss, batch_size=n, sync_dist=True)
        if noisy:
            denoise = self._noise_loss(x, vec, eps)
            self.log(f"{stage}/denoise_mse", denoise, batch_size=n, sync_dist=True)
            loss = loss + self.hparams.noisy_nodes_weight * denoise
        if stage != "train":
            mae = (pred - batch.y).abs().mean()
            self.log(f"{stage}/mae", mae, batch_size=n, sync_dist=True, prog_bar=True)
        return loss

    @torch.no_grad()
    def evaluate(self, datamodule: Any = None, split: str = "test") -> list[dict[str, Any]]:
        """Mean absolute error on the test (or ``val``) split, clean inputs, in the target's
        unit.

        Args:
            datamodule: A :class:`~zoo.denoising.QM9DataModule` of the same target; the
                recipe's by default.
            split: ``test`` or ``val``.
        """
        if split not in ("test", "val"):
            raise ValueError(
                f"PropertyFinetuneModule.evaluate: split must be 'test' or 'val', got {split!r}"
            )
        datamodule = datamodule or _recipe_datamodule(self)
        datamodule.setup("test")
        loader = getattr(datamodule, f"{split}_dataloader")()
        errors = []
        for batch in _progress(loader, f"{self.hparams.target} {split}"):
            errors.append((self(batch.z, batch.pos, batch.batch) - batch.y).abs())
        n = len(datamodule.dataset(split))
        return [
            {
                "name": f"{split} MAE {self.hparams.target}",
                "value": torch.cat(errors).mean().item(),
                "unit": self.unit,
                "dataset": f"QM9, {n} {split} molecules (split seed "
                f"{datamodule.hparams.split_seed})",
            }
        ]

    def showcase(self, out_dir: Any) -> dict[str, Any]:
        """Predicts the target of 256 QM9 test molecules and draws the parity plot."""
        batches = _first_test_batches(self, 256)
        with torch.no_grad():
            predicted = torch.cat([self(b.z, b.pos, b.batch) for b in batches])
        true = torch.cat([b.y for b in batches])
        name = f"{self.hparams.target} ({self.unit})"
        _parity_plot(out_dir, true, predicted, f"DFT {name}", f"predicted {name}")
        return {
            "task": f"predict {self.hparams.target} of 256 QM9 test molecules",
            "metric": f"MAE ({self.unit})",
            "value": (predicted - true).abs().mean().item(),
        }


def _first_test_batches(module: pl.LightningModule, n: int) -> list[Any]:
    datamodule = _recipe_datamodule(module)
    datamodule.setup("test")
    batches, count = [], 0
    for batch in datamodule.test_dataloader():
        batches.append(batch)
        count += batch.num_graphs
        if count >= n:
            break
    return batches


def _parity_plot(
    out_dir: Any, true: torch.Tensor, predicted: torch.Tensor, xlabel: str, ylabel: str
) -> None:
    from pathlib import Path

    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4, 4), layout="constrained")
    ax.scatter(true, predicted, s=4, alpha=0.5)
    low, high = min(true.min(), predicted.min()).item(), max(true.max(), predicted.max()).item()
    ax.plot([low, high], [low, high], "k--", lw=1)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    fig.savefig(out_dir / "parity.png", dpi=120)
    plt.close(fig)


def _recipe_datamodule(module: pl.LightningModule) -> Any:
    from zoo.recipes import datamodule_from_recipe, recipe_of

    return datamodule_from_recipe(recipe_of(module))


def _progress(loader: Any, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(loader, desc=desc, unit="batch", leave=False)


def _molecule_mean(v: torch.Tensor, batch: torch.Tensor, n_graphs: int) -> torch.Tensor:
    total = v.new_zeros(n_graphs, v.shape[-1]).index_add_(0, batch, v)
    counts = torch.bincount(batch, minlength=n_graphs).clamp_min(1).to(v.dtype)
    return total / counts[:, None]


def _example_molecule() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Methanol, a fixed probe input: ``(z, pos, batch)``."""
    z = torch.tensor([6, 8, 1, 1, 1, 1])
    pos = torch.tensor(
        [
            [-0.047, 0.665, 0.000],
            [-0.047, -0.756, 0.000],
            [-1.090, 0.985, 0.000],
            [0.437, 1.069, 0.890],
            [0.437, 1.069, -0.890],
            [0.860, -1.085, 0.000],
        ]
    )
    return z, pos, torch.zeros(6, dtype=torch.long)
