"""FAB's alanine dipeptide target: a Boltzmann density on 60 standardised internal coordinates.

Alanine dipeptide (ACE-ALA-NME, 22 atoms) in Amber ff96 with OBC1 implicit solvent, 300 K, no
cutoff and no constraints, as in the paper (openmmtools' ``AlanineDipeptideImplicit``). The
energy is a batched float64 torch port of the OpenMM System (bonds, angles, periodic torsions,
Lennard-Jones and Coulomb with the 1-4 exceptions, the OBC1 generalised Born energy and its
surface term); its parameters ship in ``zoo/fab/assets/aldp.json``, so training needs no OpenMM.
OpenMM builds them (:mod:`zoo.fab.alanine_openmm`, ``python -m zoo.fab.alanine_openmm
--write``) and is the tests' oracle.

The flow lives on internal coordinates (after Noé et al.). N, CA and C of the alanine form the
frame: CA at the origin, N on the x axis, C in the xy plane, which removes the 6 rigid degrees
of freedom and keeps |CA-N|, |CA-C| and the N-CA-C angle. The 19 other atoms are placed one by
one from (bond, angle, dihedral) w.r.t. three earlier atoms (:data:`Z_MATRIX`). The 60
coordinates, in this order::

    z[0:19]   bonds      (r - r_min) / 0.005 nm          one per Z-matrix row
    z[19:38]  angles     (θ - θ_min) / 0.15 rad
    z[38:57]  dihedrals  wrap(φ - φ_min) / 0.2 rad        wrap to [-π, π)
    z[57:60]  frame      |CA-N|, |CA-C| (/ 0.005 nm), N-CA-C angle (/ 0.15 rad)

standardised around the minimum-energy structure shipped with the package. Twelve dihedrals
are circular (:data:`CIRCULAR`: the paper's dihedrals 0-5, 8-10, 13, 15, 16, in the same Z-matrix
order), with period 2π / 0.2 in z; the target is periodic in them and -inf outside
[-π/0.2, π/0.2) in the seven others, outside bond > 0 and outside 0 < angle < π.

References:
    Midgley, Stimper, Simm, Schölkopf, Hernández-Lobato, "Flow Annealed Importance Sampling
    Bootstrap", ICLR 2023, arXiv:2208.01893.
    Noé, Olsson, Köhler, Wu, "Boltzmann generators: Sampling equilibrium states of many-body
    systems with deep learning", Science 2019, arXiv:1812.01729 (the internal coordinates).
    Onufriev, Bashford, Case, "Exploring protein native states and large-scale conformational
    changes with a modified generalized Born model", Proteins 2004 (OBC).
    Parsons, Holmes, Rojas, Tsai, Strauss, "Practical conversion from torsion space to
    Cartesian space for in silico protein synthesis", J. Comput. Chem. 2005 (NeRF).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.fab.targets import Target

__all__ = [
    "ATOMS",
    "CIRCULAR",
    "FRAME",
    "STDS",
    "Z_MATRIX",
    "AlanineDipeptide",
    "AldpEnergy",
    "InternalCoordinates",
    "dihedrals",
    "plot_ramachandran",
    "ramachandran_kld",
]

#: The 22 atoms as (residue, name, element), in the order of the paper's code.
ATOMS: tuple[tuple[str, str, str], ...] = (
    *(("ACE", n, n[0]) for n in ("H1", "CH3", "H2", "H3", "C", "O")),
    *(("ALA", n, n[0]) for n in ("N", "H", "CA", "HA", "CB", "HB1", "HB2", "HB3", "C", "O")),
    *(("NME", n, n[0]) for n in ("N", "H", "C", "H1", "H2", "H3")),
)
#: N, CA, C of the alanine: the frame of the internal coordinates.
FRAME = (6, 8, 14)
#: (atom, (j, k, l)): bond |atom-j|, angle ∠(atom, j, k), dihedral (atom, j, k, l).
Z_MATRIX: tuple[tuple[int, tuple[int, int, int]], ...] = (
    (0, (1, 4, 6)),
    (1, (4, 6, 8)),
    (2, (1, 4, 0)),
    (3, (1, 4, 0)),
    (4, (6, 8, 14)),  # φ = dihedral(C', N, CA, C)
    (5, (4, 6, 8)),
    (7, (6, 8, 4)),
    (9, (8, 6, 4)),
    (10, (8, 6, 4)),
    (11, (10, 8, 6)),
    (12, (10, 8, 11)),
    (13, (10, 8, 11)),
    (15, (14, 8, 16)),
    (16, (14, 8, 6)),  # ψ = dihedral(N, CA, C, N')
    (17, (16, 14, 15)),
    (18, (16, 14, 8)),
    (19, (18, 16, 14)),
    (20, (18, 16, 19)),
    (21, (18, 16, 19)),
)
#: Standard deviations of the standardisation: bonds (nm), angles and dihedrals (rad).
STDS = {"bond": 0.005, "angle": 0.15, "dihedral": 0.2}
_N_IC = len(Z_MATRIX)  # 19
_DIH = 2 * _N_IC  # first dihedral coordinate, 38
#: Circular coordinates of z: the paper's circular dihedrals (Z-matrix rows).
CIRCULAR: tuple[int, ...] = tuple(_DIH + i for i in (0, 1, 2, 3, 4, 5, 8, 9, 10, 13, 15, 16))

_ASSET = Path(__file__).with_name("assets") / "aldp.json"
_TEMPERATURE = 300.0
_KT = 8.314462618e-3 * _TEMPERATURE  # kJ/mol
_ENERGY_CUT, _ENERGY_MAX = 1e8, 1e20  # kT: log-compressed above the cut, capped at the max


# -- geometry -------------------------------------------------------------------------------


def _norm(v: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(v, dim=-1)


def _angle(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """∠(a, b, c) in [0, π], by atan2 (finite gradients at 0 and π)."""
    u, v = a - b, c - b
    return torch.atan2(_norm(torch.cross(u, v, dim=-1)), (u * v).sum(-1))


def _dihedral(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The IUPAC dihedral of a-b-c-d in [-π, π], by atan2."""
    b0, b1, b2 = a - b, c - b, d - c
    b1 = b1 / _norm(b1).unsqueeze(-1)
    v = b0 - (b0 * b1).sum(-1, keepdim=True) * b1
    w = b2 - (b2 * b1).sum(-1, keepdim=True) * b1
    return torch.atan2((torch.cross(b1, v, dim=-1) * w).sum(-1), (v * w).sum(-1))


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def _levels() -> list[list[int]]:
    """Z-matrix rows grouped so that each group's reference atoms are placed before it."""
    placed, todo, levels = set(FRAME), list(range(_N_IC)), []
    while todo:
        level = [i for i in todo if set(Z_MATRIX[i][1]) <= placed]
        assert level, "the Z-matrix references an atom that is never placed"
        levels.append(level)
        placed |= {Z_MATRIX[i][0] for i in level}
        todo = [i for i in todo if i not in level]
    return levels


def _as_atoms(x: torch.Tensor) -> torch.Tensor:
    if not ((x.dim() == 2 and x.shape[1] == 66) or (x.dim() == 3 and x.shape[1:] == (22, 3))):
        raise ValueError(
            f"alanine dipeptide coordinates must have shape (n, 66) or (n, 22, 3) in nm, got "
            f"{tuple(x.shape)}"
        )
    return x.reshape(len(x), 22, 3)


class InternalCoordinates(nn.Module):
    """The Z-matrix map between 60 standardised internal coordinates and Cartesians (nm).

    Args:
        x_min: The minimum-energy structure ``(22, 3)`` (nm) that sets the means.

    Shapes:
        - z: ``(n, 60)``; x: ``(n, 22, 3)`` (``from_cartesian`` also takes ``(n, 66)``);
          log-dets: ``(n,)``
    """

    def __init__(self, x_min: torch.Tensor) -> None:
        super().__init__()
        rows = torch.tensor([[a, *refs] for a, refs in Z_MATRIX])
        self.register_buffer("rows", rows, persistent=False)  # (19, 4)
        self.levels = _levels()
        std = torch.tensor(
            [STDS["bond"]] * _N_IC
            + [STDS["angle"]] * _N_IC
            + [STDS["dihedral"]] * _N_IC
            + [STDS["bond"]] * 2
            + [STDS["angle"]],
            dtype=torch.float64,
        )
        self.register_buffer("std", std, persistent=False)
        self.register_buffer("mean", torch.zeros(60, dtype=torch.float64), persistent=False)
        self.mean = self._raw(x_min.to(torch.float64).reshape(1, 22, 3))[0]

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        """Unstandardised (bonds, angles, dihedrals, frame) of Cartesians, ``(n, 60)``."""
        a, r1, r2, r3 = (x[:, self.rows[:, c]] for c in range(4))
        n, ca, c = (x[:, i] for i in FRAME)
        frame = torch.stack([_norm(n - ca), _norm(c - ca), _angle(n, ca, c)], -1)
        return torch.cat([_norm(a - r1), _angle(a, r1, r2), _dihedral(a, r1, r2, r3), frame], -1)

    @staticmethod
    def _log_jacobian(raw: torch.Tensor) -> torch.Tensor:
        """Σ log(r² sin θ) of the spherical placements, frame included (|CA-N|² |CA-C|² sin)."""
        bonds, angles = raw[:, :_N_IC], raw[:, _N_IC:_DIH]
        d1, d2, theta = raw[:, -3], raw[:, -2], raw[:, -1]
        log_r2 = 2 * torch.cat([bonds, d1[:, None], d2[:, None]], -1).abs().log().sum(-1)
        sines = torch.cat([angles, theta[:, None]], -1).sin().abs().clamp_min(1e-300)
        return log_r2 + sines.log().sum(-1)

    def from_cartesian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised internal coordinates of Cartesians, with log|det ∂z/∂x| (on the
        quotient by rigid motions, the inverse of :meth:`to_cartesian`'s)."""
        raw = self._raw(_as_atoms(x).to(self.mean))
        delta = raw - self.mean
        delta[:, _DIH : _DIH + _N_IC] = _wrap(delta[:, _DIH : _DIH + _N_IC])
        log_det = -self._log_jacobian(raw) - self.std.log().sum()
        return delta / self.std, log_det

    def to_cartesian(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cartesians (nm, CA at the origin, N on +x, C in the xy plane) of standardised
        internal coordinates, with log|det ∂x/∂z| (Σ log r² sin θ plus the standardisation)."""
        raw = z * self.std + self.mean
        return _nerf(raw, self.levels), self._log_jacobian(raw) + self.std.log().sum()


def _nerf(raw: torch.Tensor, levels: list[list[int]]) -> torch.Tensor:
    """Cartesians ``(n, 22, 3)`` of unstandardised internal coordinates ``(n, 60)``."""
    bonds, angles, dihs = raw[:, :_N_IC], raw[:, _N_IC:_DIH], raw[:, _DIH : _DIH + _N_IC]
    d1, d2, theta = raw[:, -3], raw[:, -2], raw[:, -1]

    # the frame
    atoms: list[torch.Tensor] = [raw.new_zeros(len(raw), 3)] * 22
    zero = torch.zeros_like(d1)
    atoms[FRAME[0]] = torch.stack([d1, zero, zero], -1)
    atoms[FRAME[2]] = torch.stack([d2 * theta.cos(), d2 * theta.sin(), zero], -1)

    # NeRF, one level of independent rows at a time
    for level in levels:
        refs = (torch.stack([atoms[Z_MATRIX[i][1][c]] for i in level], 1) for c in range(3))
        idx = torch.tensor(level, device=raw.device)
        placed = _place(*refs, bonds[:, idx], angles[:, idx], dihs[:, idx])
        for column, i in enumerate(level):
            atoms[Z_MATRIX[i][0]] = placed[:, column]
    return torch.stack(atoms, 1)


def _place(
    r1: torch.Tensor,
    r2: torch.Tensor,
    r3: torch.Tensor,
    r: torch.Tensor,
    theta: torch.Tensor,
    phi: torch.Tensor,
) -> torch.Tensor:
    """NeRF: the atom a with |a - r1| = r, ∠(a, r1, r2) = θ, dihedral(a, r1, r2, r3) = φ."""
    bc = r1 - r2
    bc = bc / _norm(bc).unsqueeze(-1)
    normal = torch.cross(r2 - r3, bc, dim=-1)
    normal = normal / _norm(normal).unsqueeze(-1)
    m = torch.cross(normal, bc, dim=-1)
    along, across = -r * theta.cos(), r * theta.sin()
    return (
        r1
        + along.unsqueeze(-1) * bc
        + (across * phi.cos()).unsqueeze(-1) * m
        + (across * phi.sin()).unsqueeze(-1) * normal
    )


def dihedrals(x: torch.Tensor) -> torch.Tensor:
    """Backbone dihedrals (φ, ψ) in [-π, π] of Cartesians ``(n, 66)`` or ``(n, 22, 3)``,
    returned as ``(n, 2)``: φ = C'-N-CA-C, ψ = N-CA-C-N'."""
    x = _as_atoms(x)
    phi = _dihedral(x[:, 4], x[:, 6], x[:, 8], x[:, 14])
    psi = _dihedral(x[:, 6], x[:, 8], x[:, 14], x[:, 16])
    return torch.stack([phi, psi], -1)


# -- energy ---------------------------------------------------------------------------------


class AldpEnergy(nn.Module):
    """Batched float64 potential energy (kJ/mol) of alanine dipeptide, a port of the OpenMM
    System of :func:`zoo.fab.alanine_openmm.openmm_system` (parameters as plain tensors, read
    from it once).

    Args:
        params: The force-field arrays (the ``forcefield`` of the shipped asset, or
            :func:`~zoo.fab.alanine_openmm.forcefield_parameters` of an OpenMM System).

    Shapes:
        - x: ``(n, 22, 3)`` or ``(n, 66)`` in nm; output: ``(n,)``
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__()
        self.coulomb = float(params["coulomb"])  # kJ mol⁻¹ nm e⁻², NonbondedForce's constant
        self.gb = dict(params["gb_constants"])
        for key, value in params.items():
            if isinstance(value, list):
                dtype = torch.long if key.endswith("_idx") else torch.float64
                self.register_buffer(key, torch.tensor(value, dtype=dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_atoms(x)
        return self.bonded(x) + self.nonbonded(x) + self.born(x)

    def bonded(self, x: torch.Tensor) -> torch.Tensor:
        """Harmonic bonds and angles, periodic torsions."""
        i, j = self.bond_idx.T
        e = 0.5 * self.bond_k * (_norm(x[:, i] - x[:, j]) - self.bond_r0) ** 2
        i, j, k = self.angle_idx.T
        e_angle = 0.5 * self.angle_k * (_angle(x[:, i], x[:, j], x[:, k]) - self.angle_t0) ** 2
        i, j, k, m = self.torsion_idx.T
        phi = _dihedral(x[:, i], x[:, j], x[:, k], x[:, m])
        e_torsion = self.torsion_k * (1 + torch.cos(self.torsion_n * phi - self.torsion_phase))
        return e.sum(-1) + e_angle.sum(-1) + e_torsion.sum(-1)

    def nonbonded(self, x: torch.Tensor) -> torch.Tensor:
        """Coulomb and Lennard-Jones over all pairs, 1-4 exceptions scaled, exclusions left out."""
        i, j = self.pair_idx.T
        r = _norm(x[:, i] - x[:, j])
        s6 = (self.pair_sigma / r) ** 6
        lj = 4 * self.pair_eps * (s6**2 - s6)
        return (self.coulomb * self.pair_qq / r + lj).sum(-1)

    def born(self, x: torch.Tensor) -> torch.Tensor:
        """OBC1 generalised Born solvation energy and the ACE surface term (OpenMM's
        ``GBSAOBC1Force`` expressions)."""
        gb = self.gb
        q, offset_r, scaled_r = self.gb_charge, self.gb_or, self.gb_sr
        radius = offset_r + gb["offset"]
        n_atoms = len(q)
        i, j = torch.triu_indices(n_atoms, n_atoms, 1, device=x.device)
        i, j = torch.cat([i, j]), torch.cat([j, i])  # ordered pairs, i != j
        r = _norm(x[:, i] - x[:, j])

        # the descreening integral I_i = Σ_j I(r_ij; or_i, sr_j)
        or1, sr2 = offset_r[i], scaled_r[j]
        upper = r + sr2
        lower = torch.maximum(or1.expand_as(r), (r - sr2).abs())
        pair_i = 0.5 * (
            1 / lower
            - 1 / upper
            + 0.25 * (r - sr2**2 / r) * (1 / upper**2 - 1 / lower**2)
            + 0.5 * torch.log(lower / upper) / r
        )
        pair_i = torch.where(r + sr2 - or1 >= 0, pair_i, torch.zeros_like(pair_i))
        integral = torch.zeros(len(x), n_atoms, dtype=x.dtype, device=x.device)
        integral = integral.index_add(1, i, pair_i)

        # Born radii, self and pair energies, surface term
        psi = integral * offset_r
        tanh = torch.tanh(gb["alpha"] * psi - gb["beta"] * psi**2 + gb["gamma"] * psi**3)
        born = 1 / (1 / offset_r - tanh / radius)
        pre = gb["coulomb"] * (1 / gb["solute_dielectric"] - 1 / gb["solvent_dielectric"])
        e_self = (-0.5 * pre * q**2 / born).sum(-1)
        e_surface = (gb["surface"] * (radius + 0.14) ** 2 * (radius / born) ** 6).sum(-1)
        i, j = i[: len(i) // 2], j[: len(j) // 2]
        r = r[:, : r.shape[1] // 2]
        b1b2 = born[:, i] * born[:, j]
        f = torch.sqrt(r**2 + b1b2 * torch.exp(-(r**2) / (4 * b1b2)))
        e_pair = (-pre * q[i] * q[j] / f).sum(-1)
        return e_self + e_surface + e_pair


# -- the target -----------------------------------------------------------------------------


@cache
def _asset() -> dict[str, Any]:
    return json.loads(_ASSET.read_text())


class AlanineDipeptide(Target):
    """Alanine dipeptide's Boltzmann density at 300 K on the 60 standardised internal
    coordinates: log p(z) = -E(x(z))/kT + log|det ∂x/∂z|, E regularised as in the paper
    (log-compressed above 1e8 kT, capped at 1e20 kT). Unnormalised (``log_Z`` is NaN), with
    no exact samples and no list of modes.

    Args:
        params: Force-field arrays; the shipped ones (built by OpenMM 8.6) by default.
        x_min: The minimum-energy structure ``(22, 3)`` (nm) of the standardisation; the
            shipped one by default.

    Shapes:
        - z: ``(n, 60)``; ``log_prob(z)``: ``(n,)``; Cartesians ``(n, 22, 3)`` in nm
    """

    dim = 60
    log_Z = math.nan
    exact = False
    circular = CIRCULAR
    #: Half period of the circular coordinates in z: π / 0.2.
    circular_bound = math.pi / STDS["dihedral"]

    def __init__(
        self, params: Mapping[str, Any] | None = None, x_min: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        asset = _asset()
        self.energy = AldpEnergy(asset["forcefield"] if params is None else params)
        if x_min is None:
            x_min = torch.tensor(asset["minimum"], dtype=torch.float64)
        self.register_buffer("x_min", x_min.to(torch.float64), persistent=False)
        self.ic = InternalCoordinates(x_min)
        non_circular = torch.ones(60, dtype=torch.bool)
        non_circular[list(CIRCULAR)] = False
        non_circular[:_DIH] = False
        non_circular[_DIH + _N_IC :] = False
        self.register_buffer("_non_circular", non_circular, persistent=False)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z), -inf outside the coordinates' domain, ``(n, 60) -> (n,)``."""
        if z.dim() != 2 or z.shape[1] != 60:
            raise ValueError(f"AlanineDipeptide: z must have shape (n, 60), got {tuple(z.shape)}")
        x, log_det = self.ic.to_cartesian(z)
        log_p = log_det - self.reduced_energy(x)
        return log_p.masked_fill(~self.in_domain(z), -math.inf)

    def reduced_energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x)/kT at 300 K, log-compressed above 1e8 and capped at 1e20, ``(n,)``; NaN
        energies count as the cap."""
        e = self.energy(x) / _KT
        e = torch.where(
            e < _ENERGY_CUT, e, _ENERGY_CUT + torch.log1p(e.clamp_min(_ENERGY_CUT) - _ENERGY_CUT)
        )
        return e.nan_to_num(_ENERGY_MAX).clamp_max(_ENERGY_MAX)

    def in_domain(self, z: torch.Tensor) -> torch.Tensor:
        """Bonds > 0, 0 < angles < π, non-circular dihedrals in [-π, π) around the mean."""
        raw = z * self.ic.std + self.ic.mean
        bonds = torch.cat([raw[:, :_N_IC], raw[:, -3:-1]], -1)
        angles = torch.cat([raw[:, _N_IC:_DIH], raw[:, -1:]], -1)
        ok = (bonds > 0).all(-1) & ((angles > 0) & (angles < math.pi)).all(-1)
        bound = self.circular_bound
        return ok & (z[:, self._non_circular].abs() <= bound).all(-1)

    def to_cartesian(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cartesians ``(n, 22, 3)`` (nm) and log|det ∂x/∂z| of standardised coordinates."""
        return self.ic.to_cartesian(z)

    def from_cartesian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised coordinates ``(n, 60)`` and log|det ∂z/∂x| of Cartesians (nm)."""
        return self.ic.from_cartesian(x)

    def dihedrals(self, z: torch.Tensor) -> torch.Tensor:
        """Backbone (φ, ψ) of standardised coordinates, ``(n, 2)``."""
        return dihedrals(self.ic.to_cartesian(z)[0])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError(
            "AlanineDipeptide has no exact samples: score against reference MD samples "
            "(ramachandran_kld) instead; see the model card"
        )

    @property
    def modes(self) -> torch.Tensor:
        raise NotImplementedError(
            "AlanineDipeptide has no list of modes: compare Ramachandran histograms "
            "(ramachandran_kld) instead"
        )

    def mode_counts(self, x: torch.Tensor) -> torch.Tensor:
        return self.modes  # raises

    def modes_covered(self, x: torch.Tensor, fraction: float = 0.1) -> int:
        return self.modes  # raises


# -- metrics and plots ----------------------------------------------------------------------


def _histogram(angles: torch.Tensor, weights: torch.Tensor | None, bins: int) -> np.ndarray:
    a = angles.detach().cpu().double().numpy()
    w = None if weights is None else weights.detach().cpu().double().numpy()
    edges = np.linspace(-math.pi, math.pi, bins + 1)
    h, _, _ = np.histogram2d(a[:, 0], a[:, 1], bins=[edges, edges], weights=w)
    return h / h.sum()


def ramachandran_kld(
    samples: torch.Tensor,
    reference: torch.Tensor,
    log_w: torch.Tensor | None = None,
    *,
    bins: int = 64,
    eps: float = 1e-10,
) -> float:
    """KL(reference ‖ model) of (φ, ψ) histograms (``bins`` × ``bins`` on [-π, π]²).

    Args:
        samples: The model's (φ, ψ), ``(n, 2)``.
        reference: Reference (MD) (φ, ψ), ``(m, 2)``.
        log_w: Log importance weights of ``samples`` (``None``: unweighted).
        bins: Bins per angle.
        eps: Added to every bin of both histograms before normalising.

    Returns:
        Σ p_ref log(p_ref / p_model) over the bins.
    """
    for name, value in (("samples", samples), ("reference", reference)):
        if value.dim() != 2 or value.shape[1] != 2:
            raise ValueError(
                f"ramachandran_kld: {name} must be (φ, ψ) angles of shape (n, 2), got "
                f"{tuple(value.shape)}; see dihedrals()"
            )
    weights = None
    if log_w is not None:
        if log_w.shape != samples.shape[:1]:
            raise ValueError(
                f"ramachandran_kld: log_w must have shape ({len(samples)},), got "
                f"{tuple(log_w.shape)}"
            )
        weights = torch.softmax(log_w.double().nan_to_num(-math.inf), 0)
    p = _histogram(reference, None, bins) + eps
    q = _histogram(samples, weights, bins) + eps
    p, q = p / p.sum(), q / q.sum()
    return float((p * np.log(p / q)).sum())


def plot_ramachandran(
    angles: torch.Tensor,
    log_w: torch.Tensor | None = None,
    *,
    ax: Any = None,
    bins: int = 64,
    title: str | None = None,
) -> Any:
    """A (weighted) Ramachandran histogram, log density, of (φ, ψ) ``(n, 2)``; returns the
    figure."""
    import matplotlib.pyplot as plt

    weights = None if log_w is None else torch.softmax(log_w.double(), 0)
    h = _histogram(angles, weights, bins)
    figure = None
    if ax is None:
        figure, ax = plt.subplots(figsize=(4.5, 4))
    with np.errstate(divide="ignore"):
        image = ax.imshow(
            np.log(h.T),
            origin="lower",
            extent=(-math.pi, math.pi, -math.pi, math.pi),
            cmap="viridis",
            aspect="equal",
        )
    ax.figure.colorbar(image, ax=ax, label="log density")
    ax.set(xlabel="φ (rad)", ylabel="ψ (rad)")
    if title:
        ax.set_title(title, fontsize=9)
    return figure if figure is not None else ax.figure
