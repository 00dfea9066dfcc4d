"""Entry ``lamp``, the FNO baseline: shapes on both meshes, argument checks, shift
equivariance, the paper's metric on hand-made trajectories, export, and the smoke recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.lamp import mesh
from zoo.lamp.baseline import FNOBaseline
from zoo.lamp.simulate import bundle_error, bundles
from zoo.testing import assert_all_parameters_get_gradient, assert_export_roundtrip, run_zoo

REPO = Path(__file__).resolve().parent.parent


def small(stride: int = 4, **kwargs) -> FNOBaseline:
    torch.manual_seed(0)
    return FNOBaseline(stride=stride, **{"modes": 6, "width": 8, "layers": 2, **kwargs})


class _Trajectories:
    """The one method of ``LampDataModule`` that ``evaluate`` uses."""

    def __init__(self, frames: torch.Tensor) -> None:
        self.frames = frames

    def trajectories(self, split: str) -> torch.Tensor:
        return self.frames


@pytest.mark.parametrize(("stride", "n_vertices"), [(4, 25), (2, 50)])
def test_forward_keeps_the_mesh_and_bundle(stride: int, n_vertices: int) -> None:
    model = small(stride)
    assert model.n_vertices == n_vertices
    assert model(torch.randn(3, n_vertices, 25)).shape == (3, n_vertices, 25)
    assert model.example_input_array.shape == (1, n_vertices, 25)
    assert_all_parameters_get_gradient(model)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"FNOBaseline: modes 14 .* 13 for 25 vertices"):
        FNOBaseline(stride=4, modes=14)
    FNOBaseline(stride=4, modes=13, width=4, layers=1)  # the Nyquist mode is the last allowed
    with pytest.raises(ValueError, match="FNOBaseline: stride 3 must divide 100"):
        FNOBaseline(stride=3)


def test_shifting_the_mesh_shifts_the_prediction() -> None:
    """No position channel and a periodic FFT: the model commutes with periodic shifts."""
    model = small()
    values = torch.randn(2, 25, 25)
    with torch.no_grad():
        shifted = model(values.roll(3, dims=1))
        expected = model(values).roll(3, dims=1)
    torch.testing.assert_close(shifted, expected, rtol=1e-5, atol=1e-5)


def test_a_steady_field_costs_only_its_interpolation_error() -> None:
    """With a perfect model of a steady field (the identity), the cumulative error is the
    periodic linear interpolation error between the 25 vertices, summed over frames 50..249."""
    model = small()
    model.fno = torch.nn.Identity()
    x = np.arange(100)
    field = np.sin(2 * np.pi * x / 100) + 0.5 * np.cos(6 * np.pi * x / 100 + 1.0)
    frames = torch.tensor(field, dtype=torch.float32).expand(2, 250, 100)

    vertices = x[::4]
    interpolated = np.interp(x, vertices, field[vertices], period=100)
    expected = 200 * np.mean((interpolated - field) ** 2)

    error = model.cumulative_error(frames)
    np.testing.assert_allclose(error.numpy(), [expected, expected], rtol=1e-5)


@pytest.mark.parametrize("stride", [4, 2])
def test_evaluation_is_the_paper_metric(stride: int) -> None:
    """The logged value is the sum of ``bundle_error`` over the 8 autoregressive bundles
    from frames 25..49, each prediction placed on its mesh."""
    model = small(stride)
    frames = torch.randn(3, 250, 100, generator=torch.Generator().manual_seed(1))
    truth = bundles(frames, 25, 9, 25)
    mask = mesh.make_mask(f"uniform:{stride}", 3, 100)

    expected, state = torch.zeros(3), truth[0][:, ::stride]
    with torch.no_grad():
        for target in truth[1:]:
            state = model(state)
            dense = torch.zeros(3, 100, 25)
            dense[mask] = state.reshape(-1, 25)
            expected += bundle_error(dense, mask, target)

        torch.testing.assert_close(model.cumulative_error(frames), expected)
    (row,) = model.evaluate(_Trajectories(frames))
    assert row["name"] == f"FNO cumulative MSE, {100 // stride} vertices"
    assert row["value"] == pytest.approx(expected.mean().item(), rel=1e-5)
    assert row["dataset"] == "E2 Burgers, 3 test trajectories"


def test_export_round_trip(tmp_path: Path) -> None:
    """neuralop's non-tensor state-dict metadata is dropped: safetensors and strict loads."""
    model = small(2)
    assert "_metadata" not in model.state_dict()
    assert_export_roundtrip(model, tmp_path / "fno")


@pytest.mark.slow
def test_smoke_recipe_trains_and_tests(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    from zoo.export import load_checkpoint
    from zoo.recipes import datamodule_from_recipe

    recipe = REPO / "recipes" / "lamp" / "smoke_fno.yaml"
    env = {**subprocess_env, "ZOO_CACHE": str(tmp_path / "cache")}
    fit = run_zoo(
        ["fit", "--config", str(recipe), "--trainer.default_root_dir", str(tmp_path)],
        cwd=tmp_path,
        env=env,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    (checkpoint,) = tmp_path.rglob("*.ckpt")

    model, _ = load_checkpoint(checkpoint)
    data = datamodule_from_recipe(recipe, cache_dir=str(tmp_path / "cache" / "lamp"))
    (row,) = model.eval().evaluate(data)
    assert row["dataset"] == "E2 Burgers, 4 test trajectories"
    assert np.isfinite(row["value"]) and row["value"] > 0
