"""``QM9DataModule``: QM9 molecules (or a local PCQM4Mv2 copy) for denoising pre-training
and property fine-tuning, with a seeded split saved next to the converted arrays.

Splits: one seeded permutation of all molecules (QM9's row order is not random) is cut into
the labelled pool (test, val, train, in this order, so a smaller ``train_size`` gives a subset
and the test set does not move), then the held-out val and test sets of pre-training, and the
rest, the pre-training corpus: it never holds a labelled molecule.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from zoo.denoising.molecules import (
    _FORMAT,
    PCQM4MV2_SDF,
    TARGETS,
    MoleculeArrays,
    _atomic,
    _target,
    default_cache_dir,
    qm9pack_version,
    read_pcqm4mv2,
    read_qm9,
)

__all__ = ["TARGETS", "QM9DataModule", "make_split"]

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Splits


_SPLIT_ORDER = ("test", "val", "train", "pretrain_val", "pretrain_test")


def make_split(
    n: int,
    seed: int,
    *,
    train_size: int,
    val_size: int,
    test_size: int,
    pretrain_val_size: int,
    pretrain_test_size: int,
) -> dict[str, np.ndarray]:
    """Row positions of the labelled pool and the pre-training corpus, by one seeded
    permutation of ``range(n)``.

    The permutation is cut into ``test``, ``val``, ``train`` (the labelled pool), then
    ``pretrain_val``, ``pretrain_test`` and the rest, ``pretrain_train``: the pre-training
    corpus never holds a labelled molecule.

    Returns:
        ``{split: (size,) int64}``, in permutation order (a prefix of ``pretrain_train`` is a
        random subset).

    Raises:
        ValueError: If the sizes do not fit into ``n`` molecules.
    """
    sizes = {
        "test": test_size,
        "val": val_size,
        "train": train_size,
        "pretrain_val": pretrain_val_size,
        "pretrain_test": pretrain_test_size,
    }
    negative = {k: v for k, v in sizes.items() if v < 0}
    if negative:
        raise ValueError(f"QM9DataModule: split sizes must be >= 0, got {negative}")
    labelled = train_size + val_size + test_size
    if labelled > n:
        raise ValueError(
            f"QM9DataModule: train_size + val_size + test_size = {labelled} exceeds the "
            f"{n} molecules; make them smaller"
        )
    if labelled + pretrain_val_size + pretrain_test_size >= n:
        raise ValueError(
            f"QM9DataModule: the labelled pool ({labelled}) and the pre-training val and test "
            f"sets ({pretrain_val_size} + {pretrain_test_size}) leave no pre-training molecule "
            f"of {n}; make them smaller"
        )
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    split, start = {}, 0
    for name in _SPLIT_ORDER:
        split[name] = order[start : start + sizes[name]]
        start += sizes[name]
    split["pretrain_train"] = order[start:]
    return split


def _split_record(split: dict[str, np.ndarray], seed: int, arrays_sha256: str) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "seed": seed,
        "method": "numpy.random.default_rng(seed).permutation(n), cut in this order: "
        + ", ".join((*_SPLIT_ORDER, "pretrain_train")),
        "arrays_sha256": arrays_sha256,
        "sizes": {name: len(rows) for name, rows in split.items()},
        "sha256": {name: _rows_hash(rows) for name, rows in split.items()},
        "rows": {name: rows.tolist() for name, rows in split.items()},
    }


def _rows_hash(rows: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(rows, dtype="<i8").tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# The datamodule


class _Molecules(Dataset):
    """Molecules ``rows`` of ``arrays`` as PyG ``Data``; ``y`` per molecule, in reported
    units, or ``None`` (no ``y`` attribute)."""

    def __init__(self, arrays: MoleculeArrays, rows: np.ndarray, y: np.ndarray | None) -> None:
        self.arrays, self.rows, self.y = arrays, rows, y

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Data:
        row = int(self.rows[i])
        start, end = self.arrays.offsets[row], self.arrays.offsets[row + 1]
        data = Data(
            z=torch.from_numpy(self.arrays.z[start:end]).long(),
            pos=torch.from_numpy(self.arrays.pos[start:end].copy()),
            idx=torch.tensor([int(self.arrays.index[row])]),
        )
        if self.y is not None:
            data.y = torch.tensor([self.y[row]], dtype=torch.float32)
        return data


class QM9DataModule(pl.LightningDataModule):
    """QM9 molecules for denoising pre-training (structures only) and property fine-tuning.

    Batches are ``torch_geometric.data.Batch`` of ``Data(z, pos, idx[, y])``: ``z`` long
    atomic numbers, ``pos`` float32 Å, ``idx`` QM9's ``Index``, ``y`` the target in its
    reported unit (:data:`TARGETS`; float32, standardise with :meth:`target_stats`).

    ``mode="finetune"`` uses the labelled pool (``train_size`` / ``val_size`` /
    ``test_size``); ``mode="pretrain"`` the rest of the molecules (``pretrain_val_size`` /
    ``pretrain_test_size`` held out, at most ``pretrain_size`` for training).

    Args:
        target: One of :data:`TARGETS`, or ``None`` / ``"none"`` for structures only.
        mode: ``"pretrain"`` or ``"finetune"``; default: ``"pretrain"`` without a target,
            ``"finetune"`` with one.
        source: ``"qm9pack"``, or a folder holding a local ``pcqm4m-v2-train.sdf`` (then
            pre-training only: every molecule is in the corpus).
        split_seed: Seed of the permutation behind all splits.
        train_size, val_size, test_size: The labelled pool (QM9 only).
        pretrain_val_size, pretrain_test_size: Held out of the pre-training corpus.
        pretrain_size: At most this many pre-training molecules (``None``: all).
        batch_size: Molecules per batch.
        num_workers: DataLoader workers.
        cache_dir: Folder of the converted arrays and splits (default:
            :func:`default_cache_dir`).
        limit: Convert only the first ``limit`` molecules into a separate cache file (tests).
    """

    def __init__(
        self,
        target: str | None = "homo",
        mode: Literal["pretrain", "finetune"] | None = None,
        source: str = "qm9pack",
        split_seed: int = 0,
        train_size: int = 8000,
        val_size: int = 1000,
        test_size: int = 2000,
        pretrain_val_size: int = 1000,
        pretrain_test_size: int = 1000,
        pretrain_size: int | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        cache_dir: str | None = None,
        limit: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.target = None if target is None or target.lower() == "none" else _target(target)
        self.mode = mode or ("finetune" if self.target else "pretrain")
        self._check_arguments()
        self.arrays: MoleculeArrays | None = None
        self.splits: dict[str, np.ndarray] = {}

    def _check_arguments(self) -> None:
        hp = self.hparams
        if self.mode not in ("pretrain", "finetune"):
            raise ValueError(
                f"QM9DataModule: mode must be 'pretrain' or 'finetune', got {self.mode!r}"
            )
        if self.mode == "finetune" and self.target is None:
            raise ValueError(
                f"QM9DataModule: fine-tuning needs a target, one of {list(TARGETS)}; "
                "or pass mode='pretrain'"
            )
        if hp.source != "qm9pack" and self.target is not None:
            raise ValueError(
                f"QM9DataModule: PCQM4Mv2 structures carry no {self.target.name!r} labels; "
                "pass target=None to pre-train on them, or source='qm9pack' to fine-tune"
            )
        counts = {
            "train_size": hp.train_size,
            "val_size": hp.val_size,
            "test_size": hp.test_size,
            "pretrain_val_size": hp.pretrain_val_size,
            "pretrain_test_size": hp.pretrain_test_size,
            "num_workers": hp.num_workers,
        }
        negative = {k: v for k, v in counts.items() if v < 0}
        if negative:
            raise ValueError(f"QM9DataModule: {negative} must be >= 0")
        for name in ("batch_size", "pretrain_size", "limit"):
            value = getattr(hp, name)
            if value is not None and value < 1:
                raise ValueError(f"QM9DataModule: {name} must be >= 1, got {value}")
        if self.mode == "finetune" and min(hp.train_size, hp.val_size) < 1:
            raise ValueError("QM9DataModule: fine-tuning needs train_size and val_size >= 1")

    # -- files --------------------------------------------------------------------------------

    def cache_path(self) -> Path:
        """The converted arrays (``.npz``): one file per source (and ``limit``)."""
        hp = self.hparams
        folder = Path(hp.cache_dir).expanduser() if hp.cache_dir else default_cache_dir()
        if hp.source == "qm9pack":
            stem = f"qm9pack-{qm9pack_version()}"
        else:
            sdf = (Path(hp.source).expanduser() / PCQM4MV2_SDF).resolve()
            key = f"{sdf}:{sdf.stat().st_size if sdf.is_file() else None}"
            stem = f"pcqm4mv2-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        limit = f"-first{hp.limit}" if hp.limit else ""
        return folder / f"{stem}{limit}-v{_FORMAT}.npz"

    def split_path(self) -> Path:
        """The saved split (JSON), next to the arrays."""
        sizes = "-".join(str(v) for v in self._split_sizes().values())
        path = self.cache_path()
        return path.with_name(f"{path.stem}.split-seed{self.hparams.split_seed}-{sizes}.json")

    def _split_sizes(self) -> dict[str, int]:
        hp = self.hparams
        labelled = hp.source == "qm9pack"
        return {
            "train_size": hp.train_size if labelled else 0,
            "val_size": hp.val_size if labelled else 0,
            "test_size": hp.test_size if labelled else 0,
            "pretrain_val_size": hp.pretrain_val_size,
            "pretrain_test_size": hp.pretrain_test_size,
        }

    def prepare_data(self) -> None:
        """Converts the source once into :meth:`cache_path` and saves the split next to it."""
        path, arrays = self.cache_path(), None
        if not path.is_file():
            hp = self.hparams
            _log.info("QM9DataModule: converting %s into %s (once)", hp.source, path)
            if hp.source == "qm9pack":
                arrays = read_qm9(limit=hp.limit)
            else:
                arrays = read_pcqm4mv2(hp.source, limit=hp.limit)
            arrays.save(path)
        if not self.split_path().is_file():
            self._load_split(arrays or MoleculeArrays.load(path))

    def _load_split(self, arrays: MoleculeArrays) -> dict[str, np.ndarray]:
        path, seed = self.split_path(), self.hparams.split_seed
        if path.is_file():
            record = json.loads(path.read_text())
            if record["arrays_sha256"] != arrays.meta["sha256"] or record["seed"] != seed:
                raise ValueError(
                    f"QM9DataModule: the split {path} belongs to other arrays; delete it"
                )
            split = {name: np.array(rows, dtype=np.int64) for name, rows in record["rows"].items()}
            if any(_rows_hash(rows) != record["sha256"][name] for name, rows in split.items()):
                raise ValueError(f"QM9DataModule: the split {path} is corrupt; delete it")
            return split
        split = make_split(len(arrays), seed, **self._split_sizes())
        with _atomic(path, "w") as handle:
            json.dump(_split_record(split, seed, arrays.meta["sha256"]), handle)
        return split

    # -- stages -------------------------------------------------------------------------------

    def setup(self, stage: str | None = None) -> None:
        """Loads the arrays (converting them first if :meth:`prepare_data` did not) and the
        split."""
        if self.arrays is not None:
            return
        if not self.cache_path().is_file():
            self.prepare_data()
        arrays = MoleculeArrays.load(self.cache_path())
        split = self._load_split(arrays)
        hp = self.hparams
        if self.mode == "finetune":
            self.splits = {name: split[name] for name in ("train", "val", "test")}
        else:
            train = split["pretrain_train"]
            if hp.pretrain_size is not None:
                if hp.pretrain_size > len(train):
                    raise ValueError(
                        f"QM9DataModule: pretrain_size={hp.pretrain_size} exceeds the "
                        f"{len(train)} pre-training molecules; make it smaller or None"
                    )
                train = train[: hp.pretrain_size]
            self.splits = {
                "train": train,
                "val": split["pretrain_val"],
                "test": split["pretrain_test"],
            }
        self._y = arrays.target(self.target.name) if self.target else None
        self.arrays = arrays

    def dataset(self, split: str) -> Dataset:
        """The ``train``, ``val`` or ``test`` molecules of the current mode."""
        self.setup()
        if split not in self.splits:
            raise ValueError(f"QM9DataModule: no split {split!r}; use train, val or test")
        return _Molecules(self.arrays, self.splits[split], self._y)

    def target_stats(self) -> dict[str, Any]:
        """Mean and standard deviation of the target over the train split, in its unit.

        Returns:
            ``{"target", "unit", "mean", "std", "n"}``.
        """
        if self.target is None:
            raise ValueError("QM9DataModule: no target (target=None); pass e.g. target='homo'")
        self.setup()
        y = self._y[self.splits["train"]]
        return {
            "target": self.target.name,
            "unit": self.target.unit,
            "mean": float(y.mean()),
            "std": float(y.std()),
            "n": len(y),
        }

    def fingerprint(self) -> str:
        """sha256 of the arrays' content hash, the mode, the target and the split rows."""
        self.setup()
        digest = hashlib.sha256(self.arrays.meta["sha256"].encode())
        digest.update(f"{self.mode}:{self.target.name if self.target else None}".encode())
        for name in ("train", "val", "test"):
            digest.update(_rows_hash(self.splits[name]).encode())
        return "sha256:" + digest.hexdigest()[:16]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        if len(dataset) == 0:
            raise ValueError(f"QM9DataModule: the {split} split is empty; give it a size >= 1")
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
