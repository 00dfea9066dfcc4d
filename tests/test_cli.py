"""The ``zoo`` command: registry commands, export, publish, cache, evaluate, training, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.cli import main
from zoo.registry import Entry
from zoo.testing import run_zoo

REPO = Path(__file__).resolve().parent.parent
TOY = REPO / "tests" / "data" / "toy.yaml"
HEAVY = ("torch", "lightning", "torch_geometric", "e3nn", "transformers")


def error_line(capsys) -> str:
    """The command's stderr, which must be exactly one line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, f"expected one line on stderr, got: {err}"
    assert "Traceback" not in err[0]
    return err[0]


def test_import_and_list_stay_light(subprocess_env: dict[str, str], tmp_path: Path) -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import zoo; "
        "from zoo.cli import main; main(['list']); main(['list', 'lamp*', '--json']); "
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; "
        "print('HEAVY', heavy, 'SECONDS', time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    heavy, seconds = out.split("HEAVY ")[1].split(" SECONDS ")
    assert heavy == "[]", f"`import zoo` and `zoo list` imported {heavy}"
    assert float(seconds) < 1.0


def test_list_and_info(toy_entry: Entry, capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "toy.demo*" in out and "cpu-scale" in out
    assert main(["list", "toy*", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == ["toy.demo"]
    assert main(["info", "toy"]) == 0
    out = capsys.readouterr().out
    assert "zoo.testing.ToyRegressor" in out and "A toy" in out and "0.1" in out
    assert main(["info", "toy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["repo_id"] == "zoo-test/toy-demo"


def test_evaluate_prints_ours_next_to_the_paper(toy_entry: Entry, capsys) -> None:
    assert main(["evaluate", "toy"]) == 0
    out = capsys.readouterr().out
    (row,) = [line.split() for line in out.splitlines() if line.startswith("mse")]
    assert row[-1] == "0.1"  # the paper's number, from the registry
    assert main(["evaluate", "toy", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["value"] == pytest.approx(zoo.load("toy").evaluate()[0]["value"])
    assert float(row[-2]) == pytest.approx(result["value"], rel=1e-3)


def test_showcase_runs_every_entry(toy_entry: Entry, tmp_path: Path, capsys) -> None:
    assert main(["showcase", "--out", str(tmp_path / "plots"), "--pattern", "toy*"]) == 0
    out = capsys.readouterr().out
    assert "toy.demo" in out and "probe" in out and "bundled" in out


def test_cache_import_then_load(toy_entry: Entry, tmp_path: Path, capsys) -> None:
    folder = shutil.move(zoo.load("toy").zoo_origin.path, tmp_path / "copied-here")
    assert main(["cache", "import", str(folder), "--repo-id", "zoo-test/toy-demo"]) == 0
    assert "imported" in capsys.readouterr().out
    assert zoo.load("toy").zoo_origin.source == "cache"


def test_publish_dry_run(toy_entry: Entry, capsys) -> None:
    folder = zoo.load("toy").zoo_origin.path
    assert main(["publish", folder, "--repo-id", "org/toy", "--dry-run"]) == 0
    assert "would upload to org/toy: config.json, model.safetensors" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["info", "no-such-model"],
        ["evaluate", "no-such-model"],
        ["download", "no-such-model"],
        ["export", "missing.ckpt", "--out", "x"],
        ["publish", "missing-folder", "--repo-id", "org/x", "--dry-run"],
        ["cache", "import", "missing-folder", "--repo-id", "org/x"],
        ["fit", "--config", "missing.yaml"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_bad_input_is_one_line(args: list[str], tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    line = error_line(capsys)
    assert line.startswith(f"zoo {args[0]}: error:")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize(
    ("recipe", "expected"),
    [
        ("trainer:\n  max_epochs: [1\n", "Problems parsing config"),
        ("trainer:\n  no_such_option: 1\n", "no_such_option"),
        ("model:\n  class_path: zoo.testing.NoSuchModel\n", "no attribute 'NoSuchModel'"),
        (
            "model:\n  class_path: zoo.testing.ToyRegressor\n  init_args:\n    hidden: wide\n",
            'Parser key "hidden"',
        ),
    ],
    ids=["yaml", "option", "class", "argument"],
)
def test_malformed_recipes_are_one_line(recipe: str, expected: str, tmp_path: Path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe)
    assert main(["fit", "--config", str(path)]) == 2
    assert expected in error_line(capsys)


def test_export_refuses_non_checkpoints(tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    assert main(["export", str(bogus), "--out", str(tmp_path / "out")]) == 2
    assert "cannot be read as a checkpoint" in error_line(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_fit_then_export_through_the_cli(subprocess_env, tmp_path: Path) -> None:
    root = tmp_path / "run"
    fit = run_zoo(
        ["fit", "--config", str(TOY), "--trainer.default_root_dir", str(root)],
        cwd=tmp_path,
        env=subprocess_env,
    )
    assert fit.returncode == 0, fit.stderr
    (ckpt,) = root.glob("checkpoints/*.ckpt")
    out = tmp_path / "toy.demo"
    export = run_zoo(["export", str(ckpt), "--out", str(out)], cwd=tmp_path, env=subprocess_env)
    assert export.returncode == 0, export.stderr
    record = json.loads((out / "zoo.json").read_text())
    assert record["provenance"]["seed"] == 7
    assert record["provenance"]["data_fingerprint"].startswith("sha256:")
    (metric,) = record["metrics"]  # measured by the module's evaluate() at export
    assert metric["name"] == "mse" and metric["value"] == zoo.load(out).evaluate()[0]["value"]
    assert "seed_everything: 7" in (out / "recipe.yaml").read_text()
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    model = zoo.load(out)
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[key])


@pytest.mark.slow
def test_ddp_ranks_end_with_identical_weights(subprocess_env, tmp_path: Path) -> None:
    root = tmp_path / "ddp"
    start = time.perf_counter()
    fit = run_zoo(
        [
            "fit",
            "--config",
            str(TOY),
            "--config",
            str(REPO / "tests/data/toy_ddp.yaml"),
            "--trainer.default_root_dir",
            str(root),
        ],
        cwd=tmp_path,
        env=subprocess_env,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    ranks = [load_file(root / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), f"{key} differs between ranks"
    assert time.perf_counter() - start < 240
