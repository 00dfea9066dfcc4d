"""Entry ``denoising``: the Lightning modules, strict encoder loading, the user API and its
errors, the shipped weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from zoo.checkpoint import save_pretrained
from zoo.denoising import DenoisingPretrainModule, PropertyFinetuneModule

REPO = Path(__file__).resolve().parent.parent
TINY = {"embedding_dimension": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}
GOLDEN = REPO / "tests" / "data" / "denoising_golden.json"

# Methanol (Å), the modules' probe molecule, and water.
METHANOL_Z = [6, 8, 1, 1, 1, 1]
WATER = (
    torch.tensor([8, 1, 1]),
    torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]),
)


@pytest.fixture
def tiny_finetune() -> PropertyFinetuneModule:
    torch.manual_seed(0)
    return PropertyFinetuneModule(encoder=TINY, label_mean=-6500.0, label_std=600.0).eval()


def test_pretrained_encoder_loads_strictly_into_the_finetuning_module(tmp_path: Path) -> None:
    torch.manual_seed(0)
    pretrained = DenoisingPretrainModule(encoder=TINY)
    save_pretrained(pretrained, tmp_path / "pre", name="test.pre")
    finetune = PropertyFinetuneModule(encoder=TINY)
    finetune.load_encoder(str(tmp_path / "pre"))
    for key, tensor in pretrained.encoder.state_dict().items():
        assert torch.equal(finetune.encoder.state_dict()[key], tensor), key
    z, pos, batch = pretrained.example_input_array
    assert torch.equal(finetune.predict_noise(z, pos, batch), pretrained(z, pos, batch))

    other = PropertyFinetuneModule(encoder={**TINY, "embedding_dimension": 8, "num_heads": 2})
    with pytest.raises(ValueError, match="encoder options"):
        other.load_encoder(str(tmp_path / "pre"))


def test_fitting_loaded_weights_keeps_their_encoder_and_statistics(tmp_path: Path) -> None:
    """`zoo.load` then `Trainer.fit`: setup must not reload `init_from` over the fine-tuned
    encoder, nor replace the label statistics the head was trained with."""
    from types import SimpleNamespace

    from zoo.checkpoint import load_folder

    torch.manual_seed(0)
    trained = PropertyFinetuneModule(
        encoder=TINY, init_from="no/such/folder", label_mean=-6500.0, label_std=600.0
    )
    save_pretrained(trained, tmp_path / "homo", name="test.homo")
    loaded = load_folder(tmp_path / "homo")
    before = {k: v.clone() for k, v in loaded.state_dict().items()}
    loaded._trainer = SimpleNamespace(ckpt_path=None, datamodule=None)
    loaded.setup("fit")  # a fresh module would fail here: no datamodule, no init_from folder
    for key, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, before[key]), key


def test_predict_takes_pairs_ase_rdkit_and_lists(tiny_finetune) -> None:
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    z, pos, _ = tiny_finetune.example_input_array
    one = tiny_finetune.predict((z, pos))
    assert isinstance(one.value, float) and one.unit == "meV" and one.target == "homo"
    atoms = Atoms(numbers=z.tolist(), positions=pos.double().numpy())
    assert tiny_finetune.predict(atoms).value == pytest.approx(one.value, abs=1e-3)

    mol = Chem.AddHs(Chem.MolFromSmiles("CO"))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    from_rdkit = tiny_finetune.predict(mol)
    assert math.isfinite(from_rdkit.value)

    many = tiny_finetune.predict([(z, pos), WATER, atoms])
    assert many.value.shape == (3,)
    assert many.value[0].item() == pytest.approx(one.value, abs=1e-3)
    assert many.value[2].item() == pytest.approx(one.value, abs=1e-3)


def test_bad_molecules_are_explained(tiny_finetune) -> None:
    from rdkit import Chem

    z, pos, _ = tiny_finetune.example_input_array
    with pytest.raises(ValueError, match="no 3D conformer"):
        tiny_finetune.predict(Chem.MolFromSmiles("CO"))
    with pytest.raises(ValueError, match=r"atomic numbers \[16\].*H, C, N, O, F"):
        tiny_finetune.predict((torch.tensor([16, 1, 1]), torch.randn(3, 3)))
    with pytest.raises(ValueError, match="has no atoms"):
        tiny_finetune.predict((torch.zeros(0, dtype=torch.long), torch.zeros(0, 3)))
    bad = pos.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        tiny_finetune.predict((z, bad))
    with pytest.raises(ValueError, match=r"molecule 1: .*\(n_atoms, 3\)"):
        tiny_finetune.predict([(z, pos), (z, pos[:, :2])])
    with pytest.raises(TypeError, match="ase.Atoms"):
        tiny_finetune.predict("CO")


def test_module_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown target 'homo_lumo'.*homo"):
        PropertyFinetuneModule(target="homo_lumo", encoder=TINY)
    with pytest.raises(ValueError, match="sigma must be positive"):
        DenoisingPretrainModule(encoder=TINY, sigma=0.0)


def test_noisy_nodes_adds_the_denoising_loss_only_in_training(tiny_finetune) -> None:
    from torch_geometric.data import Batch, Data

    z, pos, _ = tiny_finetune.example_input_array
    data = Data(z=z, pos=pos, y=torch.tensor([-6400.0]), idx=torch.tensor([1]))
    batch = Batch.from_data_list([data, data])
    tiny_finetune.log = lambda *args, **kwargs: None  # no trainer attached
    torch.manual_seed(0)
    train = tiny_finetune._step(batch, "train")
    clean = tiny_finetune._step(batch, "val")
    x, _ = tiny_finetune.encoder(batch.z, batch.pos, batch.batch)
    pred = tiny_finetune.head(x, batch.batch)
    expected = ((pred - batch.y) / 600.0).pow(2).mean()
    assert clean.item() == pytest.approx(expected.item(), rel=1e-5)
    assert train.item() > 0.1 * 0.5  # the noise MSE of an untrained head is about 1


# --- the shipped weights -----------------------------------------------------------------------


def golden_outputs(name: str) -> dict[str, list[float]]:
    """What the shipped weights give on methanol and water. Rewrite the file after retraining
    with ``python tests/test_denoising_module.py``."""
    import zoo

    model = zoo.load(name)
    z, pos, batch = model.example_input_array
    out = {"noise": model.predict_noise(z, pos, batch).flatten().tolist()}
    if isinstance(model, PropertyFinetuneModule):
        out["homo"] = model.predict([(z, pos), WATER]).value.tolist()
    return out


@pytest.mark.parametrize("name", ["denoising.qm9-pretrain", "denoising.qm9-homo"])
def test_shipped_weights_match_golden_outputs(name: str, tmp_path: Path) -> None:
    import zoo
    from zoo.testing import assert_export_roundtrip

    model = zoo.load(name)
    assert model.zoo_origin.source == "bundled"
    assert_export_roundtrip(model, tmp_path / "copy")
    expected = json.loads(GOLDEN.read_text())[name]
    with torch.no_grad():
        for key, values in golden_outputs(name).items():
            assert values == pytest.approx(expected[key], rel=1e-4, abs=1e-4), key


def test_default_name_is_the_pretrained_encoder() -> None:
    import zoo

    model = zoo.load("denoising")
    assert isinstance(model, DenoisingPretrainModule)
    x, vec = model.embed(*model.example_input_array)
    width = model.encoder.embedding_dimension
    assert x.shape == (6, width) and vec.shape == (6, 3, width)


if __name__ == "__main__":
    with torch.no_grad():
        golden = {n: golden_outputs(n) for n in ("denoising.qm9-pretrain", "denoising.qm9-homo")}
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
