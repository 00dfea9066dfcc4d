"""``MarsDataModule``: meta-train tasks, their GP interpolators, and an endless stream of
measurement sets with function values sampled from the interpolators' posteriors."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from zoo.mars.data import MetaTask, environment, sample_tasks
from zoo.mars.gp import GPInterpolator

__all__ = ["MarsDataModule", "Normalization"]

_SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}


class Normalization:
    """Meta-level statistics: every task is normalized with the same mean and scale.

    Attributes:
        x_mean, x_std: ``(x_dim,)``; y_mean, y_std: scalars (0-d tensors).
    """

    def __init__(
        self, x_mean: torch.Tensor, x_std: torch.Tensor, y_mean: torch.Tensor, y_std: torch.Tensor
    ) -> None:
        self.x_mean, self.x_std, self.y_mean, self.y_std = x_mean, x_std, y_mean, y_std

    @classmethod
    def of(cls, tasks: list[MetaTask]) -> Normalization:
        x = torch.cat([t.x for t in tasks])
        y = torch.cat([t.y for t in tasks])
        return cls(x.mean(0), x.std(0), y.mean(), y.std())

    def x(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_std

    def y(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_mean) / self.y_std


class _MeasurementSets(IterableDataset):
    """Batches ``(X, F)``: random tasks, uniform measurement inputs in the box, and one
    posterior function sample of each task's interpolator there."""

    def __init__(
        self,
        gp: GPInterpolator,
        box: tuple[torch.Tensor, torch.Tensor],
        batch_size: int,
        k: int,
        batches: int,
        seed: int,
    ) -> None:
        self.gp, self.box, self.batch_size, self.k = gp, box, batch_size, k
        self.batches, self.seed = batches, seed
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        self.epoch += 1
        low, high = self.box
        n_tasks = self.gp.ys.shape[0]
        for _ in range(self.batches):
            tasks = torch.randint(0, n_tasks, (self.batch_size,), generator=generator)
            u = torch.rand(self.batch_size, self.k, len(low), generator=generator, dtype=low.dtype)
            x = low + (high - low) * u
            f = self.gp.sample(tasks, x, 1, generator)[0]
            yield x.float(), f.float()


class MarsDataModule(pl.LightningDataModule):
    """Meta-learning data for MARS, generated from a seed.

    Args:
        env: ``sinusoid``, ``oscillator`` or ``gp-shift``.
        n_train_tasks: Meta-train tasks (default: the environment's).
        points_per_task: Points per meta-train task and context points per evaluation task
            (default: the environment's).
        n_eval_tasks: Meta-validation and meta-test tasks.
        n_query: Query points per evaluation task.
        k: Points per measurement set.
        batch_size: Measurement sets per batch.
        batches_per_epoch: Batches per epoch (the stream is endless).
        box_margin: The measurement box is the meta-train input range widened by this fraction
            on each side.
        task_noise: Observation noise standard deviation of the tasks (default: the
            environment's).
        seed: Seed of the tasks and of the stream.
    """

    def __init__(
        self,
        env: str = "sinusoid",
        n_train_tasks: int | None = None,
        points_per_task: int | None = None,
        n_eval_tasks: int = 20,
        n_query: int = 200,
        k: int = 15,
        batch_size: int = 40,
        batches_per_epoch: int = 100,
        box_margin: float = 0.1,
        task_noise: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.env = environment(env)
        if task_noise is not None:
            if task_noise < 0:
                raise ValueError(f"MarsDataModule: task_noise must be >= 0, got {task_noise}")
            self.env = dataclasses.replace(self.env, noise=task_noise)
        self.n_train_tasks = n_train_tasks or self.env.n_train_tasks
        self.points_per_task = points_per_task or self.env.points_per_task
        self._ready = False

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        hp = self.hparams
        self.train_tasks = self.tasks("train")
        self.normalization = Normalization.of(self.train_tasks)
        xs = torch.stack([self.normalization.x(t.x) for t in self.train_tasks])
        ys = torch.stack([self.normalization.y(t.y) for t in self.train_tasks])
        self.gp = GPInterpolator.fit(xs, ys)
        low, high = xs.flatten(0, 1).min(0).values, xs.flatten(0, 1).max(0).values
        width = high - low
        self.box = (low - hp.box_margin * width, high + hp.box_margin * width)
        self._ready = True

    def tasks(self, split: str) -> list[MetaTask]:
        """The ``train``, ``val`` or ``test`` tasks (raw units)."""
        hp = self.hparams
        seed = hp.seed * 10 + _SPLIT_SEEDS[split]
        if split == "train":
            return sample_tasks(self.env, self.n_train_tasks, self.points_per_task, 0, seed)
        return sample_tasks(self.env, hp.n_eval_tasks, self.points_per_task, hp.n_query, seed)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for split in ("train", "val", "test"):
            for task in self.tasks(split):
                digest.update(task.x.numpy().tobytes())
                digest.update(task.y.numpy().tobytes())
        return "sha256:" + digest.hexdigest()[:16]

    def train_dataloader(self) -> DataLoader:
        self.setup()
        hp = self.hparams
        stream = _MeasurementSets(
            self.gp, self.box, hp.batch_size, hp.k, hp.batches_per_epoch, hp.seed
        )
        return DataLoader(stream, batch_size=None)
