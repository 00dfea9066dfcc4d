"""The Embryoid Body scRNA-seq snapshots (TrajectoryNet's EB set) from a user's npz file.

No package ships these data and nothing here downloads them: the user points ``data_dir`` at a
copy. Both published layouts are read; cells are standardised with the training cells' mean and
standard deviation, which the model keeps to answer in data coordinates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from zoo.errors import ZooError

__all__ = ["EBDataError", "EBDataNotFoundError", "EBSnapshots", "eb_missing", "load_eb"]

_EB_LAYOUTS = (
    "the NLSB layout: keys 'X' (N, D), 'ts' (N,) time labels, optional 'v' (N, D) velocity; "
    "or the TrajectoryNet layout: keys 'pcs' (N, D), 'sample_labels' (N,), optional "
    "'delta_embedding' (N, D)"
)


def _seed(seed: int) -> int:
    digest = hashlib.sha256(f"eb:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def eb_missing(problem: str) -> str:
    return (
        f"{problem}; the zoo can't download the Embryoid Body data. Give `data_dir=` a folder "
        f"holding eb_velocity_v5.npz or the NLSB npz (and `file=` its name), in {_EB_LAYOUTS}"
    )


class EBDataError(ZooError, ValueError):
    """The Embryoid Body file lacks the expected keys or shapes."""


class EBDataNotFoundError(ZooError, FileNotFoundError):
    """No Embryoid Body file at the given path (the zoo never downloads it)."""


@dataclass(frozen=True)
class EBSnapshots:
    """Standardised EB snapshots: ``times`` (sorted labels); ``splits`` and ``velocities`` (or
    None), each ``{"train" | "val" | "test": [Tensor (n_t, dim) per time]}`` with test = val;
    ``mean``, ``std`` ``(dim,)`` of the training cells, ``x_std = (x - mean) / std``."""

    times: tuple[float, ...]
    splits: dict[str, list[torch.Tensor]]
    velocities: dict[str, list[torch.Tensor]] | None
    mean: torch.Tensor
    std: torch.Tensor


def load_eb(
    path: str | Path, dim: int = 5, n_val_per_time: int = 200, seed: int = 0
) -> EBSnapshots:
    """Read Embryoid Body snapshots from a user's npz file.

    Accepts the NLSB layout (keys ``X``, ``ts``, optional ``v``) or TrajectoryNet's
    ``eb_velocity_v5.npz`` (keys ``pcs``, ``sample_labels``, optional ``delta_embedding``).
    Keeps the first ``dim`` columns, holds out ``n_val_per_time`` random cells per time as
    validation (also used as test) and standardises everything with the training cells'
    per-column mean and std (velocities are divided by the std).

    Raises:
        EBDataNotFoundError: No file at ``path``.
        EBDataError: The keys, shapes or cell counts do not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise EBDataNotFoundError(eb_missing(f"no Embryoid Body file at {path}"))
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        for x_key, t_key, v_key in (("X", "ts", "v"), ("pcs", "sample_labels", "delta_embedding")):
            if {x_key, t_key} <= keys:
                x, labels = data[x_key], data[t_key]
                v = data[v_key] if v_key in keys else None
                break
        else:
            raise EBDataError(f"{path} has keys {sorted(keys)}; expected {_EB_LAYOUTS}")
    x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    labels = torch.as_tensor(np.asarray(labels, dtype=np.float64)).reshape(-1)
    if x.ndim != 2 or x.shape[1] < dim or len(labels) != len(x):
        raise EBDataError(
            f"{path}: need cells (N, >= {dim}) and N time labels, got {tuple(x.shape)} and "
            f"{len(labels)} labels; lower `dim` or check the file ({_EB_LAYOUTS})"
        )
    x = x[:, :dim]
    v = None if v is None else torch.as_tensor(np.asarray(v, dtype=np.float64))[:, :dim]
    times = tuple(float(t) for t in torch.unique(labels).tolist())

    generator = torch.Generator().manual_seed(_seed(seed))
    val_idx, train_idx = [], []
    for t in times:
        idx = torch.nonzero(labels == t).reshape(-1)
        if len(idx) <= n_val_per_time:
            raise EBDataError(
                f"{path}: time {t} has {len(idx)} cells, need more than "
                f"n_val_per_time={n_val_per_time}; lower n_val_per_time"
            )
        idx = idx[torch.randperm(len(idx), generator=generator)]
        val_idx.append(idx[:n_val_per_time])
        train_idx.append(idx[n_val_per_time:])
    train = torch.cat([x[i] for i in train_idx])
    mean, std = train.mean(0), train.std(0).clamp_min(1e-12)

    def pick(a: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> dict:
        val = [((a[i] - shift) / scale).float() for i in val_idx]
        train = [((a[i] - shift) / scale).float() for i in train_idx]
        return {"train": train, "val": val, "test": val}

    splits = pick(x, std, mean)
    velocities = None if v is None else pick(v, std, torch.zeros_like(mean))
    return EBSnapshots(times, splits, velocities, mean.float(), std.float())
