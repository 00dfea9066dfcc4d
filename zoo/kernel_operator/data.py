"""Linear operators between periodic functions, with Gaussian-process inputs, generated here.

Every task is a linear map ``u = A f`` held as a matrix ``A`` in the real Fourier basis of
:mod:`zoo.kernel_operator.fourier` (so the exact risk of an estimate needs no test sampling):

- ``poisson``: ``(I - Δ/4π²) u = f``, spectral, diagonal;
- ``heat``: ``u = exp(tΔ) f`` with ``t = 0.002``, diagonal;
- ``varcoef``: ``-(κ u')' + u = f`` with ``κ(x) = (1 + 0.6 sin 2πx + 0.3 cos 6πx) / 4π²``, by
  second-order periodic finite differences; not translation invariant;
- ``powerlaw``: the synthetic operator of the rate study, whitened entries
  ``θ_jk = ±j^(-(2r+1+η)/2) k^(-(aβ+1+η)/2)`` on the mode index, input variances ``k^(-a)``,
  noise added to the output coefficients.

Inputs are periodic Gaussian processes: mode ``k`` of frequency ``f_k`` has variance
``(1 + (f_k/k0)²)^(-α)`` (``powerlaw``: ``k^(-a)``). Training outputs carry iid noise, validation
and test outputs do not.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from zoo.kernel_operator.fourier import frequencies, from_coefficients, to_coefficients

__all__ = ["TASKS", "LinearOperatorDataModule", "OperatorTask", "make_task"]

TASKS = ("varcoef", "poisson", "heat", "powerlaw")
_SPLITS = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class OperatorTask:
    """A linear operator task in coefficient space.

    Attributes:
        name: One of :data:`TASKS`.
        operator: ``A``, ``(M, M)`` float64: output coefficients = ``A @`` input coefficients.
        input_variance: ``λ``, ``(M,)``: the variance of each input coefficient.
        noise: Standard deviation of the training noise, per output coefficient.
    """

    name: str
    operator: torch.Tensor
    input_variance: torch.Tensor
    noise: float

    @property
    def grid_size(self) -> int:
        return self.operator.shape[0]

    def sample(
        self, n: int, generator: torch.Generator, *, noisy: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` input and output grids, ``(n, M)`` float64 each."""
        m = self.grid_size
        x = (
            torch.randn(n, m, generator=generator, dtype=torch.float64)
            * self.input_variance.sqrt()
        )
        y = x @ self.operator.T
        if noisy:
            y = y + self.noise * torch.randn(n, m, generator=generator, dtype=torch.float64)
        return from_coefficients(x, m), from_coefficients(y, m)

    def risk(self, w: torch.Tensor) -> float:
        """Exact prediction risk ``E‖(Ŵ - A) f‖²`` of an estimate ``Ŵ`` (``(n_out, n_in)``,
        zero-padded to ``(M, M)``), for a fresh input ``f``."""
        padded = torch.zeros_like(self.operator)
        padded[: w.shape[0], : w.shape[1]] = w.to(padded)
        return float(((padded - self.operator) ** 2 @ self.input_variance).sum())

    def energy(self) -> float:
        """``E‖A f‖²``: the risk of predicting zero, for relative risks."""
        return self.risk(torch.zeros(1, 1))


def make_task(
    name: str,
    grid_size: int = 128,
    *,
    alpha: float = 1.0,
    k0: float = 1.0,
    noise_std: float = 0.05,
    a: float = 2.0,
    a_beta: float = 1.0,
    two_r: float = 2.0,
    eta: float = 0.05,
    seed: int = 0,
) -> OperatorTask:
    """Builds a task's operator, input variances and noise level.

    Args:
        name: ``varcoef``, ``poisson``, ``heat`` or ``powerlaw``.
        grid_size: Grid points ``M`` (even); also the number of real modes.
        alpha: Input smoothness: mode variance ``(1 + (f/k0)²)^(-alpha)`` (PDE tasks).
        k0: Input length scale, in frequency units (PDE tasks).
        noise_std: Training noise per grid point (PDE tasks) or per coefficient (``powerlaw``).
        a: ``powerlaw`` input decay, ``λ_k = k^(-a)``.
        a_beta: ``powerlaw`` input-side smoothness ``aβ``.
        two_r: ``powerlaw`` output-side smoothness ``2r``.
        eta: ``powerlaw`` exponent slack.
        seed: Seed of the ``powerlaw`` signs.
    """
    if name not in TASKS:
        raise ValueError(f"LinearOperatorDataModule: unknown task {name!r}; choose one of {TASKS}")
    if grid_size < 4 or grid_size % 2:
        raise ValueError(
            f"LinearOperatorDataModule: grid_size must be even and >= 4, got {grid_size}"
        )
    m = grid_size
    freq = frequencies(m).double()
    if name == "powerlaw":
        k = torch.arange(1, m + 1, dtype=torch.float64)
        variance = k ** (-a)
        signs = torch.randint(0, 2, (m, m), generator=torch.Generator().manual_seed(seed))
        theta = (2.0 * signs - 1).double()
        theta = theta * k[:, None] ** (-(two_r + 1 + eta) / 2) * k ** (-(a_beta + 1 + eta) / 2)
        return OperatorTask(name, theta / variance.sqrt(), variance, noise_std)

    variance = (1 + (freq / k0) ** 2) ** (-alpha)
    if name == "poisson":
        operator = torch.diag(1 / (1 + freq**2))
    elif name == "heat":
        operator = torch.diag(torch.exp(-4 * math.pi**2 * freq**2 * 0.002))
    else:
        operator = _coefficient_matrix(torch.linalg.inv(_varcoef_matrix(m)))
    # Grid noise of std s has variance s²/M per coefficient (s²/2M at the Nyquist mode, which
    # only the highest mode sees; we use s²/M throughout).
    return OperatorTask(name, operator, variance, noise_std / math.sqrt(m))


def _varcoef_matrix(m: int) -> torch.Tensor:
    """``I - d/dx κ d/dx`` by second-order periodic finite differences, ``(m, m)``."""
    h = 1.0 / m
    midpoints = (torch.arange(m, dtype=torch.float64) + 0.5) * h
    x = 2 * math.pi * midpoints
    kappa = (1 + 0.6 * torch.sin(x) + 0.3 * torch.cos(3 * x)) / (4 * math.pi**2)  # at i + 1/2
    kappa_left = torch.roll(kappa, 1)  # at i - 1/2
    matrix = torch.diag(1 + (kappa + kappa_left) / h**2)
    idx = torch.arange(m)
    matrix[idx, (idx + 1) % m] -= kappa / h**2
    matrix[idx, (idx - 1) % m] -= kappa_left / h**2
    return matrix


def _coefficient_matrix(grid_operator: torch.Tensor) -> torch.Tensor:
    """A grid operator ``G`` in the real Fourier basis: ``A[:, k]`` = coefficients of
    ``G φ_k``."""
    m = grid_operator.shape[0]
    basis = from_coefficients(torch.eye(m, dtype=torch.float64), m)  # (modes, grid)
    return to_coefficients(basis @ grid_operator.T).T


class LinearOperatorDataModule(pl.LightningDataModule):
    """Pairs ``(f, u)`` of a linear operator task on a periodic grid, generated from a seed.

    Each batch is ``(f, u)``, both ``(batch, grid_size)`` float64 grid values. The true
    operator and the input variances are exposed as :attr:`task`, so the exact risk of an
    estimate needs no test sampling.

    Args:
        task: ``varcoef``, ``poisson``, ``heat`` or ``powerlaw``.
        grid_size: Grid points (even).
        n_train: Training pairs (noisy outputs).
        n_val: Validation pairs (noise-free).
        n_test: Test pairs (noise-free).
        alpha: Input smoothness (PDE tasks).
        k0: Input length scale (PDE tasks).
        noise_std: Training noise per grid point (PDE tasks) or per coefficient (powerlaw).
        a: ``powerlaw`` input decay.
        a_beta: ``powerlaw`` input-side smoothness.
        two_r: ``powerlaw`` output-side smoothness.
        eta: ``powerlaw`` exponent slack.
        seed: Seed of the samples (and of the powerlaw signs).
        batch_size: Batch size of all loaders.
    """

    def __init__(
        self,
        task: str = "varcoef",
        grid_size: int = 128,
        n_train: int = 4096,
        n_val: int = 256,
        n_test: int = 1000,
        alpha: float = 1.0,
        k0: float = 1.0,
        noise_std: float = 0.05,
        a: float = 2.0,
        a_beta: float = 1.0,
        two_r: float = 2.0,
        eta: float = 0.05,
        seed: int = 0,
        batch_size: int = 512,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.task = make_task(
            task,
            grid_size,
            alpha=alpha,
            k0=k0,
            noise_std=noise_std,
            a=a,
            a_beta=a_beta,
            two_r=two_r,
            eta=eta,
            seed=seed,
        )
        self._splits: dict[str, TensorDataset] = {}

    def split(self, name: str) -> TensorDataset:
        """The ``train``, ``val`` or ``test`` pairs, generated on first use."""
        if name not in self._splits:
            generator = torch.Generator().manual_seed(self.hparams.seed * 1000 + _SPLITS[name])
            n = getattr(self.hparams, f"n_{name}")
            f, u = self.task.sample(n, generator, noisy=name == "train")
            self._splits[name] = TensorDataset(f, u)
        return self._splits[name]

    def setup(self, stage: str | None = None) -> None:
        for name in ("train", "val") if stage in (None, "fit") else ("test",):
            self.split(name)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in ("train", "val", "test"):
            for tensor in self.split(name).tensors:
                digest.update(tensor.numpy().tobytes())
        return "sha256:" + digest.hexdigest()[:16]

    def train_dataloader(self) -> DataLoader:
        # No shuffling: the closed form is order-independent, and a fixed order makes the
        # hold-out folds (sample index mod 5) reproducible.
        return DataLoader(self.split("train"), batch_size=self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.split("val"), batch_size=self.hparams.batch_size)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.split("test"), batch_size=self.hparams.batch_size)
