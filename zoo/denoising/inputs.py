"""User molecules to model inputs: ``ase.Atoms``, RDKit molecules with a conformer, or
``(atomic_numbers, positions)`` pairs, one or a list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zoo.denoising.molecules import ELEMENTS

__all__ = ["as_batch", "as_molecule"]

_ALLOWED = sorted(ELEMENTS.values())


def as_molecule(molecule: Any, where: str = "molecule") -> tuple[torch.Tensor, torch.Tensor]:
    """``(z (n_atoms,) long, pos (n_atoms, 3) float64 in Å)`` of one molecule.

    Raises:
        ValueError: No 3D conformer, no atoms, an element outside H C N O F, non-finite
            coordinates, or shapes that do not fit.
        TypeError: An object of another kind.
    """
    z, pos = _read(molecule, where)
    if z.ndim != 1 or pos.shape != (len(z), 3):
        raise ValueError(
            f"{where}: atomic numbers of shape (n_atoms,) and positions of shape (n_atoms, 3) "
            f"are needed, got {tuple(z.shape)} and {tuple(pos.shape)}"
        )
    if len(z) == 0:
        raise ValueError(f"{where} has no atoms")
    unknown = sorted(set(z.tolist()) - set(_ALLOWED))
    if unknown:
        raise ValueError(
            f"{where} holds elements with atomic numbers {unknown}; the model knows only "
            f"H, C, N, O, F (Z = {_ALLOWED}), the elements of QM9"
        )
    if not torch.isfinite(pos).all():
        raise ValueError(f"{where} has NaN or infinite coordinates")
    return z, pos


def as_batch(molecules: Any) -> tuple[bool, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One molecule or a list of them as ``(z, pos, batch)``.

    Returns:
        Whether a single molecule was given, and the concatenated ``(z, pos, batch)``.
    """
    single = not isinstance(molecules, list)
    if not single and not molecules:
        raise ValueError("an empty list of molecules was given")
    items = [molecules] if single else molecules
    parsed = [
        as_molecule(m, "the molecule" if single else f"molecule {i}") for i, m in enumerate(items)
    ]
    z = torch.cat([p[0] for p in parsed])
    pos = torch.cat([p[1] for p in parsed])
    batch = torch.cat(
        [torch.full((len(p[0]),), i, dtype=torch.long) for i, p in enumerate(parsed)]
    )
    return single, (z, pos, batch)


def _read(molecule: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    kind = type(molecule)
    if kind.__module__.startswith("ase") and hasattr(molecule, "get_positions"):
        z = torch.as_tensor(molecule.get_atomic_numbers(), dtype=torch.long)
        return z, torch.as_tensor(molecule.get_positions(), dtype=torch.float64)
    if kind.__module__.startswith("rdkit") and hasattr(molecule, "GetConformers"):
        conformers = [c for c in molecule.GetConformers() if c.Is3D()]
        if not conformers:
            raise ValueError(
                f"{where} (RDKit) has no 3D conformer; embed one first, e.g. "
                "`Chem.AddHs(mol)` then `AllChem.EmbedMolecule(mol)` and "
                "`AllChem.MMFFOptimizeMolecule(mol)`, with all hydrogens explicit"
            )
        z = torch.tensor([atom.GetAtomicNum() for atom in molecule.GetAtoms()], dtype=torch.long)
        return z, torch.as_tensor(conformers[0].GetPositions(), dtype=torch.float64)
    if isinstance(molecule, Sequence) and not isinstance(molecule, str) and len(molecule) == 2:
        z, pos = molecule
        return torch.as_tensor(z).long(), torch.as_tensor(pos, dtype=torch.float64)
    raise TypeError(
        f"{where}: expected an ase.Atoms, an RDKit molecule with a 3D conformer or a pair "
        f"(atomic_numbers, positions), got {kind.__name__}"
    )
