"""The orthonormal real Fourier basis on the periodic unit interval, through the rFFT.

Real modes are indexed from 1: mode 1 is the constant, modes ``2f`` and ``2f + 1`` are
``√2 cos(2πfx)`` and ``√2 sin(2πfx)``. Coefficients are the continuum ones,
``c_j = ∫ u φ_j``, so a band-limited function has the same coefficients on every grid fine
enough to hold it; this is what makes :class:`~zoo.kernel_operator.KernelOperator`
resolution-independent. On a grid of ``M`` points (``M`` even) there are ``M`` real modes, the
last one being the cosine at the Nyquist frequency ``M/2`` (its sine vanishes on the grid).
"""

from __future__ import annotations

import math

import torch

__all__ = ["basis", "frequencies", "from_coefficients", "levels", "to_coefficients"]

_SQRT2 = math.sqrt(2.0)


def frequencies(n_modes: int) -> torch.Tensor:
    """Frequency of each real mode: ``[0, 1, 1, 2, 2, ...]``, shape ``(n_modes,)``."""
    return torch.arange(1, n_modes + 1) // 2


def levels(n_modes: int) -> torch.Tensor:
    """Dyadic level of each real mode, ``floor(log2 j)``: the constant alone at level 0, then
    bands of 2, 4, 8, ... modes. Shape ``(n_modes,)``, dtype long."""
    j = torch.arange(1, n_modes + 1)
    return torch.floor(torch.log2(j.double())).long()


def to_coefficients(u: torch.Tensor, n_modes: int | None = None) -> torch.Tensor:
    """Grid values to real Fourier coefficients.

    Args:
        u: Values on a uniform periodic grid, ``(..., M)`` with ``M`` even.
        n_modes: Number of leading modes to keep (at most ``M``); all ``M`` by default.

    Returns:
        Coefficients ``(..., n_modes)``.
    """
    m = u.shape[-1]
    n_modes = m if n_modes is None else n_modes
    spectrum = torch.fft.rfft(u, norm="forward")  # (..., M/2 + 1), F_f = mean(u e^{-2πifx})
    coefficients = torch.empty((*u.shape[:-1], m), dtype=u.dtype, device=u.device)
    coefficients[..., 0] = spectrum[..., 0].real
    coefficients[..., 1::2] = _SQRT2 * spectrum[..., 1:].real
    coefficients[..., 2::2] = -_SQRT2 * spectrum[..., 1 : m // 2].imag
    coefficients[..., m - 1] = spectrum[..., m // 2].real / _SQRT2
    return coefficients[..., :n_modes]


def from_coefficients(c: torch.Tensor, m: int) -> torch.Tensor:
    """Real Fourier coefficients to values on a grid of ``m`` points (zero-padded).

    Args:
        c: Coefficients ``(..., n_modes)`` with ``n_modes <= m``.
        m: Even grid size.

    Returns:
        Grid values ``(..., m)``.
    """
    n_modes = c.shape[-1]
    full = torch.zeros((*c.shape[:-1], m), dtype=c.dtype, device=c.device)
    full[..., :n_modes] = c
    spectrum = torch.zeros((*c.shape[:-1], m // 2 + 1), dtype=_complex(c.dtype), device=c.device)
    spectrum[..., 0] = full[..., 0]
    spectrum[..., 1 : m // 2] = torch.complex(full[..., 1 : m - 1 : 2], -full[..., 2:m:2]) / _SQRT2
    spectrum[..., m // 2] = full[..., m - 1] * _SQRT2
    return torch.fft.irfft(spectrum, n=m, norm="forward")


def basis(m: int, n_modes: int | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The basis functions sampled on the grid ``x_i = i/m``: ``(n_modes, m)``."""
    n_modes = m if n_modes is None else n_modes
    return from_coefficients(torch.eye(n_modes, dtype=dtype), m)


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64
