"""OpenMM's side of the alanine dipeptide target: the System, its parameters, the minimum.

Builds the paper's System (Amber ff96 + OBC1 implicit solvent, no cutoff, no constraints) with
OpenMM's bundled force-field files on a PDB written here, reads the arrays of
:class:`~zoo.fab.alanine.AldpEnergy` from it, minimises an idealised L-alanine structure, and
evaluates energies and forces on the Reference platform (the tests' oracle). Regenerate the
shipped asset ``zoo/fab/assets/aldp.json`` with::

    python -m zoo.fab.alanine_openmm --write

References:
    Eastman et al., "OpenMM 8: Molecular Dynamics Simulation with Machine Learning
    Potentials", J. Phys. Chem. B 2024, arXiv:2310.03121.
    Midgley, Stimper, Simm, Schölkopf, Hernández-Lobato, "Flow Annealed Importance Sampling
    Bootstrap", ICLR 2023, arXiv:2208.01893.
"""

from __future__ import annotations

import argparse
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.fab.alanine import _ASSET, ATOMS, _asset, _levels, _nerf, dihedrals

__all__ = [
    "forcefield_parameters",
    "minimum_energy_structure",
    "openmm_energy_forces",
    "openmm_system",
    "pdb_text",
    "write_asset",
]

_FORCEFIELD = ("amber96.xml", "implicit/obc1.xml")


def pdb_text(x: torch.Tensor | np.ndarray) -> str:
    """A PDB of the 22 atoms at ``x`` (nm, ``(22, 3)``), residue and atom names as OpenMM's
    templates expect."""
    xyz = np.asarray(x, dtype=np.float64).reshape(22, 3) * 10.0  # Å
    lines = []
    for serial, ((res, name, element), p) in enumerate(zip(ATOMS, xyz, strict=True), start=1):
        res_id = {"ACE": 1, "ALA": 2, "NME": 3}[res]
        label = name if len(name) == 4 else f" {name:<3}"
        lines.append(
            f"ATOM  {serial:5d} {label} {res} A{res_id:4d}    "
            f"{p[0]:8.3f}{p[1]:8.3f}{p[2]:8.3f}  1.00  0.00          {element:>2}"
        )
    return "\n".join([*lines, "TER", "END", ""])


def openmm_system(x: torch.Tensor | np.ndarray | None = None) -> tuple[Any, Any]:
    """The paper's OpenMM System (Amber ff96, OBC1, no cutoff, no constraints) and topology,
    from a PDB written at ``x`` (the shipped minimum by default). Needs ``openmm``."""
    from openmm import app

    if x is None:
        x = np.asarray(_asset()["minimum"])
    pdb = app.PDBFile(io.StringIO(pdb_text(x)))
    forcefield = app.ForceField(*_FORCEFIELD)
    system = forcefield.createSystem(
        pdb.topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False
    )
    return system, pdb.topology


def forcefield_parameters(system: Any) -> dict[str, Any]:
    """The arrays of :class:`AldpEnergy` read from an OpenMM System (plain lists)."""
    import openmm

    forces = {type(f).__name__: f for f in system.getForces()}
    out: dict[str, Any] = {}
    bonds = forces["HarmonicBondForce"]
    rows = [bonds.getBondParameters(i) for i in range(bonds.getNumBonds())]
    out["bond_idx"] = [[a, b] for a, b, _, _ in rows]
    out["bond_r0"] = [r._value for _, _, r, _ in rows]
    out["bond_k"] = [k._value for _, _, _, k in rows]
    angles = forces["HarmonicAngleForce"]
    rows = [angles.getAngleParameters(i) for i in range(angles.getNumAngles())]
    out["angle_idx"] = [list(r[:3]) for r in rows]
    out["angle_t0"] = [r[3]._value for r in rows]
    out["angle_k"] = [r[4]._value for r in rows]
    torsions = forces["PeriodicTorsionForce"]
    rows = [torsions.getTorsionParameters(i) for i in range(torsions.getNumTorsions())]
    out["torsion_idx"] = [list(r[:4]) for r in rows]
    out["torsion_n"] = [float(r[4]) for r in rows]
    out["torsion_phase"] = [r[5]._value for r in rows]
    out["torsion_k"] = [r[6]._value for r in rows]

    # nonbonded pairs: combination rules, overridden by the exceptions (zero: excluded)
    nb = forces["NonbondedForce"]
    n = system.getNumParticles()
    particles = [[v._value for v in nb.getParticleParameters(i)] for i in range(n)]
    pairs = {}
    for i in range(n):
        for j in range(i + 1, n):
            (qi, si, ei), (qj, sj, ej) = particles[i], particles[j]
            pairs[i, j] = (qi * qj, 0.5 * (si + sj), math.sqrt(ei * ej))
    for e in range(nb.getNumExceptions()):
        i, j, qq, sigma, eps = nb.getExceptionParameters(e)
        pairs[min(i, j), max(i, j)] = (qq._value, sigma._value, eps._value)
    kept = {ij: v for ij, v in pairs.items() if v[0] != 0 or v[2] != 0}
    out["pair_idx"] = [list(ij) for ij in kept]
    out["pair_qq"] = [v[0] for v in kept.values()]
    out["pair_sigma"] = [v[1] for v in kept.values()]
    out["pair_eps"] = [v[2] for v in kept.values()]
    out["coulomb"] = 138.935456  # OpenMM's ONE_4PI_EPS0 in the NonbondedForce kernels

    gb = next(f for f in system.getForces() if isinstance(f, openmm.CustomGBForce))
    rows = [gb.getParticleParameters(i) for i in range(n)]
    out["gb_charge"] = [r[0] for r in rows]
    out["gb_or"] = [r[1] for r in rows]
    out["gb_sr"] = [r[2] for r in rows]
    out["gb_constants"] = {
        "alpha": 0.8,
        "beta": 0.0,
        "gamma": 2.909125,
        "offset": 0.009,
        "coulomb": 138.935485,
        "solute_dielectric": 1.0,
        "solvent_dielectric": 78.5,
        "surface": 28.3919551,
    }
    return out


def openmm_energy_forces(x: np.ndarray, system: Any | None = None) -> tuple[np.ndarray, ...]:
    """Energies ``(n,)`` (kJ/mol) and forces ``(n, 22, 3)`` (kJ/mol/nm) by OpenMM's Reference
    platform, the tests' oracle."""
    import openmm
    from openmm import unit

    system = openmm_system()[0] if system is None else system
    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    energies, forces = [], []
    for xi in np.asarray(x, dtype=np.float64).reshape(-1, 22, 3):
        context.setPositions(xi * unit.nanometer)
        state = context.getState(getEnergy=True, getForces=True)
        energies.append(state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        forces.append(
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        )
    return np.array(energies), np.stack(forces)


# Idealised internal coordinates (nm, degrees) per Z-matrix row of the minimiser's start: L-Ala
# in the β region (φ = -150°, ψ = 150°; HA and CB at φ + 120° and φ + 240° about N-CA), trans
# peptides, staggered methyls. Of starts in C7eq, β, PII and αR, this one minimises lowest
# (φ ≈ -146°, ψ ≈ 161°). The frame is |CA-N| 0.146 nm, |CA-C| 0.152 nm, N-CA-C 111°.
# fmt: off
_START = (
    (0.109, 109.5, 60.0), (0.152, 116.0, 180.0), (0.109, 109.5, 120.0), (0.109, 109.5, -120.0),
    (0.133, 122.0, -150.0), (0.123, 123.0, 0.0), (0.101, 119.0, 180.0), (0.109, 109.5, -30.0),
    (0.153, 110.0, 90.0), (0.109, 109.5, 60.0), (0.109, 109.5, 120.0), (0.109, 109.5, -120.0),
    (0.123, 121.0, 180.0), (0.133, 116.0, 150.0), (0.101, 119.0, 180.0), (0.146, 122.0, 180.0),
    (0.109, 109.5, 60.0), (0.109, 109.5, 120.0), (0.109, 109.5, -120.0),
)
# fmt: on


def _start_structure() -> torch.Tensor:
    values = torch.tensor(_START, dtype=torch.float64)
    raw = torch.cat(
        [
            values[:, 0],
            values[:, 1].deg2rad(),
            values[:, 2].deg2rad(),
            torch.tensor([0.146, 0.152, math.radians(111.0)], dtype=torch.float64),
        ]
    )
    return _nerf(raw[None], _levels())[0]


def minimum_energy_structure(tolerance: float = 1e-3) -> np.ndarray:
    """OpenMM's LocalEnergyMinimizer from an idealised L-alanine C7eq structure, ``(22, 3)``
    in nm (float64)."""
    import openmm
    from openmm import unit

    x0 = _start_structure().numpy()
    system, _ = openmm_system(x0)
    context = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    context.setPositions(x0 * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(context, tolerance, 0)
    state = context.getState(getPositions=True)
    return state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)


def write_asset(path: str | Path = _ASSET) -> dict[str, Any]:
    """Regenerates the shipped asset: the minimum-energy structure and the force-field arrays
    (needs ``openmm``). Returns its content."""
    import openmm

    x_min = minimum_energy_structure()
    system, _ = openmm_system(x_min)
    energy = float(openmm_energy_forces(x_min[None], system)[0][0])
    content = {
        "description": "alanine dipeptide (ACE-ALA-NME), Amber ff96 + OBC1, no cutoff, no "
        "constraints; written by `python -m zoo.fab.alanine --write`",
        "openmm": openmm.__version__,
        "forcefield_files": list(_FORCEFIELD),
        "atoms": [list(a) for a in ATOMS],
        "minimum": x_min.tolist(),
        "minimum_energy_kj_mol": energy,
        "forcefield": forcefield_parameters(system),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(content, indent=1) + "\n")
    _asset.cache_clear()
    return content


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"regenerate {_ASSET.name}")
    args = parser.parse_args(argv)
    if args.write:
        content = write_asset()
        phi, psi = dihedrals(torch.tensor(content["minimum"])[None])[0].rad2deg().tolist()
        print(
            f"wrote {_ASSET}: E_min = {content['minimum_energy_kj_mol']:.4f} kJ/mol, "
            f"φ = {phi:.1f}°, ψ = {psi:.1f}°"
        )


if __name__ == "__main__":
    main()
