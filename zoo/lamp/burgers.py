"""The E2 benchmark of LAMP: forced viscous Burgers on a periodic line, our own solver.

``u_t + (u²/2)_x = ν u_xx + δ(t, x)`` on ``[0, L)``, periodic, ``t ∈ [0, t_end]``, with the
forcing ``δ(t, x) = Σ_j A_j sin(ω_j t + 2π ℓ_j x / L + φ_j)`` (five terms), ``u(0, x) = δ(0, x)``
and per trajectory ``A ~ U[-0.5, 0.5]``, ``ω ~ U[-0.4, 0.4]``, ``φ ~ U[0, 2π)``, ``ℓ ∈ {1, 2}``,
``ν ~ U[0, 0.2]`` (the generator of the MP-PDE code, which calls ``ν`` "beta").

The solver is a cell-centred finite-volume scheme, batched over trajectories in float64:

- advection: WENO5-JS reconstruction and the exact Godunov flux of ``f(u) = u²/2``, with the
  forcing as exact cell averages, advanced by SSP-RK3; the step is ``cfl · dx / max |u|`` over
  the batch, shortened so that substeps land exactly on the output times;
- diffusion: exact in Fourier space with the symbol of the 3-point Laplacian,
  ``-4ν/dx² sin²(πk/n_cells)``, Strang-split around each advection step (so no ``ν/dx²``
  step limit).

Fields are cell averages; :func:`coarsen` averages adjacent cells, so that a coarse field is
the exact cell average of the fine one. Observed order on smooth data is about 2 (3-point
diffusion, Strang splitting); WENO5's order is not visible on E2, which forms shocks.

Since the step is shared by a batch, a trajectory's numbers depend (at the level of the
solver's error) on the batch it was solved in; :func:`generate` always cuts the same chunks.

References:
    Wu, Maruyama, Zhao, Wetzstein, Leskovec. "Learning Controllable Adaptive Simulation for
    Multi-resolution Physics", ICLR 2023, https://arxiv.org/abs/2305.01122.

    Brandstetter, Worrall, Welling. "Message Passing Neural PDE Solvers", ICLR 2022,
    https://arxiv.org/abs/2202.03376.

    Jiang, Shu. "Efficient Implementation of Weighted ENO Schemes", J. Comput. Phys. 126, 1996.
"""

from __future__ import annotations

import math

import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "SOLVER_VERSION",
    "coarsen",
    "forcing_cell_averages",
    "generate",
    "sample_parameters",
    "solve",
]

SOLVER_VERSION = 1  # bump on any change of the numbers solve() or generate() produce
N_MODES = 5
_CHUNK = 64  # trajectories solved together by generate()
_WENO_EPS = 1e-6
_FORCING = ("A", "omega", "phi", "ell")


def sample_parameters(n: int, seed: int) -> dict[str, np.ndarray]:
    """Draws the forcing and viscosity of ``n`` E2 trajectories.

    Args:
        n: Number of trajectories.
        seed: Seed of ``np.random.default_rng``.

    Returns:
        ``A``, ``omega``, ``phi`` (float64) and ``ell`` (int64, in {1, 2}), each ``(n, 5)``,
        and ``nu`` ``(n,)`` float64.

    Example:
        >>> p = sample_parameters(3, seed=0)
        >>> p["A"].shape, p["nu"].shape, sorted(set(p["ell"].ravel().tolist()))
        ((3, 5), (3,), [1, 2])
    """
    if n < 1:
        raise ValueError(f"sample_parameters: n must be positive, got {n}")
    rng = np.random.default_rng(seed)
    shape = (n, N_MODES)
    return {
        "A": rng.uniform(-0.5, 0.5, shape),
        "omega": rng.uniform(-0.4, 0.4, shape),
        "phi": rng.uniform(0.0, 2.0 * np.pi, shape),
        "ell": rng.integers(1, 3, shape),
        "nu": rng.uniform(0.0, 0.2, n),
    }


def forcing_cell_averages(
    params: dict[str, np.ndarray], t: float, x_edges: np.ndarray, length: float = 16.0
) -> np.ndarray:
    """The exact averages of the forcing ``δ(t, ·)`` over the cells between ``x_edges``.

    Over a cell ``[a, b]``, ``sin(θ + kx)`` averages to ``(cos(θ + ka) - cos(θ + kb)) / (k (b -
    a))``. The initial condition is ``forcing_cell_averages(params, 0.0, x_edges)``.

    Args:
        params: As returned by :func:`sample_parameters` (``nu`` is not used).
        t: Time.
        x_edges: ``(n_cells + 1,)`` increasing cell edges.
        length: Period ``L`` of the domain.

    Returns:
        ``(n, n_cells)`` float64.
    """
    return _Forcing(params, np.asarray(x_edges, dtype=np.float64), length)(t)


def solve(
    params: dict[str, np.ndarray],
    n_cells: int = 200,
    n_frames: int = 250,
    t_end: float = 4.0,
    length: float = 16.0,
    cfl: float = 0.4,
    progress: bool = False,
    *,
    u0: np.ndarray | None = None,
) -> np.ndarray:
    """Solves the forced viscous Burgers equation for a batch of trajectories.

    Args:
        params: As returned by :func:`sample_parameters`, ``n`` trajectories.
        n_cells: Cells of the uniform grid on ``[0, length)``.
        n_frames: Output frames at ``t_k = k · t_end / (n_frames - 1)``, the first at ``t = 0``.
        t_end: Final time.
        length: Period of the domain.
        cfl: Courant number of the advection step, ``dt = cfl · dx / max |u|``.
        progress: Show a progress bar over the output frames.
        u0: ``(n, n_cells)`` initial cell averages instead of ``δ(0, ·)`` (for tests).

    Returns:
        ``(n, n_frames, n_cells)`` float64 cell averages; frame 0 is the initial condition.
    """
    nu = np.asarray(params["nu"], dtype=np.float64)
    n = len(nu)
    if nu.ndim != 1 or np.shape(params["A"])[0] != n or (nu < 0).any():
        raise ValueError(
            "solve: params must hold one viscosity nu >= 0 per row of A, got nu of shape "
            f"{nu.shape} (min {nu.min()}) and A of shape {np.shape(params['A'])}"
        )
    _check_grid(n_cells, n_frames, t_end, length, cfl)
    dx = length / n_cells
    forcing = _Forcing(params, dx * np.arange(n_cells + 1), length)
    if u0 is None:
        u = forcing(0.0)
    else:
        u = np.array(u0, dtype=np.float64)
        if u.shape != (n, n_cells):
            raise ValueError(f"solve: u0 must have shape {(n, n_cells)}, got {u.shape}")
    wavenumber = np.arange(n_cells // 2 + 1)
    symbol = -4.0 * nu[:, None] / dx**2 * np.sin(np.pi * wavenumber / n_cells) ** 2

    def diffuse(u: np.ndarray, tau: float) -> np.ndarray:
        spectrum = np.fft.rfft(u, axis=-1) * np.exp(tau * symbol)
        return np.fft.irfft(spectrum, n=n_cells, axis=-1)

    def rate(u: np.ndarray, t: float) -> np.ndarray:
        flux = _godunov_flux(*_weno5_faces(u))  # flux[:, i] at the right face of cell i
        return forcing(t) - (flux - np.roll(flux, 1, axis=-1)) / dx

    times = np.linspace(0.0, t_end, n_frames)
    out = np.empty((n, n_frames, n_cells))
    out[:, 0] = u
    for k in tqdm(range(1, n_frames), desc="E2 frames", disable=not progress, leave=False):
        t, t_next = times[k - 1], times[k]
        while t < t_next:
            speed = max(float(np.abs(u).max()), 1e-12)
            remaining = t_next - t
            dt = remaining / math.ceil(remaining * speed / (cfl * dx) * (1 - 1e-12))
            if dt >= remaining * (1 - 1e-12):
                dt, t_stage = remaining, t_next
            else:
                t_stage = t + dt

            # Strang splitting: half diffusion, SSP-RK3 advection + forcing, half diffusion
            u = diffuse(u, dt / 2)
            u1 = u + dt * rate(u, t)
            u2 = 0.75 * u + 0.25 * (u1 + dt * rate(u1, t_stage))
            u = u / 3 + 2 / 3 * (u2 + dt * rate(u2, t + dt / 2))
            u = diffuse(u, dt / 2)
            t = t_stage
        out[:, k] = u
    return out


def coarsen(u: np.ndarray, factor: int = 2) -> np.ndarray:
    """Averages groups of ``factor`` adjacent cells along the last axis.

    Args:
        u: ``(..., n_cells)`` cell averages, ``n_cells`` a multiple of ``factor``.
        factor: Cells per coarse cell.

    Returns:
        ``(..., n_cells // factor)``, the cell averages on the coarse grid.

    Example:
        >>> coarsen(np.array([[1.0, 3.0, 5.0, 7.0]]))
        array([[2., 6.]])
    """
    n_cells = u.shape[-1]
    if factor < 1 or n_cells % factor:
        raise ValueError(
            f"coarsen: {n_cells} cells cannot be cut into groups of {factor}; "
            "choose a factor that divides the number of cells"
        )
    return u.reshape(*u.shape[:-1], n_cells // factor, factor).mean(axis=-1)


def generate(
    n: int,
    seed: int,
    n_cells: int = 200,
    n_out: int = 100,
    n_frames: int = 250,
    t_end: float = 4.0,
    length: float = 16.0,
    cfl: float = 0.4,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Draws and solves ``n`` E2 trajectories, in chunks of 64, coarsened to ``n_out`` cells.

    Args:
        n: Number of trajectories.
        seed: Seed of :func:`sample_parameters`.
        n_cells: Cells of the solver's grid; a multiple of ``n_out``.
        n_out: Cells (the model's grid vertices) of the returned fields.
        n_frames: Output frames, ``t_end / (n_frames - 1)`` apart.
        t_end: Final time.
        length: Period of the domain.
        cfl: Courant number of the solver.
        progress: Show a progress bar over the chunks.

    Returns:
        ``u``, ``(n, n_frames, n_out)`` float32, and the viscosities ``nu``, ``(n,)`` float64.
    """
    if n_out < 1 or n_cells % n_out:
        raise ValueError(
            f"generate: n_cells={n_cells} is not a multiple of n_out={n_out}; "
            "the fields are coarsened by averaging whole groups of cells"
        )
    params = sample_parameters(n, seed)
    u = np.empty((n, n_frames, n_out), dtype=np.float32)
    starts = range(0, n, _CHUNK)
    for start in tqdm(starts, desc="E2 trajectories", disable=not progress, unit="chunk"):
        chunk = {name: value[start : start + _CHUNK] for name, value in params.items()}
        fine = solve(chunk, n_cells, n_frames, t_end, length, cfl)
        u[start : start + _CHUNK] = coarsen(fine, n_cells // n_out)
    return u, params["nu"]


class _Forcing:
    """``δ(t, ·)`` as cell averages: ``(n, 2 n_ell)`` time coefficients times fixed rows.

    ``sin(θ + kx) = sin θ cos kx + cos θ sin kx``, so every cell average is a combination of the
    averages of ``cos(k_ℓ x)`` and ``sin(k_ℓ x)``, ``ℓ = 1 .. max ℓ``, with coefficients
    ``Σ_{j: ℓ_j = ℓ} A_j sin(ω_j t + φ_j)`` and ``Σ_{j: ℓ_j = ℓ} A_j cos(ω_j t + φ_j)``.
    """

    def __init__(self, params: dict[str, np.ndarray], x_edges: np.ndarray, length: float) -> None:
        missing = [name for name in _FORCING if name not in params]
        if missing:
            raise ValueError(f"forcing: params lack {missing}; use sample_parameters()")
        self.amplitude = np.asarray(params["A"], dtype=np.float64)
        self.omega = np.asarray(params["omega"], dtype=np.float64)
        self.phi = np.asarray(params["phi"], dtype=np.float64)
        ell = np.asarray(params["ell"])
        if ell.min() < 1:
            raise ValueError(f"forcing: wave numbers ell must be >= 1, got {ell.min()}")
        ells = np.arange(1, int(ell.max()) + 1)
        self.select = (ell[:, :, None] == ells).astype(np.float64)  # (n, n_modes, n_ell)

        k = 2.0 * np.pi * ells[:, None] / length  # (n_ell, 1)
        width = np.diff(x_edges)
        left, right = x_edges[:-1], x_edges[1:]
        mean_cos = (np.sin(k * right) - np.sin(k * left)) / (k * width)
        mean_sin = (np.cos(k * left) - np.cos(k * right)) / (k * width)
        self.rows = np.concatenate([mean_cos, mean_sin])  # (2 n_ell, n_cells)

    def __call__(self, t: float) -> np.ndarray:
        theta = self.omega * t + self.phi
        c_cos = np.einsum("nj,nje->ne", self.amplitude * np.sin(theta), self.select)
        c_sin = np.einsum("nj,nje->ne", self.amplitude * np.cos(theta), self.select)
        return np.concatenate([c_cos, c_sin], axis=1) @ self.rows


def _weno5_faces(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WENO5-JS values at the right face of every cell, from the left and from the right.

    Shapes:
        - u: ``(n, n_cells)``, periodic
        - returns: two ``(n, n_cells)``: ``u⁻`` and ``u⁺`` at face ``i + 1/2``
    """
    um2, um1 = np.roll(u, 2, axis=-1), np.roll(u, 1, axis=-1)
    up1, up2, up3 = (np.roll(u, -s, axis=-1) for s in (1, 2, 3))
    minus = _weno5(um2, um1, u, up1, up2)
    plus = _weno5(up3, up2, up1, u, um1)
    return minus, plus


def _weno5(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, e: np.ndarray
) -> np.ndarray:
    """The WENO5-JS value at the face between ``c`` and ``d`` from the stencil ``a b c d e``."""
    q0 = (2 * a - 7 * b + 11 * c) / 6
    q1 = (-b + 5 * c + 2 * d) / 6
    q2 = (2 * c + 5 * d - e) / 6
    beta0 = 13 / 12 * (a - 2 * b + c) ** 2 + 0.25 * (a - 4 * b + 3 * c) ** 2
    beta1 = 13 / 12 * (b - 2 * c + d) ** 2 + 0.25 * (b - d) ** 2
    beta2 = 13 / 12 * (c - 2 * d + e) ** 2 + 0.25 * (3 * c - 4 * d + e) ** 2
    alpha0 = 0.1 / (_WENO_EPS + beta0) ** 2
    alpha1 = 0.6 / (_WENO_EPS + beta1) ** 2
    alpha2 = 0.3 / (_WENO_EPS + beta2) ** 2
    return (alpha0 * q0 + alpha1 * q1 + alpha2 * q2) / (alpha0 + alpha1 + alpha2)


def _godunov_flux(minus: np.ndarray, plus: np.ndarray) -> np.ndarray:
    """The exact Godunov flux of ``u²/2`` (convex, sonic point 0) between face states."""
    return 0.5 * np.maximum(np.maximum(minus, 0.0) ** 2, np.minimum(plus, 0.0) ** 2)


def _check_grid(n_cells: int, n_frames: int, t_end: float, length: float, cfl: float) -> None:
    if n_cells < 5:
        raise ValueError(f"solve: n_cells must be at least 5 (the WENO5 stencil), got {n_cells}")
    if n_frames < 2:
        raise ValueError(f"solve: n_frames must be at least 2, got {n_frames}")
    if not (t_end > 0 and length > 0 and 0 < cfl <= 1):
        raise ValueError(
            "solve: need t_end > 0, length > 0 and 0 < cfl <= 1, "
            f"got t_end={t_end}, length={length}, cfl={cfl}"
        )
