"""The E2 data set, generated once by :mod:`zoo.lamp.burgers` and cached as one ``.npz``.

The file is named by :meth:`E2Config.key`, a hash of the configuration and of
:data:`~zoo.lamp.burgers.SOLVER_VERSION`, so that a change of either generates a new file. It is
written to a temporary file and renamed (readers never see half a file), and read without
pickles. :func:`fingerprint` names the arrays' content, for the ``zoo.json`` of trained weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from zoo.lamp import burgers

__all__ = ["SPLITS", "E2Config", "cache_path", "default_cache_dir", "fingerprint", "load_e2"]

_log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_ARRAYS = (*SPLITS, *(f"nu_{split}" for split in SPLITS))


@dataclass(frozen=True)
class E2Config:
    """What an E2 data set is made of.

    Attributes:
        n_train: Training trajectories.
        n_val: Validation trajectories.
        n_test: Test trajectories.
        seed: Seed of the whole set; split ``i`` (train, val, test) draws with ``3 seed + i``.
        n_cells: Cells of the solver's grid.
        n_out: Cells (the models' grid vertices) of the stored fields; divides ``n_cells``.
        n_frames: Frames per trajectory.
        t_end: Final time.
        length: Period of the domain.
    """

    n_train: int = 512
    n_val: int = 64
    n_test: int = 128
    seed: int = 0
    n_cells: int = 200
    n_out: int = 100
    n_frames: int = 250
    t_end: float = 4.0
    length: float = 16.0

    def __post_init__(self) -> None:
        sizes = {"n_train": self.n_train, "n_val": self.n_val, "n_test": self.n_test}
        bad = {name: value for name, value in sizes.items() if value < 1}
        if bad:
            raise ValueError(f"E2Config: split sizes must be positive, got {bad}")
        if self.seed < 0:
            raise ValueError(f"E2Config: seed must be >= 0, got {self.seed}")
        if self.n_out < 1 or self.n_cells % self.n_out:
            raise ValueError(
                f"E2Config: n_cells={self.n_cells} must be a multiple of n_out={self.n_out}"
            )

    def key(self) -> str:
        """A short hash of the configuration and of the solver's version.

        Example:
            >>> len(E2Config().key())
            12
        """
        spec = {**asdict(self), "solver_version": burgers.SOLVER_VERSION}
        text = json.dumps(spec, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def sizes(self) -> dict[str, int]:
        """Trajectories per split."""
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}

    def split_seed(self, split: str) -> int:
        """The seed of :func:`~zoo.lamp.burgers.generate` for a split; disjoint over splits and
        over the configuration's seeds."""
        return 3 * self.seed + SPLITS.index(split)


def default_cache_dir() -> Path:
    """``$ZOO_CACHE/lamp``, else ``$XDG_CACHE_HOME/zoo/lamp``, else ``~/.cache/zoo/lamp`` (read
    at every call)."""
    root = os.environ.get("ZOO_CACHE")
    if root:
        return Path(root).expanduser() / "lamp"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "zoo" / "lamp"


def cache_path(config: E2Config, root: Path | None = None) -> Path:
    """Where :func:`load_e2` keeps the set of ``config``."""
    return Path(root if root is not None else default_cache_dir()) / f"e2-{config.key()}.npz"


def load_e2(
    config: E2Config, root: Path | None = None, progress: bool = True
) -> dict[str, np.ndarray]:
    """The E2 set of ``config``: read from the cache, else generated (about 45 CPU-s for the
    default sizes) and cached.

    Args:
        config: What to generate.
        root: Cache folder; :func:`default_cache_dir` when ``None``.
        progress: Show progress bars while generating.

    Returns:
        ``train``, ``val``, ``test``: ``(n_split, n_frames, n_out)`` float32 fields, and
        ``nu_train``, ``nu_val``, ``nu_test``: ``(n_split,)`` float64 viscosities.

    Raises:
        ValueError: If the cache file cannot be read or does not hold ``config``'s set; the
            message names the file, to be deleted.
    """
    path = cache_path(config, root)
    if path.is_file():
        return _read(path, config)

    _log.info("generating the E2 set %s into %s", config, path)
    arrays: dict[str, np.ndarray] = {}
    for split, n in config.sizes().items():
        u, nu = burgers.generate(
            n,
            config.split_seed(split),
            n_cells=config.n_cells,
            n_out=config.n_out,
            n_frames=config.n_frames,
            t_end=config.t_end,
            length=config.length,
            progress=progress,
        )
        arrays[split], arrays[f"nu_{split}"] = u, nu
    meta = {"config": asdict(config), "key": config.key(), "fingerprint": fingerprint(arrays)}
    _write(path, {**arrays, "meta": np.array(json.dumps(meta, sort_keys=True))})
    return arrays


def fingerprint(arrays: Mapping[str, np.ndarray]) -> str:
    """A stable name of the arrays' content: names, dtypes, shapes and bytes.

    Args:
        arrays: Named arrays, e.g. the output of :func:`load_e2`.

    Returns:
        ``"sha256:"`` and 16 hex digits.

    Example:
        >>> fingerprint({"x": np.zeros(3, dtype=np.float32)})[:7]
        'sha256:'
    """
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        array = array.astype(array.dtype.newbyteorder("<"), copy=False)
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return "sha256:" + digest.hexdigest()[:16]


def _read(path: Path, config: E2Config) -> dict[str, np.ndarray]:
    delete = "delete it to generate the set again"
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in _ARRAYS}
            meta = json.loads(str(f["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"E2 cache file {path} is unreadable ({error}); {delete}") from error

    expected = {split: (n, config.n_frames, config.n_out) for split, n in config.sizes().items()}
    shapes = {split: arrays[split].shape for split in SPLITS}
    if meta.get("config") != asdict(config) or shapes != expected:
        raise ValueError(f"E2 cache file {path} does not hold the set of {config}; {delete}")
    if meta.get("fingerprint") != fingerprint(arrays):
        raise ValueError(f"E2 cache file {path} is corrupt (its content changed); {delete}")
    return arrays


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` into a temporary file next to ``path``, renamed onto it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
