"""Entry ``mars``: environments, GP interpolators, the score network and its loss, fSVGD, the
metrics, the user API and the shipped weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from zoo.mars.data import ENVIRONMENTS, environment, gp_shift_mean, sample_tasks
from zoo.mars.gp import GPInterpolator, rbf
from zoo.mars.metrics import calibration_error, mixture_nll, rmse
from zoo.mars.score import ScoreTransformer, score_matching_loss
from zoo.mars.svgd import FSVGD
from zoo.testing import run_zoo

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_environments_are_seeded_and_shaped(name: str) -> None:
    env = environment(name)
    first = sample_tasks(env, 3, 5, 7, seed=1)
    second = sample_tasks(env, 3, 5, 7, seed=1)
    assert torch.equal(first[2].y_query, second[2].y_query)
    assert first[0].x.shape == (5, 1) and first[0].x_query.shape == (7, 1)
    assert ((first[0].x >= env.low) & (first[0].x <= env.high)).all()
    assert not torch.equal(first[0].y, sample_tasks(env, 3, 5, 7, seed=2)[0].y)
    with pytest.raises(ValueError, match="unknown environment 'sine'"):
        environment("sine")


def test_sinusoid_matches_its_generator_statistics() -> None:
    """Per task, y = b + a x + A sin(1.5 (x - x0)); with x0 small, a least-squares fit on
    [1, x, sin 1.5x, cos 1.5x] recovers b, a and A, whose means the generator fixes."""
    tasks = sample_tasks(environment("sinusoid"), 300, 0, 60, seed=0)
    coefficients = []
    for task in tasks:
        x = task.x_query[:, 0]
        design = torch.stack([torch.ones_like(x), x, torch.sin(1.5 * x), torch.cos(1.5 * x)], 1)
        coefficients.append(torch.linalg.lstsq(design, task.y_query[:, None]).solution[:, 0])
    offset, slope, amplitude, _ = torch.stack(coefficients).mean(0).tolist()
    assert offset == pytest.approx(5.0, abs=0.05)
    assert slope == pytest.approx(0.5, abs=0.05)
    assert amplitude == pytest.approx(1.0, abs=0.05)


def test_gp_shift_scatters_around_its_mean() -> None:
    tasks = sample_tasks(environment("gp-shift"), 300, 0, 20, seed=0)
    residual = torch.stack([t.y_query - gp_shift_mean(t.x_query[:, 0]) for t in tasks])
    assert residual.var().item() == pytest.approx(1.0 + 0.1**2, rel=0.1)


def test_gp_posterior_matches_the_closed_form() -> None:
    xs = torch.tensor([[[0.0], [1.0]]], dtype=torch.float64)
    ys = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    gp = GPInterpolator(
        xs,
        ys,
        torch.tensor(0.0).double(),
        torch.tensor(0.0).double(),
        torch.tensor(math.log(0.1)).double(),
    )
    x = torch.tensor([[[0.5]]], dtype=torch.float64)
    mean, cov = gp.posterior(torch.tensor([0]), x)
    k = torch.tensor([[1.0, math.exp(-0.5)], [math.exp(-0.5), 1.0]], dtype=torch.float64)
    k_star = torch.full((1, 2), math.exp(-0.125), dtype=torch.float64)
    inverse = torch.linalg.inv(k + 0.01 * torch.eye(2, dtype=torch.float64))
    assert mean.item() == pytest.approx((k_star @ inverse @ ys[0]).item(), abs=1e-9)
    assert cov.item() == pytest.approx((1 - k_star @ inverse @ k_star.T).item(), abs=1e-9)
    samples = gp.sample(torch.tensor([0]), x, 20000, torch.Generator().manual_seed(0), noisy=False)
    assert samples.var().item() == pytest.approx(cov.item(), rel=0.05)


def test_gp_hyperparameters_are_learned_from_all_tasks() -> None:
    generator = torch.Generator().manual_seed(0)
    xs = 4 * torch.rand(30, 8, 1, generator=generator, dtype=torch.float64)
    k = rbf(xs, xs, torch.tensor(0.7), torch.tensor(1.0)) + 1e-6 * torch.eye(8)
    z = torch.randn(30, 8, 1, generator=generator, dtype=torch.float64)
    ys = (torch.linalg.cholesky(k) @ z).squeeze(-1) + 0.05 * torch.randn(
        30, 8, generator=generator, dtype=torch.float64
    )
    gp = GPInterpolator.fit(xs, ys)
    assert gp.log_lengthscale.exp().item() == pytest.approx(0.7, rel=0.25)


def test_score_network_is_permutation_equivariant() -> None:
    torch.manual_seed(0)
    net = ScoreTransformer(width=16, blocks=1, heads=2, key_size=8).double().eval()
    x, f = torch.randn(3, 6, 1, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    perm = torch.randperm(6)
    assert torch.allclose(net(x, f)[:, perm], net(x[:, perm], f[:, perm]), atol=1e-12)
    assert net(x[:, :4], f[:, :4]).shape == (3, 4)  # any number of points


def test_exact_score_matching_loss_matches_finite_differences() -> None:
    torch.manual_seed(0)
    net = ScoreTransformer(width=16, blocks=1, heads=2, key_size=8, spectral=False).double()
    x, f = torch.randn(2, 5, 1, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    eps = 1e-6
    trace = torch.zeros(2, dtype=torch.float64)
    for i in range(5):
        step = torch.zeros_like(f)
        step[:, i] = eps
        trace += (net(x, f + step)[:, i] - net(x, f - step)[:, i]) / (2 * eps)
    expected = (trace + 0.5 * (net(x, f) ** 2).sum(-1)).mean()
    assert score_matching_loss(net, x, f).item() == pytest.approx(expected.item(), abs=1e-7)


def test_score_matching_is_minimized_by_the_true_score() -> None:
    """For f ~ N(0, I) the loss of s(f) = -c f is E[-c k + c²|f|²/2], smallest at c = 1."""
    f = torch.randn(4000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = torch.zeros(4000, 3, 1, dtype=torch.float64)
    losses = {
        c: score_matching_loss(lambda _, g, c=c: -c * g, x, f).item() for c in (0.8, 1.0, 1.2)
    }
    assert losses[1.0] < losses[0.8] and losses[1.0] < losses[1.2]


def test_fsvgd_with_one_particle_reaches_the_gaussian_map() -> None:
    """One particle, no measurement points, prior N(0, τ²) at each point: the particle climbs
    to the MAP ``y τ² / (τ² + σ²)`` at the context points."""
    x = torch.tensor([[-1.0], [0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    tau, sigma = 1.0, 0.5
    svgd = FSVGD(particles=1, steps=1500, lr=1e-2, noise=sigma, n_measurement=0)
    box = (torch.tensor([-1.0]).double(), torch.tensor([1.0]).double())
    post = svgd.fit(x, y, lambda _, f: -f / tau**2, box)
    expected = y * tau**2 / (tau**2 + sigma**2)
    assert torch.allclose(post.functions(x)[0], expected, atol=1e-3)


def test_batched_fsvgd_fits_each_task_as_alone() -> None:
    """Tasks fitted together do not interact: each gets what a lone fit with its seed gives."""
    generator = torch.Generator().manual_seed(0)
    xs = torch.rand(3, 4, 1, generator=generator, dtype=torch.float64)
    ys = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    box = (torch.tensor([0.0]).double(), torch.tensor([1.0]).double())
    svgd = FSVGD(particles=3, steps=30, lr=1e-2, n_measurement=5)
    prior = lambda _, f: -f / 2  # noqa: E731
    together = svgd.fit_many(xs, ys, prior, box, seeds=[4, 5, 6])
    grid = torch.linspace(0, 1, 9, dtype=torch.float64)[:, None]
    for t, seed in enumerate([4, 5, 6]):
        alone = svgd.fit(xs[t], ys[t], prior, box, seed=seed)
        assert torch.allclose(together[t].functions(grid), alone.functions(grid), atol=1e-8)
    assert not torch.allclose(together[0].functions(grid), together[1].functions(grid))
    with pytest.raises(ValueError, match="3 tasks but 2 seeds"):
        svgd.fit_many(xs, ys, prior, box, seeds=[0, 1])


def test_metrics_against_hand_computed_values() -> None:
    y = torch.tensor([0.0, 1.0], dtype=torch.float64)
    means = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    assert mixture_nll(y, means, 1.0) == pytest.approx(0.5 * math.log(2 * math.pi))
    two = torch.tensor([[0.0, 0.0], [2.0, 2.0]], dtype=torch.float64)
    density = 0.5 * (math.exp(0) + math.exp(-2)) / math.sqrt(2 * math.pi)  # at y = 0
    density_1 = math.exp(-0.5) / math.sqrt(2 * math.pi)  # at y = 1, both components
    assert mixture_nll(y, two, 1.0) == pytest.approx(
        -0.5 * (math.log(density) + math.log(density_1))
    )
    assert rmse(y, two) == pytest.approx(math.sqrt(0.5))
    # y at the predictive median everywhere: CDF(y) = 0.5, so P(CDF <= q) is 0 below 0.5.
    levels = torch.linspace(0.025, 0.975, 20, dtype=torch.float64)
    expected = ((levels >= 0.5).double() - levels).abs().mean().item()
    assert calibration_error(y, means, 1.0) == pytest.approx(expected)
    # A calibrated predictive has a small error.
    generator = torch.Generator().manual_seed(0)
    draws = torch.randn(20000, generator=generator, dtype=torch.float64)
    assert calibration_error(draws, torch.zeros(1, 20000, dtype=torch.float64), 1.0) < 0.01


@pytest.fixture
def small_mars():
    from zoo.mars import MARS

    torch.manual_seed(0)
    return MARS(width=16, blocks=1, heads=2, key_size=8, svgd_steps=20, particles=4).eval()


def test_fit_task_shapes_and_inputs(small_mars) -> None:
    x = torch.linspace(-0.5, 0.5, 5)
    post = small_mars.fit_task(x, torch.sin(x)[:, None])  # y as (n, 1) is accepted
    mean, std = post.predict(torch.linspace(-1, 1, 7))
    assert mean.shape == std.shape == (7,)
    _, epistemic = post.predict(torch.linspace(-1, 1, 7), noise=False)
    assert (epistemic < std).all()
    assert post.sample(torch.zeros(3), 2).shape == (2, 3)
    assert torch.equal(small_mars.predict(torch.zeros(3))[0], post.predict(torch.zeros(3))[0])


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (torch.zeros(5), torch.zeros(4), r"x has shape \(5, 1\) but y has shape \(4,\)"),
        (torch.zeros(5, 2), torch.zeros(5), r"inputs of shape \(n, 1\), got \(5, 2\)"),
        (torch.tensor([0.0, float("nan")]), torch.zeros(2), "NaN or infinite"),
        (torch.zeros(2), torch.tensor([0.0, float("inf")]), "NaN or infinite"),
    ],
)
def test_bad_task_input_is_explained(small_mars, x, y, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        small_mars.fit_task(x, y)


def test_inputs_outside_the_meta_train_box_warn(small_mars) -> None:
    with pytest.warns(UserWarning, match="outside the meta-train box"):
        small_mars.fit_task(torch.tensor([5.0]), torch.tensor([0.0]))


def test_zero_context_points_give_prior_samples(small_mars) -> None:
    post = small_mars.fit_task(torch.zeros(0), torch.zeros(0))
    assert post.sample(torch.linspace(-1, 1, 5)).shape == (4, 5)


def test_predict_needs_a_fitted_task(small_mars) -> None:
    with pytest.raises(RuntimeError, match="fit_task"):
        small_mars.predict(torch.zeros(2))


@pytest.mark.slow
def test_evaluation_table_covers_every_method(small_mars) -> None:
    from zoo.mars import MarsDataModule
    from zoo.mars.evaluate import METHODS

    data = MarsDataModule(n_eval_tasks=2, n_query=10)
    with pytest.warns(UserWarning):  # the untrained model's box is the default [-1, 1]
        rows = small_mars.evaluate("meta_test", data, seeds=2)
    names = {row["name"] for row in rows}
    assert names == {
        f"{m} {metric}" for m in METHODS for metric in ("NLL", "RMSE", "calibration error")
    }
    assert all(math.isfinite(row["value"]) and row["std"] >= 0 for row in rows)
    assert all(row["dataset"] == "sinusoid, 2 meta-test tasks, 2 seeds" for row in rows)


@pytest.mark.slow
def test_score_network_learns_the_exact_gp_shift_score(tmp_path, subprocess_env) -> None:
    """The gp-shift recipe trains through the CLI; its network's score must point where the
    process's exact Gaussian score points, on the meta-validation measurement sets."""
    from zoo.export import load_checkpoint
    from zoo.mars import MarsDataModule
    from zoo.mars.evaluate import score_alignment

    recipe = REPO / "recipes" / "mars" / "gp_shift.yaml"
    run = run_zoo(
        ["fit", "--config", str(recipe), "--trainer.enable_progress_bar", "false"],
        cwd=tmp_path,
        env=subprocess_env,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    model, _ = load_checkpoint(tmp_path / "runs/mars/gp-shift/checkpoints/gp-shift.ckpt")
    model.eval()
    data = MarsDataModule(
        env="gp-shift", n_train_tasks=200, points_per_task=40, k=8, task_noise=1.0
    )
    cosines = score_alignment(model, data)
    assert cosines.mean() >= 0.9, f"mean cosine {cosines.mean():.3f}"

    x, f = torch.randn(2, 8, 1), torch.randn(2, 8)
    perm = torch.randperm(8)
    with torch.no_grad():
        assert torch.allclose(model(x, f)[:, perm], model(x[:, perm], f[:, perm]), atol=1e-5)


# --- the shipped weights -----------------------------------------------------------------------

GOLDEN = REPO / "tests" / "data" / "mars_golden.json"


def golden_outputs(name: str) -> dict[str, list[float]]:
    """What the shipped weights give on one fixed task: the learned score at a fixed
    measurement set, and fSVGD's predictive mean and std after 50 steps. Rewrite the file
    after retraining with ``python tests/test_mars.py``."""
    import zoo

    model = zoo.load(name)
    low, high = (bound.item() for bound in model._raw_box())
    where = torch.tensor([0.1, 0.3, 0.5, 0.6, 0.85], dtype=torch.float64)
    x = low + (high - low) * where
    y = model.y_mean + model.y_std * torch.sin(6.0 * where)
    with torch.no_grad():
        score = model(model._normalize_x(x[:, None]).float()[None], torch.zeros(1, 5))[0]
    post = model.fit_task(x, y, steps=50, seed=0)
    mean, std = post.predict(torch.linspace(low, high, 9, dtype=torch.float64))
    return {"score": score.tolist(), "mean": mean.tolist(), "std": std.tolist()}


@pytest.mark.parametrize("name", ["mars.sinusoid", "mars.oscillator"])
def test_shipped_weights_load_round_trip_and_match_golden_outputs(name: str, tmp_path) -> None:
    import json

    import zoo
    from zoo.testing import assert_export_roundtrip

    model = zoo.load(name)
    assert model.zoo_origin.source == "bundled"
    assert_export_roundtrip(model, tmp_path / "copy")
    expected = json.loads(GOLDEN.read_text())[name]
    for key, values in golden_outputs(name).items():
        assert values == pytest.approx(expected[key], rel=1e-3, abs=1e-4), key


def test_bare_name_loads_the_sinusoid_weights() -> None:
    import zoo

    model = zoo.load("mars")
    assert model.zoo_origin.name == "mars.sinusoid"
    assert model.hparams.spectral, "the shipped network is spectrally normalized, as the paper"


if __name__ == "__main__":
    import json

    golden = {name: golden_outputs(name) for name in ("mars.sinusoid", "mars.oscillator")}
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
