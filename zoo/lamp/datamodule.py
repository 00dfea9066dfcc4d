"""``LampDataModule``: the 1D E2 Burgers trajectories, with training windows on mixed meshes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from zoo.lamp import mesh
from zoo.lamp.dataset import E2Config, fingerprint, load_e2

__all__ = ["MESH_KINDS", "LampDataModule"]

#: Meshes of training items: the full grid, the paper code's vertex dropout (with probability
#: 0.1, 0-30 % of the interior vertices), random dropout of up to 75 %, and every 2nd / 4th vertex.
MESH_KINDS = ("full", "official", "dropout", "uniform:2", "uniform:4")
_DEFAULT_MIX = {"full": 0.1, "official": 0.2, "dropout": 0.3, "uniform:2": 0.2, "uniform:4": 0.2}


class _Windows(IterableDataset):
    """Endless batches of random windows of ``bundles`` bundles, each on a random mesh."""

    def __init__(
        self,
        frames: torch.Tensor,
        window: int,
        batch_size: int,
        mix: Mapping[str, float],
        seed: int,
    ) -> None:
        self.frames, self.window, self.batch_size, self.seed = frames, window, batch_size, seed
        self.kinds = list(mix)
        self.weights = torch.tensor([float(mix[k]) for k in self.kinds])
        self.epoch = 0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        rank = torch.distributed.get_rank() if distributed else 0
        stream = (self.seed, rank, worker, self.epoch)
        generator = torch.Generator().manual_seed(hash(stream) % 2**62)
        self.epoch += 1
        n, n_frames, n_grid = self.frames.shape
        while True:
            rows = torch.randint(0, n, (self.batch_size,), generator=generator)
            starts = torch.randint(
                0, n_frames - self.window + 1, (self.batch_size,), generator=generator
            )
            offsets = starts[:, None] + torch.arange(self.window)
            frames = self.frames[rows[:, None], offsets]
            kinds = torch.multinomial(self.weights, self.batch_size, True, generator=generator)
            yield {"frames": frames, "mask": self._masks(kinds, n_grid, generator)}

    def _masks(self, kinds: torch.Tensor, n_grid: int, generator: torch.Generator) -> torch.Tensor:
        masks = torch.ones(len(kinds), n_grid, dtype=torch.bool)
        for index, kind in enumerate(self.kinds):
            rows = (kinds == index).nonzero(as_tuple=True)[0]
            if len(rows) == 0:
                continue
            if kind == "official":
                dropped = mesh.dropout_mask(len(rows), n_grid, 0.3, generator)
                apply = torch.rand(len(rows), generator=generator) < 0.1
                masks[rows] = torch.where(apply[:, None], dropped, masks[rows])
            elif kind == "dropout":
                masks[rows] = mesh.dropout_mask(len(rows), n_grid, 0.75, generator)
            else:
                masks[rows] = mesh.make_mask(kind, len(rows), n_grid)
        return masks


class LampDataModule(pl.LightningDataModule):
    """Forced viscous Burgers (the E2 family), solved here and cached on first use.

    Training batches are dicts of ``frames`` ``(batch, window, n_grid)`` (random windows of
    ``1 + rollout`` bundles from random training trajectories) and ``mask`` ``(batch, n_grid)``
    drawn from ``mesh_mix``; validation and test batches are whole trajectories
    ``(batch, 250, n_grid)``, on which the module rolls out from frame 25.

    Args:
        n_train, n_val, n_test: Trajectories per split.
        seed: Seed of the trajectory parameters (splits get disjoint streams).
        n_cells: Solver resolution (averaged down to ``n_grid = 100``).
        bundle: Frames per bundle.
        rollout: Bundles predicted from each training window.
        batch_size: Training windows per batch.
        eval_batch_size: Trajectories per validation / test batch.
        mesh_mix: Weights of the training meshes, over :data:`MESH_KINDS`.
        cache_dir: Where the solved trajectories are kept (``$ZOO_CACHE/lamp`` by default).
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        n_train: int = 512,
        n_val: int = 64,
        n_test: int = 128,
        seed: int = 0,
        n_cells: int = 200,
        bundle: int = 25,
        rollout: int = 4,
        batch_size: int = 16,
        eval_batch_size: int = 64,
        mesh_mix: dict[str, float] | None = None,
        cache_dir: str | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        mix = dict(_DEFAULT_MIX if mesh_mix is None else mesh_mix)
        unknown = sorted(set(mix) - set(MESH_KINDS))
        if unknown or not mix or min(mix.values()) < 0 or sum(mix.values()) <= 0:
            raise ValueError(
                f"LampDataModule: mesh_mix {mix} must give non-negative weights, not all zero, "
                f"to kinds among {list(MESH_KINDS)}"
                + (f" (unknown: {unknown})" if unknown else "")
            )
        self.mix = mix
        self.config = E2Config(
            n_train=n_train, n_val=n_val, n_test=n_test, seed=seed, n_cells=n_cells
        )
        self.arrays: dict[str, np.ndarray] | None = None

    @property
    def root(self) -> Path | None:
        return (
            None if self.hparams.cache_dir is None else Path(self.hparams.cache_dir).expanduser()
        )

    def prepare_data(self) -> None:
        load_e2(self.config, self.root)

    def setup(self, stage: str | None = None) -> None:
        if self.arrays is None:
            self.arrays = load_e2(self.config, self.root)

    def trajectories(self, split: str) -> torch.Tensor:
        """``(n, 250, 100)`` float32 ground truth of ``split`` (``train``, ``val``, ``test``)."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"LampDataModule: split must be train, val or test, got {split!r}")
        self.setup()
        return torch.from_numpy(self.arrays[split])

    def viscosity(self, split: str) -> torch.Tensor:
        """``(n,)`` viscosity of each trajectory of ``split``."""
        self.setup()
        return torch.from_numpy(self.arrays[f"nu_{split}"])

    def fingerprint(self) -> str:
        self.setup()
        return fingerprint(self.arrays)

    def train_dataloader(self) -> DataLoader:
        window = self.hparams.bundle * (1 + self.hparams.rollout)
        windows = _Windows(
            self.trajectories("train"),
            window,
            self.hparams.batch_size,
            self.mix,
            self.hparams.seed,
        )
        return DataLoader(windows, batch_size=None, num_workers=self.hparams.num_workers)

    def _eval_loader(self, split: str) -> DataLoader:
        data = TensorDataset(self.trajectories(split))
        return DataLoader(data, batch_size=self.hparams.eval_batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
