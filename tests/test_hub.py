"""``zoo.load``'s resolution: folders, bundled weights, the Hugging Face cache, the Hub."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch
from huggingface_hub import CommitInfo, HfApi

import zoo
from zoo import hub, registry
from zoo._paths import checkpoints_root
from zoo.checkpoint import save_pretrained
from zoo.errors import (
    ChecksumError,
    ExportFolderError,
    UnknownModelError,
    WeightsNotFoundError,
)
from zoo.registry import Entry
from zoo.testing import ToyRegressor, file_hashes


def bundled(entry: Entry) -> Path:
    return checkpoints_root() / f"{entry.name}.{entry.default.tag}"


def move_to_cache(entry: Entry, cache: Path, **kwargs) -> str:
    """Files the bundled folder into the cache layout and removes the bundled copy."""
    folder = bundled(entry)
    commit = hub.cache_import(folder, entry.weights[0].repo_id, cache_dir=cache, **kwargs)
    shutil.rmtree(folder)
    return commit


def repin(entry: Entry, **changes) -> None:
    """Replaces the registered toy entry's weight set (frozen dataclasses, so re-register)."""
    registry.unregister(entry.name)
    weights = dataclasses.replace(entry.weights[0], **changes)
    registry.register(dataclasses.replace(entry, weights=(weights,)))


def test_bundled_weights_load_first(toy_entry: Entry) -> None:
    model = zoo.load("toy")
    assert isinstance(model, ToyRegressor) and not model.training
    assert model.zoo_origin.source == "bundled"
    assert model.zoo_origin.name == "toy.demo"
    assert model.zoo_origin.path == str(bundled(toy_entry))


def test_a_folder_path_is_loaded_as_is(toy_entry: Entry, tmp_path: Path) -> None:
    folder = shutil.copytree(bundled(toy_entry), tmp_path / "copy")
    model = zoo.load(folder)
    assert model.zoo_origin.source == "folder"
    with pytest.raises(WeightsNotFoundError, match="no such folder"):
        zoo.load(str(tmp_path / "missing" / "x"))


def test_pretrained_false_builds_from_the_registered_args(toy_entry: Entry) -> None:
    model = zoo.load("toy", pretrained=False)
    assert model.hparams.hidden == 8
    assert model.zoo_origin.source == "init"


def test_bundled_weights_are_hash_checked(toy_entry: Entry) -> None:
    config = bundled(toy_entry) / "config.json"
    config.write_text(config.read_text().replace('"hidden": 8', '"hidden": 8 '))
    with pytest.raises(ChecksumError, match="config.json is corrupted"):
        zoo.load("toy")


def test_cache_by_branch_tag_and_commit(toy_entry: Entry, hf_cache: Path) -> None:
    commit = move_to_cache(toy_entry, hf_cache, tags=("v1",))
    assert zoo.load("toy").zoo_origin.source == "cache"  # registry pins "main"
    for revision in ("main", "v1", commit):
        model = zoo.load("toy.demo", revision=revision)
        assert model.zoo_origin.source == "cache"
        assert model.zoo_origin.revision == revision
        assert Path(model.zoo_origin.path).name == commit


def test_cache_layout_is_the_real_one(toy_entry: Entry, hf_cache: Path) -> None:
    commit = move_to_cache(toy_entry, hf_cache)
    repo = hf_cache / "models--zoo-test--toy-demo"
    assert (repo / "refs" / "main").read_text() == commit
    link = repo / "snapshots" / commit / "model.safetensors"
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    path = huggingface_hub.hf_hub_download(
        "zoo-test/toy-demo", "config.json", revision="main", local_files_only=True
    )
    assert Path(path).read_text().startswith("{")


def test_a_missing_revision_is_a_clear_error(toy_entry: Entry, hf_cache: Path) -> None:
    move_to_cache(toy_entry, hf_cache)
    with pytest.raises(WeightsNotFoundError) as error:
        zoo.load("toy", revision="v9")
    message = str(error.value)
    assert "no zoo-test/toy-demo at revision 'v9'" in message
    assert "bundled weights: skipped" in message
    assert "not asked (offline" in message


def test_order_of_resolution(toy_entry: Entry, hf_cache: Path, tmp_path: Path) -> None:
    # A different model in the cache under the pinned revision...
    torch.manual_seed(42)
    other = save_pretrained(ToyRegressor(hidden=8), tmp_path / "other", name="toy.demo")
    commit = hub.cache_import(other, "zoo-test/toy-demo", cache_dir=hf_cache)
    # ...loses against the bundled folder, which comes first,
    assert zoo.load("toy").zoo_origin.source == "bundled"
    # while asking for its commit skips the bundled weights (and the registry pins, which
    # belong to the pinned revision).
    model = zoo.load("toy", revision=commit)
    assert model.zoo_origin.source == "cache"
    bundled_model = zoo.load("toy")
    assert not torch.equal(model.net[0].weight, bundled_model.net[0].weight)
    # The pinned revision's hashes are checked in the cache too.
    shutil.rmtree(bundled(toy_entry))
    with pytest.raises(ChecksumError, match="the registry expects"):
        zoo.load("toy")


def test_nothing_found_lists_every_place(toy_entry: Entry, monkeypatch) -> None:
    shutil.rmtree(bundled(toy_entry))
    with pytest.raises(WeightsNotFoundError) as error:
        zoo.load("toy")
    message = str(error.value)
    for place in ("bundled weights: no folder", "Hugging Face cache", "Hugging Face Hub"):
        assert place in message
    assert "zoo download toy.demo" in message


def test_the_hub_is_asked_only_when_online(toy_entry: Entry, monkeypatch) -> None:
    shutil.rmtree(bundled(toy_entry))
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        raise huggingface_hub.errors.LocalEntryNotFoundError("not here")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    with pytest.raises(WeightsNotFoundError):
        zoo.load("toy")
    assert calls == [True]  # offline: the cache only
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls.clear()
    with pytest.raises(WeightsNotFoundError, match="Hugging Face Hub zoo-test/toy-demo@main"):
        zoo.load("toy")
    assert calls == [True, False]  # online: the cache, then the Hub
    calls.clear()
    with pytest.raises(WeightsNotFoundError):
        zoo.load("toy", local_files_only=True)
    assert calls == [True]


def test_unknown_names_are_not_paths(toy_entry: Entry) -> None:
    with pytest.raises(UnknownModelError, match="did you mean 'toy.demo'"):
        zoo.load("toy.dem")


@pytest.fixture
def fake_hub(monkeypatch, hf_cache: Path) -> list[str]:
    """``HfApi``'s write calls, patched to file the upload into the local cache."""
    calls: list[str] = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(f"create_repo {repo_id} exist_ok={kwargs.get('exist_ok')}")

    def upload_folder(self, *, repo_id, folder_path, allow_patterns, **kwargs):
        staged = hf_cache.parent / "staged"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir()
        for name in allow_patterns:
            shutil.copy(Path(folder_path) / name, staged / name)
        commit = hub.cache_import(staged, repo_id, cache_dir=hf_cache)
        calls.append(f"upload_folder {sorted(allow_patterns)}")
        url = f"https://huggingface.co/{repo_id}/commit/{commit}"
        return CommitInfo(commit_url=url, commit_message="", commit_description="", oid=commit)

    def create_tag(self, repo_id, *, tag, revision, **kwargs):
        ref = hf_cache / f"models--{repo_id.replace('/', '--')}" / "refs" / tag
        ref.write_text(revision)
        calls.append(f"create_tag {tag}")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(HfApi, "create_tag", create_tag)
    return calls


def test_publish_then_load_from_the_cache(toy_entry: Entry, fake_hub: list[str]) -> None:
    folder = bundled(toy_entry)
    (folder / "notes.txt").write_text("private notes, not for the Hub")
    result = hub.publish(folder, "zoo-test/toy-demo", tag="v1")
    assert fake_hub == [
        "create_repo zoo-test/toy-demo exist_ok=True",
        "upload_folder ['README.md', 'config.json', 'model.safetensors', 'recipe.yaml', "
        "'zoo.json']",
        "create_tag v1",
    ]
    shutil.rmtree(folder)
    repin(toy_entry, revision=result.commit)
    model = zoo.load("toy")
    assert model.zoo_origin.source == "cache" and model.zoo_origin.revision == result.commit
    assert not (Path(model.zoo_origin.path) / "notes.txt").exists()
    assert zoo.load("toy", revision="v1").zoo_origin.source == "cache"


def test_publish_dry_run_sends_nothing(toy_entry: Entry, fake_hub: list[str]) -> None:
    result = hub.publish(bundled(toy_entry), "zoo-test/toy-demo", dry_run=True)
    assert result.dry_run and result.commit is None and fake_hub == []
    assert "model.safetensors" in result.files


def test_publish_refuses_incomplete_folders(toy_entry: Entry, fake_hub: list[str]) -> None:
    (bundled(toy_entry) / "recipe.yaml").unlink()
    with pytest.raises(ExportFolderError, match="lacks recipe.yaml"):
        hub.publish(bundled(toy_entry), "zoo-test/toy-demo")
    assert fake_hub == []


def test_registry_pins_match_the_bundled_files(toy_entry: Entry) -> None:
    assert dict(toy_entry.weights[0].files) == file_hashes(bundled(toy_entry))


def test_online_load_and_download_go_through_snapshot_download(
    toy_entry: Entry, hf_cache: Path, monkeypatch
) -> None:
    """Online, a cache miss is followed by a Hub download (here, a fake one that files the
    bundled folder into the cache as the real one would)."""
    source = shutil.move(bundled(toy_entry), hf_cache.parent / "remote")
    real = huggingface_hub.snapshot_download

    def fake_snapshot_download(repo_id, *, revision, local_files_only=False, **kwargs):
        if not local_files_only:
            hub.cache_import(source, repo_id, revision=revision, cache_dir=hf_cache)
        return real(repo_id, revision=revision, local_files_only=True, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    model = zoo.load("toy")
    assert model.zoo_origin.source == "hub"
    assert zoo.load("toy").zoo_origin.source == "cache"  # the second time, from the cache
    assert (hub.download("toy") / "model.safetensors").is_file()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsNotFoundError, match="HF_HUB_OFFLINE is set"):
        hub.download("toy")
