"""Data for FAB: the target is the data. Training batches are step counters (FAB draws its own
samples by AIS); validation and test batches are exact target samples, for scoring only, and
empty ``(0, dim)`` batches for a target without exact samples (alanine dipeptide).

References:
    Midgley, Stimper, Simm, Schölkopf, Hernández-Lobato, "Flow Annealed Importance Sampling
    Bootstrap", ICLR 2023, arXiv:2208.01893.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from zoo.fab.targets import TARGETS, Target, target

__all__ = ["FABTargetDataModule", "exact_samples"]


def _seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of values (stable across runs and platforms)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def exact_samples(name: str, n: int, seed: int = 0, split: str = "val") -> torch.Tensor:
    """``n`` exact float64 samples of target ``name`` for a split, ``(n, dim)``, seeded.

    The same ``(name, n, seed, split)`` always gives the same samples.
    """
    generator = torch.Generator().manual_seed(_seed("fab", name, seed, split))
    return target(name).double().sample(n, generator=generator)


class _Counter(IterableDataset):
    """Yields ``0, 1, …, length - 1``: one FAB iteration each (the module ignores the value).

    Every DDP rank iterates the whole range (no sampler splits an iterable dataset), so an
    epoch is ``length`` iterations on each rank.
    """

    def __init__(self, length: int) -> None:
        self.length = length

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (torch.tensor(i) for i in range(self.length))


class FABTargetDataModule(pl.LightningDataModule):
    """A FAB target as a datamodule: step counters to train on, exact samples to score with.

    Args:
        target: Name of the target (see :func:`zoo.fab.targets.target`).
        n_val: Exact samples in the one validation batch.
        iterations_per_epoch: FAB iterations per epoch (validation runs after each epoch).
        seed: Seed of the exact samples.
        n_test: Exact samples in the one test batch (another seed than validation's).

    Shapes:
        - train batches: a scalar counter; validation and test batches: ``(n, dim)`` float64,
          ``(0, dim)`` for a target without exact samples (``n_val``, ``n_test`` unused)
    """

    def __init__(
        self,
        target: str = "gmm40",
        n_val: int = 2000,
        iterations_per_epoch: int = 100,
        seed: int = 0,
        n_test: int = 2000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if target not in TARGETS:
            raise ValueError(
                f"FABTargetDataModule: unknown target {target!r}; choose one of {TARGETS}"
            )
        for key in ("n_val", "iterations_per_epoch", "n_test"):
            if self.hparams[key] < 1:
                raise ValueError(
                    f"FABTargetDataModule: {key} must be >= 1, got {self.hparams[key]}"
                )
        self.splits: dict[str, torch.Tensor] | None = None

    @property
    def target(self) -> Target:
        """A fresh float64 target (its state is derived from its name)."""
        return target(self.hparams.target).double()

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        hp = self.hparams
        fresh = self.target
        if not fresh.exact:
            empty = torch.empty(0, fresh.dim, dtype=torch.float64)
            self.splits = {"val": empty, "test": empty}
            return
        self.splits = {
            "val": exact_samples(hp.target, hp.n_val, hp.seed, "val"),
            "test": exact_samples(hp.target, hp.n_test, hp.seed, "test"),
        }

    def fingerprint(self) -> str:
        """``sha256:`` and 16 hex digits over the target's name, its parameters and samples."""
        self.setup()
        digest = hashlib.sha256(repr(("fab", self.hparams.target)).encode())
        tensors = [b for _, b in sorted(self.target.named_buffers())]
        tensors += [self.splits["val"], self.splits["test"]]
        for tensor in tensors:
            digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return "sha256:" + digest.hexdigest()[:16]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Counter(self.hparams.iterations_per_epoch), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader([self.splits["val"]], batch_size=None)

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader([self.splits["test"]], batch_size=None)
