"""Entry ``kernel-operator``: the basis, the closed form, the rates, the shipped weights."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

import zoo
from zoo.kernel_operator import KernelOperator, LinearOperatorDataModule, fourier, make_task
from zoo.kernel_operator.rates import SAMPLE_SIZES, fit_slope, oracle_exact, theory
from zoo.kernel_operator.solve import Regularisation, Statistics, fit, level_sse_ridge, tune
from zoo.testing import assert_export_roundtrip, assert_finite, run_zoo

REPO = Path(__file__).resolve().parent.parent


def band_limited(m: int, frequencies: int = 20, seed: int = 0) -> torch.Tensor:
    """A random trigonometric polynomial of degree < ``frequencies`` on an ``m``-point grid."""
    generator = torch.Generator().manual_seed(seed)
    c = torch.randn(2 * frequencies, generator=generator, dtype=torch.float64)
    x = torch.arange(m, dtype=torch.float64) / m
    f = c[0] * torch.ones_like(x)
    for k in range(1, frequencies):
        f = (
            f
            + c[2 * k - 1] * torch.cos(2 * math.pi * k * x)
            + c[2 * k] * torch.sin(2 * math.pi * k * x)
        )
    return f


@pytest.fixture(scope="module")
def varcoef_data() -> tuple[torch.Tensor, torch.Tensor]:
    task = make_task("varcoef", 32)
    return task.sample(512, torch.Generator().manual_seed(0), noisy=True)


# --- the basis ---------------------------------------------------------------------------------


def test_rfft_round_trip_and_orthonormality() -> None:
    u = torch.randn(4, 24, dtype=torch.float64)
    assert torch.allclose(fourier.from_coefficients(fourier.to_coefficients(u), 24), u, atol=1e-13)
    basis = fourier.basis(24)[:-1]  # the Nyquist cosine is √2 cos on the grid, norm² 2
    assert torch.allclose(basis @ basis.T / 24, torch.eye(23, dtype=torch.float64), atol=1e-12)
    x = torch.arange(32, dtype=torch.float64) / 32
    f = 0.5 + math.sqrt(2) * torch.sin(2 * math.pi * 3 * x)
    expected = torch.zeros(32, dtype=torch.float64)
    expected[0], expected[6] = 0.5, 1.0  # mode 7 = sin of frequency 3
    assert torch.allclose(fourier.to_coefficients(f), expected, atol=1e-13)
    assert fourier.levels(8).tolist() == [0, 1, 1, 2, 2, 2, 2, 3]


def test_coefficients_do_not_depend_on_the_grid() -> None:
    coarse, fine = band_limited(64), band_limited(256)
    assert torch.allclose(
        fourier.to_coefficients(coarse), fourier.to_coefficients(fine, 64), atol=1e-12
    )


# --- the closed form ---------------------------------------------------------------------------


def test_closed_form_matches_a_numpy_ridge() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(200, 16, generator=generator, dtype=torch.float64)
    y = torch.randn(200, 16, generator=generator, dtype=torch.float64)
    levels = fourier.levels(16)
    reg = Regularisation("ridge", 1e-2, 1.5, max_level=4)  # 16 outputs: levels 0 ... 4
    w = fit(Statistics.of(x, y), levels, reg).numpy()
    xn, yn = x.numpy(), y.numpy()
    for j in range(16):
        lam = 1e-2 * 2 ** (1.5 * levels[j].item())
        expected = np.linalg.solve(xn.T @ xn + 200 * lam * np.eye(16), xn.T @ yn[:, j])
        np.testing.assert_allclose(w[j], expected, rtol=1e-8, atol=1e-10)
    cut = fit(Statistics.of(x, y), levels, Regularisation("ridge", 1e-2, 1.5, max_level=2))
    assert (cut[7:] == 0).all() and (cut[:7] != 0).all()  # levels 0-2 are modes 1-7


def test_cutoff_is_least_squares_on_leading_inputs() -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(100, 16, generator=generator, dtype=torch.float64)
    y = torch.randn(100, 8, generator=generator, dtype=torch.float64)
    levels = fourier.levels(8)
    reg = Regularisation("cutoff", 8.0, 1.0, max_level=3)
    w = fit(Statistics.of(x, y), levels, reg).numpy()
    for j in range(8):
        n_kept = reg.cutoff(int(levels[j]))
        expected = np.linalg.lstsq(x[:, :n_kept].numpy(), y[:, j].numpy(), rcond=None)[0]
        np.testing.assert_allclose(w[j, :n_kept], expected, rtol=1e-9)
        assert (w[j, n_kept:] == 0).all()


def test_hold_out_errors_come_from_gram_quantities_alone() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(120, 8, generator=generator, dtype=torch.float64)
    y = x @ torch.randn(8, 8, generator=generator, dtype=torch.float64) + 0.1 * torch.randn(
        120, 8, generator=generator, dtype=torch.float64
    )
    train, val = Statistics.of(x[:90], y[:90]), Statistics.of(x[90:], y[90:])
    levels = fourier.levels(8)
    lambdas = torch.tensor([1e-3, 1e-1], dtype=torch.float64)
    table = level_sse_ridge(train, val, levels, lambdas)
    for i, lam in enumerate(lambdas.tolist()):
        w = fit(train, levels, Regularisation("ridge", lam, 0.0, max_level=3))
        sse = ((y[90:] - x[90:] @ w.T) ** 2).sum(0)
        per_level = torch.zeros(4, dtype=torch.float64).index_add_(0, levels, sse)
        assert torch.allclose(table[:, i], per_level, rtol=1e-9)
    reg, _ = tune(train, val, levels, "ridge", single=False)
    assert reg.max_level == 3  # every output carries signal here


def test_resolution_invariance_on_band_limited_inputs(varcoef_data) -> None:
    model = KernelOperator(n_in=32, n_out=32).fit_closed_form(*varcoef_data)
    coarse, fine = band_limited(32, frequencies=12), band_limited(128, frequencies=12)
    with torch.no_grad():
        assert torch.allclose(model(fine)[::4], model(coarse), atol=1e-6)


def test_gradient_mode_matches_the_closed_form(varcoef_data) -> None:
    f, u = varcoef_data
    closed = KernelOperator(n_in=32, n_out=32).fit_closed_form(f, u)
    reg = closed.regularisation
    gradient = KernelOperator(
        n_in=32, n_out=32, lam0=reg.scale, rho=reg.slope, max_level=reg.max_level, mode="gradient"
    )
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(f, u), batch_size=512)
    trainer = pl.Trainer(
        max_epochs=8,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(gradient, loader)
    relative = (gradient.W - closed.W).norm() / closed.W.norm()
    assert relative < 1e-3, f"gradient mode is {relative:.2e} away from the closed form"


def test_single_level_is_one_shared_filter(varcoef_data) -> None:
    model = KernelOperator(n_in=32, n_out=32, levels="single").fit_closed_form(*varcoef_data)
    assert model.regularisation.slope == 0.0
    kept = model.support_mask()[model.level <= model.regularisation.max_level]
    assert (kept == kept[0]).all()


def test_cutoff_support_is_a_staircase(varcoef_data) -> None:
    model = KernelOperator(n_in=32, n_out=32, filter="cutoff", kappa=1.0)
    model.fit_closed_form(*varcoef_data)
    counts = model.support_mask().sum(1)
    assert (counts[1:] <= counts[:-1]).all(), "fewer inputs are learned at higher outputs"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (torch.zeros(2, 31), "even grid"),
        (torch.zeros(16), "at least n_in = 32"),
        (torch.full((32,), float("nan")), "NaN or infinite"),
        (torch.zeros(1, 2, 32), "grid values, got shape"),
        ([0.0] * 32, "torch.Tensor"),
    ],
)
def test_bad_input_is_explained(value, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        KernelOperator(n_in=32, n_out=32)(value)


def test_bad_arguments_are_explained() -> None:
    with pytest.raises(ValueError, match="filter must be one of"):
        KernelOperator(filter="lasso")
    with pytest.raises(ValueError, match="mode='gradient'"):
        KernelOperator(mode="gradient")
    with pytest.raises(ValueError, match="unknown task 'darcy'"):
        LinearOperatorDataModule(task="darcy")


# --- the data ----------------------------------------------------------------------------------


def test_tasks_and_their_exact_risk() -> None:
    varcoef = make_task("varcoef", 64)
    off_diagonal = (varcoef.operator - torch.diag(torch.diagonal(varcoef.operator))) ** 2
    assert (off_diagonal @ varcoef.input_variance).sum() / varcoef.energy() > 1e-3
    poisson = make_task("poisson", 64)
    assert torch.equal(poisson.operator, torch.diag(torch.diagonal(poisson.operator)))
    # The exact risk is the expectation that sampling estimates.
    w = poisson.operator * 0.9
    f, u = poisson.sample(20000, torch.Generator().manual_seed(0), noisy=False)
    sampled = ((fourier.to_coefficients(u) - fourier.to_coefficients(f) @ w.T) ** 2).sum(1)
    assert sampled.mean() == pytest.approx(poisson.risk(w), rel=0.03)


def test_varcoef_solves_its_equation() -> None:
    task = make_task("varcoef", 256)
    f, u = task.sample(1, torch.Generator().manual_seed(0), noisy=False)
    h = 1 / 256
    x = (torch.arange(256, dtype=torch.float64) + 0.5) * h
    kappa = (1 + 0.6 * torch.sin(2 * math.pi * x) + 0.3 * torch.cos(6 * math.pi * x)) / (
        4 * math.pi**2
    )
    flux = kappa * (torch.roll(u[0], -1) - u[0]) / h  # at i + 1/2
    residual = -(flux - torch.roll(flux, 1)) / h + u[0] - f[0]
    assert residual.abs().max() < 1e-8 * f.abs().max()


def test_datamodule_is_deterministic() -> None:
    first = LinearOperatorDataModule(task="heat", grid_size=16, n_train=32, n_val=8, n_test=8)
    second = LinearOperatorDataModule(task="heat", grid_size=16, n_train=32, n_val=8, n_test=8)
    assert first.fingerprint() == second.fingerprint()
    f, u = first.split("test").tensors
    assert torch.allclose(
        fourier.to_coefficients(u), fourier.to_coefficients(f) @ first.task.operator.T, atol=1e-12
    )  # test outputs are noise-free


# --- the rate study ----------------------------------------------------------------------------


def test_exact_risk_slopes_match_the_derived_rates() -> None:
    task = make_task("powerlaw", 384, noise_std=1.0)
    n = list(SAMPLE_SIZES)
    multilevel = [oracle_exact(task, k, single=False) for k in n]
    single = [oracle_exact(task, k, single=True) for k in n]
    slope_multi, slope_single = fit_slope(n, multilevel), fit_slope(n, single)
    expected = theory()
    assert abs(slope_multi - expected.multilevel) <= 0.06, slope_multi
    assert -0.46 <= slope_single <= -0.34, slope_single
    assert slope_single - slope_multi >= 0.05
    assert single[-1] / multilevel[-1] >= 1.4


# --- the shipped weights -----------------------------------------------------------------------


def test_shipped_weights_load_and_round_trip(tmp_path: Path) -> None:
    model = zoo.load("kernel-operator")
    assert model.zoo_origin.name == "kernel-operator.varcoef1d"
    assert model.zoo_origin.source == "bundled"
    assert_export_roundtrip(model, tmp_path / "copy")
    _, u = model.apply(lambda x: torch.sin(2 * math.pi * x))
    assert_finite(u)
    green = model.green(256)
    f = band_limited(256, frequencies=10)
    assert torch.allclose(green @ f, model(f), atol=1e-10)


def test_shipped_weights_generalise_to_fresh_data() -> None:
    model = zoo.load("kernel-operator")
    fresh = LinearOperatorDataModule(task="varcoef", n_test=500, seed=12345)
    (error, _) = model.evaluate(fresh)
    assert error["value"] <= 0.01, f"relative L2 error {error['value']:.4f} on fresh data"


@pytest.mark.slow
def test_recipe_regenerates_the_shipped_weights(tmp_path: Path, subprocess_env) -> None:
    recipe = REPO / "recipes" / "kernel-operator" / "varcoef1d.yaml"
    fit_run = run_zoo(
        [
            "fit",
            "--config",
            str(recipe),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.logger",
            "false",
            "--trainer.enable_progress_bar",
            "false",
        ],
        cwd=tmp_path,
        env=subprocess_env,
    )
    assert fit_run.returncode == 0, fit_run.stderr[-2000:]
    ckpt = tmp_path / "runs" / "kernel-operator" / "varcoef1d" / "checkpoints" / "varcoef1d.ckpt"
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    shipped = zoo.load("kernel-operator.varcoef1d")
    assert (state["W"] - shipped.W).abs().max() <= 1e-5


@pytest.mark.slow
def test_ddp_statistics_add_up_to_the_single_process_fit(tmp_path: Path, subprocess_env) -> None:
    """Two CPU processes each accumulate half the batches; the all-reduced statistics give
    the single-process estimate (the regularisation is given, so no fold enters)."""
    smoke = REPO / "recipes" / "kernel-operator" / "smoke.yaml"
    fixed = ["--model.lam0", "1e-4", "--model.rho", "1.0", "--model.max_level", "3"]
    run = run_zoo(
        [
            "fit",
            "--config",
            str(smoke),
            *fixed,
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--trainer.default_root_dir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=subprocess_env,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    (ckpt,) = tmp_path.rglob("*.ckpt")
    distributed = torch.load(ckpt, weights_only=True)["state_dict"]["W"]

    data = LinearOperatorDataModule(
        task="varcoef", grid_size=32, n_train=256, n_val=64, n_test=64, batch_size=64
    )
    single = KernelOperator(n_in=32, n_out=32, lam0=1e-4, rho=1.0, max_level=3)
    single.fit_closed_form(*data.split("train").tensors)
    assert torch.allclose(distributed, single.W, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_fno_benchmark_runs(subprocess_env) -> None:
    """A smoke run of the benchmark against neuraloperator's FNO (no accuracy threshold)."""
    pytest.importorskip("neuralop")
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "kernel_operator_vs_fno.py"),
            "--n",
            "256",
            "--steps",
            "20",
        ],
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout[: run.stdout.rindex("}") + 1])
    assert result["kernel"]["rel_l2"] < 0.02
    assert result["fno"]["seconds"] > 0 and math.isfinite(result["fno"]["rel_l2"])
