"""Population snapshots (samples at a few times, no correspondence) for the Lagrangian
Schrödinger bridge: three seeded ground-truth processes, ``ou1d`` (exact), ``psde3d`` and
``branch2d`` (Euler-Maruyama), and the user's Embryoid Body snapshots (:mod:`zoo.nlsb.eb`).

References:
    Koshizuka & Sato, "Neural Lagrangian Schrödinger Bridge: Diffusion Modeling for Population
    Dynamics", ICLR 2023, arXiv:2204.04853.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.nlsb.eb import EBDataNotFoundError, eb_missing, load_eb

__all__ = [
    "Branching2D",
    "OrnsteinUhlenbeck1D",
    "PotentialSDE3D",
    "SnapshotDataModule",
    "SnapshotProcess",
    "make_snapshots",
    "process",
]

_SPLITS = ("train", "val", "test")


class SnapshotProcess:
    """A ground-truth diffusion ``dX = f(X, t) dt + g(X, t) dW`` with diagonal noise.

    Computations run in float64; ``sample_base`` and ``sample_at`` return float32, ``drift``
    and ``diffusion`` return the dtype of ``x``. All randomness comes from the ``generator``
    passed in (Euler-Maruyama increments are drawn in float32, four times faster, and added to
    a float64 state).

    Attributes:
        name: Registry name.
        dim: State dimension.
        times: The base time ``t_0`` first, then the observed times.
        exact: True when ``sample_at`` draws from the exact transition law.
        dt_ref: Euler-Maruyama step of ``sample_at`` when not exact.
    """

    name: str = ""
    dim: int = 1
    times: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0)
    exact: bool = False

    def __init__(self, dt_ref: float = 1e-3) -> None:
        if not dt_ref > 0:
            raise ValueError(f"{type(self).__name__}: dt_ref must be > 0, got {dt_ref}")
        self.dt_ref = float(dt_ref)

    def sample_base(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` samples at ``times[0]``, shape ``(n, dim)``."""
        return self._base(n, generator).float()

    def sample_at(
        self, x: torch.Tensor, s: float, t: float, generator: torch.Generator
    ) -> torch.Tensor:
        """One draw of ``X_t | X_s = x`` per row (``t >= s``), float32.

        Shapes:
            - x: ``(n, dim)``; returns ``(n, dim)``.
        """
        self._check(x)
        if t < s:
            raise ValueError(f"{type(self).__name__}.sample_at: need t >= s, got s={s}, t={t}")
        return self._transition(x.double(), float(s), float(t), generator).float()

    def drift(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """The true drift ``f(x, t)``, shape ``(n, dim)``."""
        self._check(x)
        return self._drift(x.double(), float(t)).to(x.dtype)

    def diffusion(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """The true diagonal diffusion ``g(x, t)``, shape ``(n, dim)``."""
        self._check(x)
        return self._diffusion(x.double(), float(t)).to(x.dtype)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"{type(self).__name__}: x must have shape (n, {self.dim}), got {tuple(x.shape)}"
            )

    # Subclasses define ``_base(n, generator)``, ``_drift(x, t)`` and ``_diffusion(x, t)``, all
    # float64, and may replace the Euler-Maruyama ``_transition`` by an exact one.

    def _transition(
        self, x: torch.Tensor, s: float, t: float, generator: torch.Generator
    ) -> torch.Tensor:
        """Euler-Maruyama from ``s`` to ``t`` with the largest step ``<= dt_ref``."""
        if t == s:
            return x.clone()
        n_steps = max(1, math.ceil((t - s) / self.dt_ref - 1e-9))
        h = (t - s) / n_steps
        root_h = math.sqrt(h)
        for k in range(n_steps):
            r = s + k * h
            noise = torch.randn(x.shape, generator=generator).to(x.dtype)  # float32: 4x faster
            x = x + h * self._drift(x, r) + root_h * self._diffusion(x, r) * noise
        return x


class OrnsteinUhlenbeck1D(SnapshotProcess):
    """``dx = (μ t - θ x) dt + σ t dW`` with ``μ = σ = 0.4``, ``θ = 0.1``, ``x_0 ~ U(-1, 1)``.

    The paper's experiment (a), written there with diffusion ``0.8 (t / 2)``. The SDE is linear,
    so ``X_t | X_s = x`` is Gaussian with (``Δ = t - s``, ``k = 2θ``)

    - mean ``x e^{-θΔ} + μ [(t/θ - 1/θ²) - e^{-θΔ} (s/θ - 1/θ²)]``,
    - variance ``σ² [(t²/k - 2t/k² + 2/k³) - e^{-kΔ} (s²/k - 2s/k² + 2/k³)]``,

    the closed forms of ``μ ∫_s^t e^{-θ(t-r)} r dr`` and ``σ² ∫_s^t e^{-2θ(t-r)} r² dr``;
    ``sample_at`` draws from that law exactly.
    """

    name, dim, exact = "ou1d", 1, True
    theta, mu, sigma = 0.1, 0.4, 0.4

    def conditional_moments(
        self, x: torch.Tensor, s: float, t: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of ``X_t | X_s = x`` (float64, exact).

        Shapes:
            - x: ``(n, 1)``; returns two ``(n, 1)`` tensors.
        """
        self._check(x)
        if t < s:
            raise ValueError(f"OrnsteinUhlenbeck1D: need t >= s, got s={s}, t={t}")
        th, k = self.theta, 2 * self.theta
        decay = math.exp(-th * (t - s))
        shift = self.mu * ((t / th - 1 / th**2) - decay * (s / th - 1 / th**2))
        mean = x.double() * decay + shift

        def antiderivative(r: float) -> float:
            return r * r / k - 2 * r / k**2 + 2 / k**3

        var = self.sigma**2 * (antiderivative(t) - math.exp(-k * (t - s)) * antiderivative(s))
        return mean, torch.full_like(mean, math.sqrt(max(var, 0.0)))

    def _base(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return 2 * torch.rand(n, 1, generator=generator, dtype=torch.float64) - 1

    def _drift(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return self.mu * t - self.theta * x

    def _diffusion(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return torch.full_like(x, self.sigma * t)

    def _transition(
        self, x: torch.Tensor, s: float, t: float, generator: torch.Generator
    ) -> torch.Tensor:
        mean, std = self.conditional_moments(x, s, t)
        return mean + std * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)


class PotentialSDE3D(SnapshotProcess):
    """``dx = -a ⊙ x² dt + 0.1 dW`` with ``a = (1, 0.5, 0.1)``, ``x_0 ~ U(5, 6)³``.

    The paper's experiment (b). The drift is ``-∇U`` for ``U(x) = Σ_i a_i x_i³ / 3``, the
    "cubic" prior of the Newtonian Lagrangian. Without noise ``x(t) = x_0 / (1 + a x_0 t)``.
    ``sample_at`` integrates by Euler-Maruyama with step ``dt_ref``.
    """

    name, dim, exact = "psde3d", 3, False
    sigma = 0.1

    def __init__(self, dt_ref: float = 1e-3) -> None:
        super().__init__(dt_ref)
        self.a = torch.tensor([1.0, 0.5, 0.1], dtype=torch.float64)

    def _base(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return 5 + torch.rand(n, 3, generator=generator, dtype=torch.float64)

    def _drift(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return -self.a * x * x

    def _diffusion(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return torch.full_like(x, self.sigma)


class Branching2D(SnapshotProcess):
    """Overdamped Langevin ``dX = -∇V(X, t) dt + σ dW`` in 2-D, one blob splitting into two.

    ``V(x, y, t) = λ(t) x²/2 + (1 - λ(t)) b (x² - c²)² + y²/2`` with
    ``λ(t) = (1 + cos(π min(t / t_split, 1))) / 2``, ``b = 0.25``, ``c = 1.5``, ``t_split = 3``,
    ``σ = 0.4``; base ``X_0 ~ N(0, 0.3² I)`` at ``t_0 = 0``. At ``t_0`` the potential is a
    single harmonic well; the origin turns unstable along ``x`` near ``t ≈ 1.1``, and from
    ``t_split`` on ``V`` is a symmetric double well with minima ``(±c, 0)`` and barrier
    ``b c⁴ ≈ 1.27`` (``≈ 16 σ²/2``), so at ``t = 4`` two well-separated blobs of about equal
    mass remain. Observed at ``t = 1, 2, 3, 4``; ``t = 2``, mid-split, is the natural held-out
    time. ``sample_at`` integrates by Euler-Maruyama with step ``dt_ref``.
    """

    name, dim, exact = "branch2d", 2, False
    b, c, t_split, sigma, base_std = 0.25, 1.5, 3.0, 0.4, 0.3

    def mix(self, t: float) -> float:
        """``λ(t)``: 1 (one well) at ``t = 0``, 0 (double well) from ``t_split`` on."""
        return (1 + math.cos(math.pi * min(max(t, 0.0) / self.t_split, 1.0))) / 2

    def potential(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """``V(x, t)``, shape ``(n,)`` for ``x`` of shape ``(n, 2)``."""
        self._check(x)
        lam, u, v = self.mix(t), x[:, 0], x[:, 1]
        return lam * u**2 / 2 + (1 - lam) * self.b * (u**2 - self.c**2) ** 2 + v**2 / 2

    def _base(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.base_std * torch.randn(n, 2, generator=generator, dtype=torch.float64)

    def _drift(self, x: torch.Tensor, t: float) -> torch.Tensor:
        lam, u = self.mix(t), x[:, :1]
        fu = -lam * u - (1 - lam) * 4 * self.b * u * (u * u - self.c**2)
        return torch.cat([fu, -x[:, 1:]], dim=1)

    def _diffusion(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return torch.full_like(x, self.sigma)


_PROCESSES: dict[str, type[SnapshotProcess]] = {
    cls.name: cls for cls in (OrnsteinUhlenbeck1D, PotentialSDE3D, Branching2D)
}


def process(name: str, dt_ref: float = 1e-3) -> SnapshotProcess:
    """The ground-truth process called ``name``: ``ou1d``, ``psde3d`` or ``branch2d``."""
    if name not in _PROCESSES:
        raise ValueError(f"unknown snapshot process {name!r}: choose one of {sorted(_PROCESSES)}")
    return _PROCESSES[name](dt_ref=dt_ref)


def _seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of values (stable across runs and platforms)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def make_snapshots(
    name: str | SnapshotProcess,
    n_train: int = 2048,
    n_val: int = 512,
    n_test: int = 1000,
    seed: int = 0,
) -> dict[str, list[torch.Tensor]]:
    """Seeded snapshot splits of a ground-truth process, without sample correspondence.

    Each split simulates its own trajectories through ``process.times`` (chained transitions)
    from its own generator, then shuffles every time independently.

    Returns:
        ``{"train" | "val" | "test": [Tensor (n, dim) float32 for each time]}`` with ``n`` one
        of ``n_train``, ``n_val``, ``n_test``.
    """
    proc = process(name) if isinstance(name, str) else name
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    out: dict[str, list[torch.Tensor]] = {}
    for split, n in sizes.items():
        if n < 1:
            raise ValueError(f"make_snapshots: n_{split} must be >= 1, got {n}")
        generator = torch.Generator().manual_seed(_seed("nlsb", proc.name, seed, split))
        x = proc._base(n, generator)
        path = [x]
        for s, t in zip(proc.times[:-1], proc.times[1:], strict=True):
            x = proc._transition(x, s, t, generator)
            path.append(x)
        out[split] = [xt[torch.randperm(n, generator=generator)].float() for xt in path]
    return out


class _SnapshotBatches(Dataset):
    """Items are whole batches: ``batch_size`` rows of each per-time array (``x`` and maybe
    ``v``, same rows), drawn without replacement independently per time from the dataset's own
    generator; use with ``num_workers=0``."""

    def __init__(self, arrays: dict, t: torch.Tensor, size: int, length: int, seed: int) -> None:
        self.arrays, self.t, self.size, self.length = arrays, t, size, length
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, list[torch.Tensor] | torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"batch {index} out of range({self.length})")
        gen, n = self.generator, self.size
        picks = [torch.randperm(len(x), generator=gen)[:n] for x in self.arrays["x"]]
        batch = {k: [a[i] for a, i in zip(v, picks, strict=True)] for k, v in self.arrays.items()}
        return {**batch, "t": self.t}


def _digest(tensors: Iterable[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class SnapshotDataModule(pl.LightningDataModule):
    """Snapshot data for NLSB: a shipped synthetic process or the user's EB file.

    Train batches hold ``batch_size`` samples of every training time (base ``t_0`` included),
    ``{"x": [Tensor (batch_size, dim) per train time], "t": (n_train_times,)}`` plus ``"v"``
    when velocities exist; validation and test give one batch holding every sample of ALL
    times. ``times``, ``train_times`` and ``dim`` are known before ``setup`` except the EB times.
    Each DDP rank seeds its batch generator with ``seed`` and its rank, so ranks draw different
    batches (Lightning's distributed sampler splits the epoch's ``length`` between them).

    Args:
        dataset: ``ou1d``, ``psde3d``, ``branch2d`` or ``eb``.
        holdout: Observed times removed from training (not ``t_0``, not the last time).
        data_dir: Folder holding the EB file (``eb`` only; never downloaded).
        file: Name of the EB file in ``data_dir``.
        eb_dim: Leading PCA columns kept (``eb`` only).
        n_train, n_val, n_test: Samples per time of the synthetic splits.
        batch_size: Samples per time in a training batch.
        batches_per_epoch: Batches per epoch (default ``max(1, n_per_time // batch_size)``).
        seed: Seed of the splits and of the batch draws (combined with the DDP rank).
    """

    def __init__(
        self,
        dataset: str = "ou1d",
        holdout: list[float] | None = None,
        data_dir: str | None = None,
        file: str = "eb_velocity_v5.npz",
        eb_dim: int = 5,
        n_train: int = 2048,
        n_val: int = 512,
        n_test: int = 1000,
        batch_size: int = 256,
        batches_per_epoch: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        names = [*sorted(_PROCESSES), "eb"]
        if dataset not in names:
            raise ValueError(f"SnapshotDataModule: unknown dataset {dataset!r}; use {names}")
        for key in ("eb_dim", "n_train", "n_val", "n_test", "batch_size", "batches_per_epoch"):
            if (value := self.hparams[key]) is not None and value < 1:
                raise ValueError(f"SnapshotDataModule: {key} must be >= 1, got {value}")
        self.process = None if dataset == "eb" else process(dataset)
        self._times = None if self.process is None else self.process.times
        self._holdout = () if self._times is None else self._check_holdout(self._times)
        self.splits: dict[str, list[torch.Tensor]] | None = None
        self.velocities: dict[str, list[torch.Tensor]] | None = None
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    @property
    def times(self) -> tuple[float, ...]:
        """All times, base ``t_0`` first."""
        if self._times is None:
            raise RuntimeError("SnapshotDataModule: the eb times come from the file; call setup()")
        return self._times

    @property
    def train_times(self) -> tuple[float, ...]:
        """The times in training batches: ``times`` without the held-out ones."""
        return tuple(t for t in self.times if t not in self._holdout)

    @property
    def dim(self) -> int:
        """State dimension."""
        return self.hparams.eb_dim if self.process is None else self.process.dim

    def _check_holdout(self, times: tuple[float, ...]) -> tuple[float, ...]:
        valid = times[1:-1]
        picked = []
        for h in self.hparams.holdout or []:
            match = [t for t in valid if math.isclose(t, float(h), abs_tol=1e-9)]
            if not match:
                raise ValueError(
                    f"SnapshotDataModule: holdout time {h} is not an intermediate observed time "
                    f"of {self.hparams.dataset!r}; choose from {list(valid)}"
                )
            picked.append(match[0])
        return tuple(picked)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        hp = self.hparams
        if self.process is not None:
            self.splits = make_snapshots(self.process, hp.n_train, hp.n_val, hp.n_test, hp.seed)
            return
        if hp.data_dir is None:
            raise EBDataNotFoundError(eb_missing("dataset='eb' needs a file and data_dir=None"))
        eb = load_eb(Path(hp.data_dir) / hp.file, dim=hp.eb_dim, seed=hp.seed)
        self._times, self._holdout = eb.times, self._check_holdout(eb.times)
        self.splits, self.velocities = eb.splits, eb.velocities
        self.mean, self.std = eb.mean, eb.std

    def fingerprint(self) -> str:
        """``sha256:`` and 16 hex digits over every split (and velocity) array."""
        self.setup()
        tensors = [torch.tensor(self.times, dtype=torch.float64)]
        for store in (self.splits, self.velocities or {}):
            tensors += [x for split in _SPLITS for x in store.get(split, [])]
        return "sha256:" + _digest(tensors)[:16]

    def train_dataloader(self) -> DataLoader:
        self.setup()
        hp = self.hparams
        keep = [i for i, t in enumerate(self.times) if t not in self._holdout]
        arrays = {k: [a[i] for i in keep] for k, a in self._arrays("train").items()}
        length = hp.batches_per_epoch or max(1, min(map(len, arrays["x"])) // hp.batch_size)
        rank = 0 if self.trainer is None else int(self.trainer.global_rank)
        t = torch.tensor(self.train_times, dtype=torch.float32)
        seed = _seed("nlsb-batches", hp.seed, rank)
        batches = _SnapshotBatches(arrays, t, hp.batch_size, length, seed)
        return DataLoader(batches, batch_size=None)

    def _arrays(self, split: str) -> dict[str, list[torch.Tensor]]:
        self.setup()
        arrays = {"x": list(self.splits[split])}
        if self.velocities is not None:
            arrays["v"] = list(self.velocities[split])
        return arrays

    def _whole(self, split: str) -> DataLoader:
        batch = {**self._arrays(split), "t": torch.tensor(self.times, dtype=torch.float32)}
        return DataLoader([batch], batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self._whole("val")

    def test_dataloader(self) -> DataLoader:
        return self._whole("test")
