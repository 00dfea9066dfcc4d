"""The QM9 data layer of ``denoising``: parsing real ``qm9pack`` rows, units and atom
references, the cache file, the seeded split and its disjointness, the dataloaders, errors.

Everything runs on the first 200 molecules; the full conversion is one ``slow`` test.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")

from torch_geometric.data import Batch

from zoo.denoising.data import QM9DataModule, make_split
from zoo.denoising.molecules import (
    HARTREE_TO_MEV,
    QM9_MOLECULES,
    TARGETS,
    MoleculeArrays,
    default_cache_dir,
    parse_row,
    qm9pack_files,
    read_qm9,
)

SMALL = {
    "train_size": 60,
    "val_size": 20,
    "test_size": 20,
    "pretrain_val_size": 20,
    "pretrain_test_size": 20,
    "limit": 200,
}


def _csv_rows(indices: set[int]) -> dict[int, dict[str, str]]:
    """Rows of the first CSV with these QM9 ``Index`` values, read straight from the file."""
    rows = {}
    with qm9pack_files()[0].open(newline="") as f:
        for row in csv.DictReader(f):
            if int(row["Index"]) in indices:
                rows[int(row["Index"])] = row
            if len(rows) == len(indices):
                return rows
    raise AssertionError(f"rows {indices - rows.keys()} not in the first CSV")


@pytest.fixture(scope="module")
def rows() -> dict[int, dict[str, str]]:
    return _csv_rows({1, 4, 23})


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the first 200 molecules and the SMALL split."""
    folder = tmp_path_factory.mktemp("qm9")
    QM9DataModule(cache_dir=str(folder), **SMALL).prepare_data()
    return folder


def _data(cache: Path, **kwargs) -> QM9DataModule:
    data = QM9DataModule(cache_dir=str(cache), **{**SMALL, **kwargs})
    data.setup()
    return data


# -- parsing --------------------------------------------------------------------------------------


def test_parse_methane(rows):
    methane = parse_row(rows[1])
    assert methane.index == 1
    assert methane.z.tolist() == [6, 1, 1, 1, 1]
    np.testing.assert_array_equal(methane.pos[0], [-0.0126981359, 1.0858041578, 0.0080009958])
    assert methane.targets.dtype == np.float64
    assert methane.targets[list(TARGETS).index("homo")] == -0.3877


def test_parse_bare_dot_rows(rows):
    """Acetylene (Index 4) and row 23 hold ``0.`` and ``1.``, which ``json`` rejects."""
    for index in (4, 23):
        with pytest.raises(json.JSONDecodeError):
            json.loads(rows[index]["XYZ_Ang"])
    acetylene = parse_row(rows[4])
    assert acetylene.z.tolist() == [6, 6, 1, 1]
    x = [0.5995394918, -0.5995394918, -1.6616385861, 1.6616385861]
    np.testing.assert_array_equal(acetylene.pos[:, 0], x)
    np.testing.assert_array_equal(acetylene.pos[:, 1:], np.tile([0.0, 1.0], (4, 1)))
    assert parse_row(rows[23]).pos.shape == (int(rows[23]["N_atoms"]), 3)


def test_parse_mathematica_exponents(rows):
    row = dict(rows[1])
    row["XYZ_Ang"] = "[[1.5*^-3,0.,.5],[-1.,2.E-1,3],[0,0,0],[1,1,1],[2,2,2]]"
    row["HOMO_au"] = "-3.877*^-1"
    parsed = parse_row(row)
    np.testing.assert_allclose(parsed.pos[:2], [[1.5e-3, 0.0, 0.5], [-1.0, 0.2, 3.0]])
    assert parsed.targets[list(TARGETS).index("homo")] == -0.3877


def test_parse_rejects_bad_rows(rows):
    row = dict(rows[1], Elements="['C','Cl','H','H','H']")
    with pytest.raises(ValueError, match="'Cl'.*not H C N O F"):
        parse_row(row)
    with pytest.raises(ValueError, match="disagree"):
        parse_row(dict(rows[1], N_atoms="6"))
    with pytest.raises(ValueError):  # a literal, never code
        parse_row(dict(rows[1], Elements="__import__('os').getcwd()"))


# -- units ----------------------------------------------------------------------------------------


def test_targets_table():
    assert list(TARGETS) == [
        "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "u0", "u", "h", "g", "cv"
    ]  # fmt: skip
    energies = {"homo", "lumo", "gap", "zpve", "u0", "u", "h", "g"}
    assert {name for name, t in TARGETS.items() if t.unit == "meV"} == energies
    assert {name for name, t in TARGETS.items() if t.atom_refs} == {"u0", "u", "h", "g"}
    assert abs(HARTREE_TO_MEV - 27211.386) < 1e-3


def test_homo_in_mev(cache):
    data = _data(cache)
    (methane,) = [
        d for split in ("train", "val", "test") for d in data.dataset(split) if d.idx == 1
    ]
    assert methane.y.dtype == torch.float32 and methane.y.shape == (1,)
    assert methane.y.item() == pytest.approx(-0.3877 * 27211.386, rel=1e-6)


def test_u0_is_an_atomisation_energy(rows):
    methane = parse_row(rows[1])
    offsets = np.array([0, 5])
    raw = methane.targets[[list(TARGETS).index("u0")]]
    assert raw.item() == -40.47893
    expected = -40.47893 * HARTREE_TO_MEV - 1000 * (-1029.86312267 + 4 * -13.61312172)
    (u0,) = TARGETS["u0"].convert(raw, methane.z, offsets)
    assert u0 == pytest.approx(expected, abs=1e-6)
    assert -18_000 < u0 < -16_000  # methane binds by about 17 eV
    (homo,) = TARGETS["homo"].convert([-0.3877], methane.z, offsets)
    assert homo == -0.3877 * HARTREE_TO_MEV


# -- cache and split ------------------------------------------------------------------------------


def test_cache_file(cache):
    data = QM9DataModule(cache_dir=str(cache), **SMALL)
    path = data.cache_path()
    assert path.parent == cache and path.is_file() and data.split_path().is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")], "temporary files left"
    arrays = MoleculeArrays.load(path)
    assert len(arrays) == 200 and arrays.index[:3].tolist() == [1, 2, 3]
    assert (arrays.z.dtype, arrays.pos.dtype) == (np.uint8, np.float32)
    assert (arrays.offsets.dtype, arrays.targets.dtype) == (np.int64, np.float64)
    assert arrays.targets.shape == (200, 12) and arrays.n_atoms == arrays.offsets[-1]


def test_corrupt_cache_is_detected(tmp_path):
    arrays = read_qm9(limit=5)
    arrays.save(tmp_path / "a.npz")
    arrays.pos[0, 0] += 1.0
    fields = {name: getattr(arrays, name) for name in ("z", "pos", "offsets", "targets", "index")}
    np.savez(tmp_path / "b.npz", meta=np.array(json.dumps(arrays.meta)), **fields)
    assert len(MoleculeArrays.load(tmp_path / "a.npz")) == 5
    with pytest.raises(ValueError, match="corrupt"):
        MoleculeArrays.load(tmp_path / "b.npz")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "denoising"
    assert QM9DataModule(limit=10).cache_path().parent == tmp_path / "denoising"


def test_split_is_disjoint_and_complete():
    split = make_split(200, 0, **{k: v for k, v in SMALL.items() if k != "limit"})
    labelled = np.concatenate([split[name] for name in ("train", "val", "test")])
    corpus = np.concatenate(
        [split[n] for n in ("pretrain_train", "pretrain_val", "pretrain_test")]
    )
    assert len(np.intersect1d(labelled, corpus)) == 0
    assert np.array_equal(np.sort(np.concatenate([labelled, corpus])), np.arange(200))
    assert {name: len(rows) for name, rows in split.items()} == {
        "test": 20, "val": 20, "train": 60,
        "pretrain_val": 20, "pretrain_test": 20, "pretrain_train": 60,
    }  # fmt: skip


def test_split_is_determined_by_the_seed():
    sizes = {k: v for k, v in SMALL.items() if k != "limit"}
    a, b, c = (make_split(200, seed, **sizes) for seed in (0, 0, 1))
    assert all(np.array_equal(a[name], b[name]) for name in a)
    assert not np.array_equal(a["train"], c["train"])
    assert not np.array_equal(np.sort(a["train"]), np.arange(60) + 40), "not a permutation"
    smaller = make_split(200, 0, **{**sizes, "train_size": 30})
    assert np.array_equal(smaller["test"], a["test"]) and set(smaller["train"]) < set(a["train"])


def test_saved_split_matches(cache):
    data = _data(cache)
    record = json.loads(data.split_path().read_text())
    assert record["seed"] == 0 and record["arrays_sha256"] == data.arrays.meta["sha256"]
    fresh = make_split(200, 0, **{k: v for k, v in SMALL.items() if k != "limit"})
    for name in ("train", "val", "test"):
        assert np.array_equal(data.splits[name], fresh[name])


def test_pretrain_mode_uses_the_corpus(cache):
    finetune = _data(cache)
    pretrain = _data(cache, target=None, pretrain_size=25)
    assert pretrain.mode == "pretrain" and len(pretrain.splits["train"]) == 25
    labelled = np.concatenate(list(finetune.splits.values()))
    corpus = np.concatenate(list(pretrain.splits.values()))
    assert len(np.intersect1d(labelled, corpus)) == 0
    batch = next(iter(pretrain.val_dataloader()))
    assert "y" not in batch and batch.num_graphs == 20


# -- the datamodule -------------------------------------------------------------------------------


def test_batches(cache):
    data = _data(cache, batch_size=8)
    batch = next(iter(data.train_dataloader()))
    assert isinstance(batch, Batch) and batch.num_graphs == 8
    assert batch.z.dtype == torch.long and batch.pos.dtype == torch.float32
    assert batch.pos.shape == (batch.num_nodes, 3) and batch.batch.shape == (batch.num_nodes,)
    assert batch.y.shape == (8,) and batch.idx.shape == (8,)
    assert set(batch.z.tolist()) <= {1, 6, 7, 8, 9}
    assert sum(len(b.y) for b in data.test_dataloader()) == 20


def test_target_stats(cache):
    data = _data(cache, target="gap")
    stats = data.target_stats()
    y = np.array([d.y.item() for d in data.dataset("train")])
    assert stats["target"] == "gap" and stats["unit"] == "meV" and stats["n"] == 60
    assert stats["mean"] == pytest.approx(y.mean(), rel=1e-6)
    assert stats["std"] == pytest.approx(y.std(), rel=1e-4)
    with pytest.raises(ValueError, match="no target"):
        _data(cache, target=None).target_stats()


def test_fingerprint(cache):
    a, b = _data(cache).fingerprint(), _data(cache).fingerprint()
    assert a == b and a.startswith("sha256:")
    assert _data(cache, target="lumo").fingerprint() != a
    assert _data(cache, split_seed=1).fingerprint() != a


# -- errors ---------------------------------------------------------------------------------------


def test_bad_arguments(cache):
    with pytest.raises(ValueError, match=r"unknown target 'homo_ev'.*'homo'.*'cv'"):
        QM9DataModule(target="homo_ev")
    with pytest.raises(ValueError, match="fine-tuning needs a target"):
        QM9DataModule(target=None, mode="finetune")
    with pytest.raises(ValueError, match="must be >= 0"):
        QM9DataModule(train_size=-1)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        QM9DataModule(batch_size=0)
    with pytest.raises(ValueError, match="exceeds the 200 molecules; make them smaller"):
        _data(cache, train_size=500)
    with pytest.raises(ValueError, match="leave no pre-training molecule"):
        _data(cache, pretrain_val_size=50, pretrain_test_size=50)
    with pytest.raises(ValueError, match="pretrain_size=1000 exceeds the 60"):
        _data(cache, target=None, pretrain_size=1000)
    assert QM9DataModule(target="NONE").mode == "pretrain"
    assert QM9DataModule(target="HOMO").target.name == "homo"


# -- a local PCQM4Mv2 copy ------------------------------------------------------------------------


def test_pcqm4mv2_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="pcqm4m-v2-train.sdf.*Nothing is ever downloaded"):
        _data(tmp_path, source=str(tmp_path), target=None)
    with pytest.raises(ValueError, match="carry no 'homo' labels"):
        QM9DataModule(source=str(tmp_path), target="homo")

    chem = pytest.importorskip("rdkit.Chem")
    from rdkit.Chem import AllChem

    writer = chem.SDWriter(str(tmp_path / "pcqm4m-v2-train.sdf"))
    for i, smiles in enumerate(["CCO", "c1ccsc1", "CC(=O)N", "ClCCl", "O=C=O", "CN", "CCC"]):
        molecule = chem.AddHs(chem.MolFromSmiles(smiles))
        assert AllChem.EmbedMolecule(molecule, randomSeed=i) == 0
        writer.write(molecule)
    writer.close()
    sizes = {"pretrain_val_size": 2, "pretrain_test_size": 1, "limit": None}
    data = _data(tmp_path / "cache", source=str(tmp_path), target=None, batch_size=4, **sizes)
    assert len(data.arrays) == 7 and {16, 17} <= set(data.arrays.z.tolist())
    assert {name: len(rows) for name, rows in data.splits.items()} == {
        "train": 4, "val": 2, "test": 1
    }  # fmt: skip
    batch = next(iter(data.train_dataloader()))
    assert batch.num_graphs == 4 and batch.pos.dtype == torch.float32


# -- the full set ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_conversion(tmp_path):
    data = QM9DataModule(cache_dir=str(tmp_path))
    data.prepare_data()
    data.setup()
    arrays = data.arrays
    assert len(arrays) == QM9_MOLECULES == 130_831
    assert arrays.n_atoms == 2_359_210
    assert set(np.unique(arrays.z).tolist()) == {1, 6, 7, 8, 9}
    assert arrays.index[0] == 1 and arrays.index[-1] == 133_885
    assert np.all(np.diff(arrays.index) > 0) and np.isfinite(arrays.pos).all()
    assert np.isfinite(arrays.targets).all()
    homo = arrays.target("homo")
    assert homo.mean() == pytest.approx(-0.2402 * HARTREE_TO_MEV, rel=1e-3)
    assert homo.std() == pytest.approx(598, rel=0.01)
    assert {name: len(rows) for name, rows in data.splits.items()} == {
        "train": 8000, "val": 1000, "test": 2000
    }  # fmt: skip
