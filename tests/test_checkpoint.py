"""The export folder: round trip, strict loading, hashes, probe, atomic writes, cards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file
from torch import nn

from zoo.checkpoint import EXPORT_FILES, load_folder, save_pretrained, verify_probe
from zoo.errors import ChecksumError, ConfigMismatchError, ExportFolderError
from zoo.testing import (
    ToyRegressor,
    assert_all_parameters_get_gradient,
    assert_export_roundtrip,
    assert_finite,
    file_hashes,
)


class NotJSONArgs(nn.Module):
    """A plain module whose init args cannot be written to config.json."""

    def __init__(self, activation: nn.Module | None = None) -> None:
        super().__init__()
        self.init_args = {"activation": activation or nn.ReLU()}
        self.linear = nn.Linear(2, 2)


class TiedWeights(nn.Module):
    """Two names for one tensor, as PyG's SchNet has; ``save_file`` refuses these."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.init_args = {"width": width}
        self.encoder = nn.Linear(width, width, bias=False)
        self.decoder = nn.Linear(width, width, bias=False)
        self.decoder.weight = self.encoder.weight
        self.example_input_array = torch.eye(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.tanh(self.encoder(x)))


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    return save_pretrained(ToyRegressor(hidden=4), tmp_path / "toy", name="toy.demo")


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    torch.manual_seed(1)
    loaded = assert_export_roundtrip(ToyRegressor(hidden=6, activation="GELU"), tmp_path / "e")
    assert loaded.hparams.activation == "GELU" and not loaded.training
    assert loaded.zoo_origin.source == "folder"
    assert verify_probe(loaded)


def test_exports_are_byte_reproducible(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = ToyRegressor()
    first = save_pretrained(model, tmp_path / "a", name="toy.demo")
    second = save_pretrained(model, tmp_path / "b", name="toy.demo")
    assert file_hashes(first) == file_hashes(second)


def test_tied_tensors_survive_the_round_trip(tmp_path: Path) -> None:
    loaded = assert_export_roundtrip(TiedWeights(), tmp_path / "tied")
    assert loaded.decoder.weight is loaded.encoder.weight


def test_the_test_helpers_catch_what_they_should() -> None:
    model = ToyRegressor()
    frozen_out = nn.Linear(1, 1)  # a parameter outside the graph
    model.unused = frozen_out
    with pytest.raises(AssertionError, match="unused.weight.*gets no gradient"):
        assert_all_parameters_get_gradient(model)
    with pytest.raises(AssertionError, match="non-finite"):
        assert_finite((torch.ones(2), {"x": torch.tensor([1.0, float("nan")])}))


def test_folder_holds_exactly_the_export_files(exported: Path) -> None:
    assert sorted(p.name for p in exported.iterdir()) == sorted(EXPORT_FILES)
    config = json.loads((exported / "config.json").read_text())
    assert config["class_path"] == "zoo.testing.ToyRegressor"
    assert config["init_args"] == {"hidden": 4, "lr": 0.01, "activation": "Tanh"}
    assert {"torch", "python"} <= config["versions"].keys()
    record = json.loads((exported / "zoo.json").read_text())
    assert record["files"] == file_hashes(exported)
    assert record["probe"]["input"]["shape"] == [5, 1]


def test_card_front_matter_holds_the_model_index(tmp_path: Path) -> None:
    folder = save_pretrained(
        ToyRegressor(),
        tmp_path / "m",
        name="toy.demo",
        metrics=[{"name": "MSE", "value": 0.25, "dataset": "sin(2x) grid", "unit": ""}],
    )
    card = ModelCard.load(folder / "README.md")
    (result,) = card.data.eval_results
    assert (result.metric_name, result.metric_value) == ("MSE", 0.25)
    assert result.dataset_name == "sin(2x) grid"
    assert "| MSE | sin(2x) grid | 0.25" in card.text


def test_corrupted_weights_are_refused(exported: Path) -> None:
    tensors = load_file(exported / "model.safetensors")
    tensors["net.0.bias"] += 1.0
    save_file(tensors, exported / "model.safetensors")
    with pytest.raises(ChecksumError, match=r"model.safetensors is corrupted.*zoo.json expects"):
        load_folder(exported)


def test_registry_hashes_are_checked(exported: Path) -> None:
    pins = {**file_hashes(exported), "config.json": "f" * 64}
    with pytest.raises(ChecksumError, match="config.json is corrupted.*the registry expects"):
        load_folder(exported, expected_files=pins)


def test_wrong_class_path_is_refused(exported: Path) -> None:
    with pytest.raises(ConfigMismatchError, match="describes 'zoo.testing.ToyRegressor'"):
        load_folder(exported, expected_class="zoo.lamp.LAMP")


def test_unimportable_class_path_is_explained(exported: Path) -> None:
    config = json.loads((exported / "config.json").read_text())
    config["class_path"] = "zoo.testing.NoSuchModel"
    (exported / "config.json").write_text(json.dumps(config))
    (exported / "zoo.json").unlink()
    with pytest.raises(ConfigMismatchError, match="defines no class 'NoSuchModel'"):
        load_folder(exported)


def test_loading_is_strict(exported: Path) -> None:
    tensors = load_file(exported / "model.safetensors")
    tensors["extra"] = torch.zeros(1)
    save_file(tensors, exported / "model.safetensors")
    (exported / "zoo.json").unlink()
    with pytest.raises(ConfigMismatchError, match="extra"):
        load_folder(exported)
    del tensors["extra"], tensors["net.2.bias"]
    save_file(tensors, exported / "model.safetensors")
    with pytest.raises(ConfigMismatchError, match=r"net\.2\.bias"):
        load_folder(exported)


def test_probe_detects_a_changed_module(exported: Path) -> None:
    model = load_folder(exported)
    with torch.no_grad():
        model.net[2].bias += 0.1
    with pytest.raises(ChecksumError, match="does not reproduce the probe"):
        verify_probe(model)


def test_non_json_init_args_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ExportFolderError, match="init arg 'activation'.*is not JSON"):
        save_pretrained(NotJSONArgs(), tmp_path / "x", name="x.y")
    assert list(tmp_path.iterdir()) == []


def test_failed_export_leaves_nothing_behind(tmp_path: Path) -> None:
    class Broken(ToyRegressor):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_pretrained(Broken(), tmp_path / "broken", name="b.c")
    assert list(tmp_path.iterdir()) == []


def test_existing_folders_are_kept_unless_overwritten(exported: Path) -> None:
    before = file_hashes(exported)
    with pytest.raises(ExportFolderError, match="already exists"):
        save_pretrained(ToyRegressor(hidden=4), exported, name="toy.demo")
    assert file_hashes(exported) == before
    torch.manual_seed(5)
    save_pretrained(ToyRegressor(hidden=4), exported, name="toy.demo", overwrite=True)
    assert file_hashes(exported) != before
    assert [p.name for p in exported.parent.iterdir()] == ["toy"]


def test_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportFolderError, match="lacks config.json, model.safetensors"):
        load_folder(tmp_path / "empty")
