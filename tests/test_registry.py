"""The registry: schema, names, patterns, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import zoo
from zoo import registry
from zoo.errors import RegistryError, UnknownModelError
from zoo.registry import Entry, Paper, Weights
from zoo.testing import file_hashes

REPO = Path(__file__).resolve().parent.parent
SHA = "0" * 64
PAPER = Paper(title="T", authors=("A",), arxiv="1234.56789")


def make_entry(name: str = "demo-entry", tags: tuple[str, ...] = ("a", "b"), **kw) -> Entry:
    weights = tuple(
        Weights(
            tag=t,
            description=f"tag {t}",
            recipe="x.yaml",
            files={"config.json": SHA, "model.safetensors": SHA},
        )
        for t in tags
    )
    fields = {
        "name": name,
        "paper": PAPER,
        "module": "pkg.Mod",
        "datamodule": "pkg.Data",
        "weights": weights,
        **kw,
    }
    return Entry(**fields)


@pytest.mark.parametrize("entry", registry.entries(), ids=lambda e: e.name)
def test_registered_entries_follow_the_schema(entry: Entry) -> None:
    assert entry.name in {"dsp", "fab", "lamp", "kernel-operator", "nlsb", "denoising", "mars"}
    assert (REPO / "model_cards" / f"{entry.name}.md").is_file(), "every entry has a card"
    for weights in entry.weights:
        name = f"{entry.name}.{weights.tag}"
        assert registry.info(name)["module"].startswith(entry.package + ".")
        assert (REPO / "recipes" / weights.recipe).is_file(), f"{name}: no recipe"
        bundled = REPO / "checkpoints" / name
        assert bundled.is_dir() or weights.repo_id, f"{name}: neither bundled nor on the Hub"
        if bundled.is_dir():
            assert file_hashes(bundled) == dict(weights.files), f"{name}: stale sha256 pins"
            config = json.loads((bundled / "config.json").read_text())
            assert config["class_path"] == entry.module_path(weights)
        for metric in weights.metrics:
            assert metric.command, f"{name}: say which command measured {metric.name!r}"


def test_bare_name_is_the_default_tag() -> None:
    with_default = make_entry(default_tag="b")
    registry.register(with_default)
    try:
        assert registry.get("demo-entry")[1].tag == "b"
        assert registry.get("demo-entry.a")[1].tag == "a"
        assert registry.info("demo-entry")["name"] == "demo-entry.b"
    finally:
        registry.unregister("demo-entry")


def test_list_models_with_patterns() -> None:
    registry.register(make_entry("alpha", ("x", "y")))
    registry.register(make_entry("beta", ("x",)))
    try:
        assert zoo.list_models("alpha*") == ["alpha.x", "alpha.y"]
        assert zoo.list_models("*.x") == ["alpha.x", "beta.x"]
        assert zoo.list_models("alpha") == ["alpha.x", "alpha.y"]
        assert zoo.list_models("gamma*") == []
        assert {"alpha.x", "alpha.y", "beta.x"} <= set(zoo.list_models())
    finally:
        registry.unregister("alpha")
        registry.unregister("beta")


def test_unknown_names_suggest_the_closest() -> None:
    registry.register(make_entry("kernel-op-demo", ("varcoef1d", "powerlaw")))
    try:
        with pytest.raises(UnknownModelError, match="did you mean 'kernel-op-demo.varcoef1d'"):
            zoo.info("kernel-op-demo.varcoef")
        with pytest.raises(UnknownModelError, match="did you mean"):
            zoo.info("kernel-op-dem")
        with pytest.raises(KeyError):  # it is also a KeyError, as lookups usually raise
            zoo.info("nothing-like-it")
    finally:
        registry.unregister("kernel-op-demo")


def test_duplicate_registration_raises() -> None:
    registry.register(make_entry("twice"))
    try:
        with pytest.raises(RegistryError, match="already registered"):
            registry.register(make_entry("twice"))
    finally:
        registry.unregister("twice")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Bad_Name"}, "lower-case"),
        ({"module": "NotDotted"}, "dotted class path"),
        ({"weights": ()}, "at least one weight set"),
        ({"default_tag": "zzz"}, "default tag"),
        ({"tags": ("a", "a")}, "duplicate tags"),
    ],
)
def test_malformed_entries_are_refused(change: dict, message: str) -> None:
    tags = change.pop("tags", ("a",))
    with pytest.raises(RegistryError, match=message):
        make_entry(tags=tags, **change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"files": {"config.json": SHA}}, "model.safetensors"),
        ({"files": {"config.json": "abc", "model.safetensors": SHA}}, "sha256"),
        ({"status": "done"}, "status"),
        ({"repo_id": "org/x"}, "pinned revision"),
        ({"tag": "Has Space"}, "tags are"),
    ],
)
def test_malformed_weights_are_refused(change: dict, message: str) -> None:
    weights = dataclasses.replace(make_entry().weights[0], **change)
    with pytest.raises(RegistryError, match=message):
        make_entry(weights=(weights,))


def test_info_is_plain_json(toy_entry: Entry) -> None:
    data = zoo.info("toy")
    assert json.loads(json.dumps(data)) == data
    assert data["name"] == "toy.demo" and data["default"] is True
    assert data["metrics"][0] == {
        "name": "mse",
        "value": 0.5,
        "unit": "",
        "dataset": "sin(2x)",
        "paper": 0.1,
        "command": "",
    }
    assert data["paper"]["url"] == "https://arxiv.org/abs/0000.00000"
