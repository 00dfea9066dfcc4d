"""Bundled weights load from an installed wheel, not only from a source checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.checkpoint import save_pretrained
from zoo.testing import ToyRegressor, file_hashes

REPO = Path(__file__).resolve().parent.parent

LOAD_FROM_WHEEL = """
import sys
import zoo
from zoo.registry import Entry, Paper, Weights, register
register(Entry(
    name="toy", paper=Paper("A toy", ("A. Author",), "0000.00000"),
    module="zoo.testing.ToyRegressor", datamodule="zoo.testing.ToyDataModule",
    weights=(Weights(tag="demo", description="toy", recipe="toy.yaml", files={files!r}),),
))
model = zoo.load("toy")
print(zoo.__file__)
print(model.zoo_origin.source, model.zoo_origin.path)
"""


@pytest.mark.slow
def test_bundled_weights_load_from_an_installed_wheel(tmp_path: Path, subprocess_env) -> None:
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "__pycache__",
            "*.ckpt",
            "lightning_logs",
            "showcase",
            "tests",
            "notebooks",
            "benchmarks",
        ),
    )
    torch.manual_seed(0)
    folder = save_pretrained(ToyRegressor(), source / "checkpoints" / "toy.demo", name="toy.demo")

    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", source],
        check=True,
        env=subprocess_env,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("zoo-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", site, wheel],
        check=True,
        env=subprocess_env,
        timeout=300,
    )

    env = {**subprocess_env, "PYTHONPATH": str(site)}
    env.pop("ZOO_CHECKPOINTS", None)
    code = LOAD_FROM_WHEEL.format(files=file_hashes(folder))
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    module_file, origin = out.stdout.strip().splitlines()
    assert module_file.startswith(str(site)), f"imported zoo from {module_file}, not the wheel"
    source_kind, path = origin.split(" ", 1)
    assert source_kind == "bundled"
    assert path == str(site / "zoo" / "_data" / "checkpoints" / "toy.demo")
