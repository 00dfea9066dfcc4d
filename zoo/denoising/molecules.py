"""Molecules as flat arrays: the 12 QM9 targets, the ``qm9pack`` CSV parser, the readers of
QM9 and of a local PCQM4Mv2 copy, and the cache file they are converted into.

The three CSVs of ``qm9pack`` 1.0.3 are parsed with ``csv`` + ``json`` (about 30 CPU-s) into
:class:`MoleculeArrays`, saved as one compressed ``.npz``; ``qm9pack`` itself is never
imported (its import needs ``pkg_resources``). Targets go by their names in the literature,
in the units the literature reports (meV for energies); ``u0``, ``u``, ``h`` and ``g`` are
atomisation energies (atom references subtracted in float64).
"""

from __future__ import annotations

import ast
import contextlib
import csv
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import tempfile
import time
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

__all__ = [
    "ELEMENTS",
    "HARTREE_TO_MEV",
    "PCQM4MV2_SDF",
    "QM9_MOLECULES",
    "TARGETS",
    "MoleculeArrays",
    "QM9Row",
    "Target",
    "default_cache_dir",
    "parse_row",
    "qm9pack_files",
    "qm9pack_version",
    "read_pcqm4mv2",
    "read_qm9",
]


_log = logging.getLogger(__name__)

HARTREE_TO_MEV = 27211.386245988  # CODATA 2018
ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
QM9_MOLECULES = 130_831
PCQM4MV2_SDF = "pcqm4m-v2-train.sdf"
_QM9_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_NO_QM9PACK = (
    "QM9DataModule: the QM9 CSVs come from the qm9pack wheel; "
    "install it with `pip install qm9pack==1.0.3`"
)
_FORMAT = 1  # of the cached arrays and splits; a change renames the files


@dataclass(frozen=True)
class Target:
    """A QM9 property: where it is in the CSV and how it is reported.

    Attributes:
        name: The literature's name (``homo``, ``u0``, ...).
        column: The ``qm9pack`` CSV column.
        unit: The reported unit.
        factor: Reported unit per CSV unit (Ha -> meV for energies, 1 otherwise).
        description: What the property is.
        atom_refs: For ``u0``, ``u``, ``h``, ``g``: ``{Z: eV}``, the free-atom energies that
            are subtracted so that the target is the atomisation energy; ``None`` otherwise.
    """

    name: str
    column: str
    unit: str
    factor: float
    description: str
    atom_refs: Mapping[int, float] | None = None

    def __post_init__(self) -> None:
        assert self.atom_refs is None or self.unit == "meV", "atom references are in eV -> meV"

    def atom_reference(self, z: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Sum of the free-atom references per molecule, in meV (0 without references).

        Args:
            z: ``(n_atoms,)`` atomic numbers.
            offsets: ``(n_molecules + 1,)``: molecule ``i`` is ``z[offsets[i]:offsets[i+1]]``.

        Returns:
            ``(n_molecules,)`` float64.
        """
        counts = np.diff(offsets)
        if not self.atom_refs:
            return np.zeros(len(counts))
        table = np.full(256, np.nan)
        for number, ev in self.atom_refs.items():
            table[number] = 1000.0 * ev
        per_atom = table[np.asarray(z, dtype=np.int64)]
        if np.isnan(per_atom).any():
            raise ValueError(f"target {self.name!r}: atom references exist for H C N O F only")
        molecule = np.repeat(np.arange(len(counts)), counts)
        return np.bincount(molecule, weights=per_atom, minlength=len(counts))

    def convert(self, raw: np.ndarray, z: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The CSV's values in the reported unit, atom references subtracted, in float64.

        Args:
            raw: ``(n_molecules,)`` values in the CSV's unit.
            z, offsets: As in :meth:`atom_reference`.
        """
        value = np.asarray(raw, dtype=np.float64) * self.factor
        return value - self.atom_reference(z, offsets)


def _atom_refs(h: float, c: float, n: float, o: float, f: float) -> dict[int, float]:
    return dict(zip(ELEMENTS.values(), (h, c, n, o, f), strict=True))


# Free-atom energies of QM9 (B3LYP/6-31G(2df,p)) in eV, the values PyG's ``qm9.py`` uses.
_REFS = {
    "u0": _atom_refs(-13.61312172, -1029.86312267, -1485.30251237, -2042.61123593, -2713.48485589),
    "u": _atom_refs(-13.5745904, -1029.82456413, -1485.26398105, -2042.5727046, -2713.44632457),
    "h": _atom_refs(-13.54887564, -1029.79887659, -1485.2382935, -2042.54701705, -2713.42063702),
    "g": _atom_refs(-13.90303183, -1030.25891228, -1485.71166277, -2043.01812778, -2713.88796536),
}


def _energy(name: str, column: str, description: str, refs: dict | None = None) -> Target:
    return Target(name, column, "meV", HARTREE_TO_MEV, description, refs)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("mu", "Dipole_debye", "D", 1.0, "dipole moment"),
        Target("alpha", "Polarizability_bohr3", "a0^3", 1.0, "isotropic polarizability"),
        _energy("homo", "HOMO_au", "HOMO energy"),
        _energy("lumo", "LUMO_au", "LUMO energy"),
        _energy("gap", "HOMO_LUMO_gap_au", "HOMO-LUMO gap"),
        Target("r2", "R2_bohr2", "a0^2", 1.0, "electronic spatial extent"),
        _energy("zpve", "ZPVE_au", "zero-point vibrational energy"),
        _energy("u0", "InternalEnergy_0K_au", "atomisation energy at 0 K", _REFS["u0"]),
        _energy("u", "InternalEnergy_298K_au", "atomisation energy at 298.15 K", _REFS["u"]),
        _energy("h", "Enthalphy_298K_au", "atomisation enthalpy at 298.15 K", _REFS["h"]),
        _energy("g", "GibbsFreeEnergy_298K_au", "atomisation free energy at 298.15 K", _REFS["g"]),
        Target("cv", "Heatcapacity_Cv_cal_mol_K", "cal/mol/K", 1.0, "heat capacity at 298.15 K"),
    )
}


# ---------------------------------------------------------------------------------------------
# Parsing the qm9pack CSVs


class QM9Row(NamedTuple):
    """One parsed CSV row.

    Attributes:
        index: QM9's ``Index`` (1 to 133,885, with gaps).
        z: ``(n_atoms,)`` uint8 atomic numbers.
        pos: ``(n_atoms, 3)`` float64 positions in Å.
        targets: ``(12,)`` float64, the columns of :data:`TARGETS` in the CSV's units.
    """

    index: int
    z: np.ndarray
    pos: np.ndarray
    targets: np.ndarray


_BARE_DOT = re.compile(r"(?<=\d)\.(?![\d])")  # "1." -> "1.0" (also "1.e-5")
_LEADING_DOT = re.compile(r"(?<![\d])\.(?=\d)")  # ".5" -> "0.5"


def _json_number_text(text: str) -> str:
    """Mathematica-style numbers (``0.``, ``1.2*^-5``) as JSON numbers."""
    text = text.replace("*^", "e")
    return _LEADING_DOT.sub("0.", _BARE_DOT.sub(".0", text))


def _number(text: str) -> float:
    return float(text.replace("*^", "e"))


def parse_row(row: Mapping[str, str]) -> QM9Row:
    """Parses one row of a ``qm9pack`` CSV (as read by :class:`csv.DictReader`).

    ``XYZ_Ang`` is a JSON-like list of triples whose numbers may be bare-dot (``0.``) or carry
    ``*^`` exponents; ``Elements`` is a Python literal, read with :func:`ast.literal_eval`.

    Raises:
        ValueError: On an element other than H C N O F, or atom counts that disagree.
    """
    index = int(row["Index"])
    elements = ast.literal_eval(row["Elements"])
    unknown = sorted(set(elements) - ELEMENTS.keys())
    if unknown:
        raise ValueError(f"QM9 row Index={index}: elements {unknown} are not H C N O F")
    xyz = json.loads(_json_number_text(row["XYZ_Ang"]))
    n_atoms = int(row["N_atoms"])
    if not len(elements) == len(xyz) == n_atoms or any(len(p) != 3 for p in xyz):
        raise ValueError(
            f"QM9 row Index={index}: N_atoms={n_atoms}, {len(elements)} elements and "
            f"{len(xyz)} positions disagree"
        )
    return QM9Row(
        index=index,
        z=np.array([ELEMENTS[e] for e in elements], dtype=np.uint8),
        pos=np.array(xyz, dtype=np.float64),
        targets=np.array([_number(row[t.column]) for t in TARGETS.values()]),
    )


def qm9pack_version() -> str:
    """The installed ``qm9pack`` version (read from its metadata, not imported).

    Raises:
        ModuleNotFoundError: If ``qm9pack`` is not installed.
    """
    try:
        return importlib.metadata.version("qm9pack")
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(_NO_QM9PACK) from None


def qm9pack_files() -> list[Path]:
    """The three QM9 CSVs inside the installed ``qm9pack`` wheel (found, not imported).

    Raises:
        ModuleNotFoundError: If ``qm9pack`` is not installed.
        FileNotFoundError: If its data files are missing.
    """
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(_NO_QM9PACK)
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = [data / name for name in _QM9_PARTS]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"QM9DataModule: qm9pack is installed without its data ({missing}); "
            "reinstall it with `pip install --force-reinstall qm9pack==1.0.3`"
        )
    return files


# ---------------------------------------------------------------------------------------------
# Flat arrays and their cache file


@dataclass
class MoleculeArrays:
    """Molecules as flat arrays.

    Attributes:
        z: ``(n_atoms,)`` uint8 atomic numbers.
        pos: ``(n_atoms, 3)`` float32 positions in Å.
        offsets: ``(n_molecules + 1,)`` int64: molecule ``i`` is ``offsets[i]:offsets[i+1]``.
        targets: ``(n_molecules, n_targets)`` float64 in the CSV's units (columns:
            ``meta["targets"]``, the names of :data:`TARGETS` for QM9, none for PCQM4Mv2).
        index: ``(n_molecules,)`` int64: QM9's ``Index``, or the record number in the SDF.
        meta: JSON-able facts: source, version, ``limit``, the content ``sha256``.
    """

    z: np.ndarray
    pos: np.ndarray
    offsets: np.ndarray
    targets: np.ndarray
    index: np.ndarray
    meta: dict[str, Any]

    _ARRAYS = ("z", "pos", "offsets", "targets", "index")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_atoms(self) -> int:
        return int(self.offsets[-1])

    def content_hash(self) -> str:
        """sha256 of the arrays' names, dtypes, shapes and bytes."""
        digest = hashlib.sha256()
        for name in self._ARRAYS:
            value = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}:{value.dtype.str}:{value.shape}".encode())
            digest.update(value.tobytes())
        return digest.hexdigest()

    def target(self, name: str) -> np.ndarray:
        """``(n_molecules,)`` float64 values of a target in its reported unit."""
        target = _target(name)
        columns = self.meta.get("targets", [])
        if target.name not in columns:
            raise ValueError(f"QM9DataModule: these molecules carry no {target.name!r} labels")
        raw = self.targets[:, columns.index(target.name)]
        return target.convert(raw, self.z, self.offsets)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes one compressed ``.npz`` atomically (a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.meta, "sha256": self.content_hash()}
        arrays = {name: getattr(self, name) for name in self._ARRAYS}
        with _atomic(path) as handle:
            np.savez_compressed(handle, meta=np.array(json.dumps(meta)), **arrays)
        self.meta = meta

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MoleculeArrays:
        """Reads a file of :meth:`save` and checks its content hash.

        Raises:
            ValueError: If the file is corrupt.
        """
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in cls._ARRAYS}
            meta = json.loads(str(f["meta"]))
        molecules = cls(**arrays, meta=meta)
        if molecules.content_hash() != meta.get("sha256"):
            raise ValueError(f"QM9DataModule: {path} is corrupt; delete it to convert again")
        return molecules


@contextlib.contextmanager
def _atomic(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Writes to a temporary file next to ``path``, renamed onto ``path`` only when the block
    succeeds: readers never see a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class _Builder:
    """Appends molecules into growing flat buffers."""

    def __init__(self) -> None:
        self.z, self.pos = array("B"), array("f")
        self.offsets, self.index = array("q", [0]), array("q")
        self.targets = array("d")

    def add(self, index: int, z, pos, targets=()) -> None:
        self.z.extend(z)
        self.pos.extend(np.asarray(pos, dtype=np.float32).ravel())
        self.offsets.append(len(self.z))
        self.index.append(index)
        self.targets.extend(targets)

    def finish(self, n_targets: int, meta: dict[str, Any]) -> MoleculeArrays:
        return MoleculeArrays(
            z=np.frombuffer(self.z, dtype=np.uint8).copy(),
            pos=np.frombuffer(self.pos, dtype=np.float32).reshape(-1, 3).copy(),
            offsets=np.frombuffer(self.offsets, dtype=np.int64).copy(),
            targets=np.frombuffer(self.targets, dtype=np.float64)
            .reshape(len(self.index), n_targets)
            .copy(),
            index=np.frombuffer(self.index, dtype=np.int64).copy(),
            meta={"format": _FORMAT, **meta},
        )


def read_qm9(limit: int | None = None) -> MoleculeArrays:
    """Converts the ``qm9pack`` CSVs into :class:`MoleculeArrays` (about 30 CPU-s).

    Args:
        limit: Only the first ``limit`` molecules (for tests).
    """
    start, builder, n = time.process_time(), _Builder(), 0
    for path in qm9pack_files():
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                if limit is not None and n >= limit:
                    break
                parsed = parse_row(row)
                builder.add(parsed.index, parsed.z, parsed.pos, parsed.targets)
                n += 1
    meta = {
        "source": "qm9pack",
        "version": qm9pack_version(),
        "limit": limit,
        "targets": list(TARGETS),
        "columns": [t.column for t in TARGETS.values()],
    }
    molecules = builder.finish(len(TARGETS), meta)
    _log.info("QM9: %d molecules converted in %.1f CPU-s", n, time.process_time() - start)
    return molecules


def read_pcqm4mv2(folder: str | os.PathLike[str], limit: int | None = None) -> MoleculeArrays:
    """Reads the 3D structures of a local PCQM4Mv2 copy (no labels) with RDKit.

    Args:
        folder: A folder holding ``pcqm4m-v2-train.sdf`` (OGB-LSC's
            ``pcqm4m-v2-train.sdf.tar.gz``, extracted). Nothing is ever downloaded.
        limit: Only the first ``limit`` molecules (for tests).

    Raises:
        FileNotFoundError: If the SDF file is not in ``folder``.
        ValueError: On a record RDKit cannot read, or one without a conformer.
    """
    path = Path(folder).expanduser() / PCQM4MV2_SDF
    if not path.is_file():
        raise FileNotFoundError(
            f"QM9DataModule: no {PCQM4MV2_SDF} in {path.parent}; put the PCQM4Mv2 3D training "
            f"structures there (OGB-LSC's {PCQM4MV2_SDF}.tar.gz, extracted), or use "
            "source='qm9pack'. Nothing is ever downloaded."
        )
    from rdkit import Chem

    builder = _Builder()
    supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False)
    for record, molecule in enumerate(supplier):
        if limit is not None and record >= limit:
            break
        if molecule is None or molecule.GetNumConformers() == 0:
            raise ValueError(f"{path}: record {record} is not a molecule with a conformer")
        z = [atom.GetAtomicNum() for atom in molecule.GetAtoms()]
        builder.add(record, z, molecule.GetConformer().GetPositions())
    meta = {"source": "pcqm4mv2", "path": str(path.resolve()), "limit": limit, "targets": []}
    return builder.finish(0, meta)


def default_cache_dir() -> Path:
    """``$ZOO_CACHE/denoising``, else ``$XDG_CACHE_HOME/zoo/denoising``, else
    ``~/.cache/zoo/denoising`` (read at every call)."""
    root = os.environ.get("ZOO_CACHE")
    if root:
        return Path(root).expanduser() / "denoising"
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "zoo" / "denoising"


def _target(name: str) -> Target:
    if name.lower() not in TARGETS:
        raise ValueError(
            f"QM9DataModule: unknown target {name!r}; choose one of {list(TARGETS)} or None"
        )
    return TARGETS[name.lower()]
