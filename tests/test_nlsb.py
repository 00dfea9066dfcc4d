"""Entry ``nlsb``: the closed-form potential derivatives, the Lagrangians' inverse maps, the HJB
residual, Euler–Maruyama against torchsde, the module's losses, the user API and its errors."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from zoo.nlsb.lagrangian import Cellular, Newtonian, PotentialFree, make_lagrangian
from zoo.nlsb.module import NLSBModule
from zoo.nlsb.potential import OTFlowPotential, PotentialDerivatives
from zoo.nlsb.sde import Diffusion, LagrangianSDE, TorchsdeSDE, euler_maruyama
from zoo.testing import assert_all_parameters_get_gradient, assert_export_roundtrip, run_zoo

REPO = Path(__file__).resolve().parent.parent


def _perturbed_potential(dim: int, n_layers: int) -> OTFlowPotential:
    torch.manual_seed(0)
    phi = OTFlowPotential(dim, width=8, n_layers=n_layers, rank=2).double()
    with torch.no_grad():
        for parameter in phi.parameters():  # move off the zero initialisation
            parameter.add_(0.3 * torch.randn_like(parameter))
    return phi


@pytest.mark.parametrize(("dim", "n_layers"), [(1, 2), (3, 2), (2, 4)])
def test_closed_form_gradient_and_hessian_diagonal_equal_autograd(dim, n_layers) -> None:
    phi = _perturbed_potential(dim, n_layers)
    x = torch.randn(6, dim, dtype=torch.float64)
    t = torch.rand(6, dtype=torch.float64)
    d = phi.derivatives(x, t)
    torch.testing.assert_close(d.value, phi(x, t))
    for i in range(len(x)):
        s = torch.cat([x[i], t[i : i + 1]])

        def scalar(s: torch.Tensor) -> torch.Tensor:
            return phi(s[None, :dim], s[dim]).sum()

        grad = torch.func.grad(scalar)(s)
        hessian = torch.func.hessian(scalar)(s)
        torch.testing.assert_close(d.grad[i], grad[:dim])
        torch.testing.assert_close(d.dt[i], grad[dim])
        torch.testing.assert_close(d.hess_diag[i], torch.diagonal(hessian)[:dim])
    plain = phi.derivatives(x, t, hessian=False)
    torch.testing.assert_close(plain.grad, d.grad)
    assert plain.hess_diag is None


def _cellular(dim: int = 2) -> Cellular:
    lagrangian = Cellular(dim, times=[0.0, 1.0, 2.0], n_components=[2, 3], weight_velocity=0.5)
    generator = torch.Generator().manual_seed(0)
    cells = [torch.randn(200, dim, generator=generator) + k for k in range(3)]
    lagrangian.fit(cells)
    return lagrangian.double()


@pytest.mark.parametrize(
    "lagrangian",
    [
        PotentialFree(),
        Newtonian(mass=2.5, prior="cubic", prior_args={"coefficients": [1, 0.5]}),
        _cellular(),
    ],
    ids=["potential-free", "newtonian", "cellular"],
)
def test_control_inverts_the_lagrangians_momentum(lagrangian) -> None:
    """u = (∂L/∂u)⁻¹(-∇Φ): the momentum ∂L/∂u at the control equals -∇Φ."""
    generator = torch.Generator().manual_seed(1)
    x, grad, v = (torch.randn(5, 2, generator=generator, dtype=torch.float64) for _ in range(3))
    u = lagrangian.control(grad, x, 0.5, v).requires_grad_(True)
    (momentum,) = torch.autograd.grad(lagrangian(x, u, 0.5, v).sum(), u)
    torch.testing.assert_close(momentum, -grad)


def test_cellular_density_matches_sklearn() -> None:
    from sklearn.mixture import GaussianMixture

    generator = torch.Generator().manual_seed(0)
    cells = [
        torch.randn(300, 2, generator=generator, dtype=torch.float64) * (k + 1) for k in (0, 1)
    ]
    lagrangian = Cellular(2, times=[0.0, 1.0], n_components=[3]).double()
    lagrangian.fit(cells, seed=0)
    mixture = GaussianMixture(3, covariance_type="full", random_state=0)
    mixture.fit(torch.cat(cells).numpy())
    x = torch.randn(7, 2, generator=generator, dtype=torch.float64)
    expected = torch.as_tensor(mixture.score_samples(x.numpy()))
    torch.testing.assert_close(lagrangian.log_density(x, 0.3), expected)


def test_lagrangian_configs_reject_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown Lagrangian kind 'kinetic'"):
        make_lagrangian({"kind": "kinetic"}, dim=1, times=[0, 1])
    with pytest.raises(ValueError, match="unknown prior 'valley'"):
        make_lagrangian({"kind": "newtonian", "prior": "valley"}, dim=1, times=[0, 1])


class _ExactPotential(torch.nn.Module):
    """Φ = x²/(2(c - t)) + (g²/2) log(c - t): with f = -∇Φ and constant g it solves the
    potential-free HJB equation exactly."""

    def __init__(self, c: float, g: float) -> None:
        super().__init__()
        self.c, self.g = c, g

    def derivatives(self, x, t, *, hessian=True):
        tau = self.c - t
        value = (x**2).sum(-1) / (2 * tau) + 0.5 * self.g**2 * x.shape[-1] * math.log(tau)
        dt = (x**2).sum(-1) / (2 * tau**2) - 0.5 * self.g**2 * x.shape[-1] / tau
        return PotentialDerivatives(value, x / tau, dt, torch.full_like(x, 1 / tau))


def test_hjb_residual_vanishes_for_the_exact_solution() -> None:
    g = 0.7
    sde = LagrangianSDE(_ExactPotential(c=3.0, g=g), Diffusion(2, sigma=g), PotentialFree())
    x = torch.randn(10, 2, dtype=torch.float64)
    for t in (0.0, 0.5, 2.0):
        residual = sde.coefficients(x, t).residual
        torch.testing.assert_close(residual, torch.zeros_like(residual))
    wrong = LagrangianSDE(_ExactPotential(c=3.0, g=g), Diffusion(2, sigma=2 * g), PotentialFree())
    assert wrong.coefficients(x, 0.5).residual.abs().min() > 0.1


def test_euler_loop_equals_torchsde_at_equal_noise() -> None:
    import torchsde

    torch.manual_seed(0)
    dim, n, dt = 2, 16, 0.05
    sde = LagrangianSDE(
        _perturbed_potential(dim, 2), Diffusion(dim, "mlp", g_max=1.0).double(), PotentialFree()
    )
    x0 = torch.randn(n, dim, dtype=torch.float64)
    bm = torchsde.BrownianInterval(
        t0=0.0, t1=1.0, size=(n, dim + 2), dtype=torch.float64, entropy=3
    )
    y0 = torch.cat([x0, torch.zeros(n, 2, dtype=torch.float64)], dim=-1)
    with torch.no_grad():
        reference = torchsde.sdeint(
            TorchsdeSDE(sde), y0, torch.tensor([0.0, 1.0]).double(), bm=bm, method="euler", dt=dt
        )[-1]
        ours = euler_maruyama(sde, x0, 0.0, 1.0, dt, increments=lambda s, t: bm(s, t)[:, :dim])
    # torchsde accumulates its step times (t + dt + dt ...), we multiply (t0 + i h): the grids
    # differ by rounding, so the Brownian increments agree to about 1e-8
    close = {"rtol": 0, "atol": 1e-6}
    torch.testing.assert_close(ours.x, reference[:, :dim], **close)
    torch.testing.assert_close(ours.action, reference[:, dim], **close)
    torch.testing.assert_close(ours.residual, reference[:, dim + 1], **close)
    assert (ours.x - x0).abs().max() > 0.1  # it moved


def test_ode_variant_is_deterministic_and_drops_no_step_it_should_not() -> None:
    sde = LagrangianSDE(_perturbed_potential(1, 2).float(), Diffusion(1, 0.0), PotentialFree())
    x0 = torch.randn(8, 1)
    a = euler_maruyama(sde, x0, 0.0, 1.0, 0.1, generator=torch.Generator().manual_seed(0))
    b = euler_maruyama(sde, x0, 0.0, 1.0, 0.1, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a.x, b.x)
    dropped = euler_maruyama(sde, x0, 0.0, 1.0, 0.1, drop_first_step=True)
    first = sde.coefficients(x0, 0.0)
    torch.testing.assert_close(a.action - dropped.action, first.lagrangian * 0.1)


def _tiny_batch(dim: int = 1, n: int = 32) -> dict[str, list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return {"x": [torch.randn(n, dim, generator=generator) + k for k in range(5)]}


def test_interval_losses_are_finite_and_reach_every_parameter() -> None:
    model = NLSBModule(width=8, alpha_L=0.1, alpha_R=[0.2, 0.1, 0.1, 0.1], dt=0.1, n_base=8)
    model.log = model.log_dict = lambda *args, **kwargs: None
    loss = model.training_step(_tiny_batch(), 0)
    assert torch.isfinite(loss)
    assert_all_parameters_get_gradient(model, loss)


def test_module_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="one per interval"):
        NLSBModule(alpha_L=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"cannot hold out \[4.0\]"):
        NLSBModule(holdout=[4.0])
    with pytest.raises(ValueError, match="sigma must be"):
        NLSBModule(sigma="learned")
    held = NLSBModule(holdout=[2.0], alpha_L=[0.1, 0.2, 0.3])
    assert held.train_times == [0.0, 1.0, 3.0, 4.0]


@pytest.fixture
def model() -> NLSBModule:
    torch.manual_seed(0)
    model = NLSBModule(width=8, dt=0.05, n_base=16)
    model.base.copy_(torch.rand(16, 1) * 2 - 1)
    return model.eval()


def test_api_shapes_and_seeds(model) -> None:
    x0 = torch.zeros(5, 1)
    paths = model.sample_trajectories(x0, [0.0, 0.5, 1.0], n_repeat=3, seed=1)
    assert paths.shape == (3, 5, 3, 1)
    assert torch.equal(paths[0], torch.zeros(5, 3, 1))
    assert torch.equal(paths, model.sample_trajectories(x0, [0.0, 0.5, 1.0], n_repeat=3, seed=1))
    assert not torch.equal(paths, model.sample_trajectories(x0, [0, 0.5, 1], n_repeat=3, seed=2))
    marginals = model.marginals([1.0, 2.0], n=7, seed=0)
    assert sorted(marginals) == [1.0, 2.0] and marginals[2.0].shape == (7, 1)
    assert model.drift(x0, 1.0).shape == model.diffusion(x0, 1.0).shape == (5, 1)
    assert model.potential(x0, 1.0).shape == (5,)


def test_api_rejects_bad_input(model) -> None:
    x0 = torch.zeros(4, 1)
    with pytest.raises(ValueError, match=r"shape \(n, 1\)"):
        model.sample_trajectories(torch.zeros(4, 2), [0, 1])
    with pytest.raises(ValueError, match=r"x0\[:, None\]"):
        model.sample_trajectories(torch.zeros(4), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        model.sample_trajectories(torch.full((4, 1), math.nan), [0, 1])
    with pytest.raises(ValueError, match="strictly increasing"):
        model.sample_trajectories(x0, [0, 2, 1])
    with pytest.raises(ValueError, match="1-D sequence"):
        model.sample_trajectories(x0, [[0, 1]])
    with pytest.raises(ValueError, match="n_repeat must be at least 1"):
        model.sample_trajectories(x0, [0, 1], n_repeat=0)
    with pytest.raises(ValueError, match="dt must be a positive number"):
        model.sample_trajectories(x0, [0, 1], dt=0.0)
    with pytest.warns(UserWarning, match="beyond the trained range"):
        model.sample_trajectories(x0, [3.0, 5.0])


def test_export_roundtrip(model, tmp_path) -> None:
    assert_export_roundtrip(model, tmp_path / "nlsb")


@pytest.mark.slow
def test_smoke_training_runs_under_ddp(tmp_path, subprocess_env) -> None:
    """Two CPU processes (gloo), each drawing its own batches."""
    recipe = str(REPO / "recipes/nlsb/smoke.yaml")
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
    out = ["--trainer.default_root_dir", str(tmp_path)]
    run = run_zoo(["fit", "--config", recipe, *ddp, *out], cwd=tmp_path, env=subprocess_env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert list(tmp_path.rglob("*.ckpt"))


def test_evaluate_reports_every_time_with_its_floor(model) -> None:
    from zoo.nlsb.data import SnapshotDataModule
    from zoo.nlsb.evaluate import Report

    data = SnapshotDataModule(dataset="ou1d", n_train=64, n_val=64, n_test=64)
    report = model.evaluate(data, n_starts=4, n_repeat=16)
    assert isinstance(report, Report)
    kinds = {(r["metric"], r["kind"]) for r in report}
    assert {("MDD", "one-step"), ("MDD", "all-step"), ("CDD", "mid-point")} <= kinds
    cdd_mid = [r for r in report if r["metric"] == "CDD" and r["kind"] == "mid-point"]
    assert [r["time"] for r in cdd_mid] == [0.5, 1.5, 2.5, 3.5]
    assert all(r["value"] > 0 and r["floor"] > 0 for r in report)
    mean = next(r for r in report if r["name"] == "CDD mean, mid-points")
    assert mean["value"] == pytest.approx(sum(r["value"] for r in cdd_mid) / 4)
    assert "CDD mean, mid-points" in str(report)


@pytest.mark.slow
def test_benchmark_runs_and_compares_equal_work() -> None:
    """The step-time benchmark checks that both Hessian paths give the same loss first."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/nlsb_step_time.py"), "--steps", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "NLSB / neural SDE" in run.stdout


GOLDEN = REPO / "tests" / "data" / "nlsb_golden.json"
SHIPPED = ("nlsb.ou1d", "nlsb.ou1d-nsde", "nlsb.ou1d-ode", "nlsb.psde3d", "nlsb.branch2d")


def golden_outputs() -> dict[str, list[float]]:
    """What ``nlsb.ou1d`` gives: paths from three points (4 repeats, seed 0), and the drift,
    diffusion and potential on a grid at t = 2.5. Rewrite after retraining with
    ``python tests/test_nlsb.py``."""
    import zoo

    model = zoo.load("nlsb")
    x0 = torch.tensor([[-0.5], [0.0], [0.5]])
    paths = model.sample_trajectories(x0, [0.0, 1.0, 2.0, 3.0, 4.0], n_repeat=4, seed=0)
    grid = torch.linspace(-2.0, 6.0, 9)[:, None]
    return {
        "paths": paths.flatten().tolist(),
        "drift": model.drift(grid, 2.5).flatten().tolist(),
        "diffusion": model.diffusion(grid, 2.5).flatten().tolist(),
        "potential": model.potential(grid, 2.5).tolist(),
    }


def test_shipped_weights_load_round_trip_and_match_golden_outputs(tmp_path) -> None:
    import json

    import zoo

    model = zoo.load("nlsb")
    assert model.zoo_origin.name == "nlsb.ou1d" and model.zoo_origin.source == "bundled"
    assert_export_roundtrip(model, tmp_path / "copy")
    expected = json.loads(GOLDEN.read_text())
    actual = golden_outputs()
    for key, values in expected.items():
        assert actual[key] == pytest.approx(values, rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_weight_set_loads_as_its_variant(name) -> None:
    import zoo
    from zoo.nlsb.evaluate import variant

    model = zoo.load(name)
    expected = {"ou1d-nsde": "neural SDE", "ou1d-ode": "ODE"}.get(name.split(".")[1], "NLSB")
    assert variant(model) == expected
    x0 = model.base[:3] * model.std + model.mean
    paths = model.sample_trajectories(x0, model.times, n_repeat=2, seed=0)
    assert paths.shape == (len(model.times), 3, 2, model.hparams.dim)
    assert torch.isfinite(paths).all()


if __name__ == "__main__":
    import json

    GOLDEN.write_text(json.dumps(golden_outputs(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")


def test_plots_draw_for_one_and_two_dimensions(tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import zoo

    ou, branch = zoo.load("nlsb"), zoo.load("nlsb.branch2d")
    figures = [
        ou.plot_trajectories(n=4),
        ou.plot_marginals(n=64),
        ou.plot_conditional(n_repeat=8),
        branch.plot_trajectories(n=4),
        branch.plot_trajectories(n=4, coordinate=1),
    ]
    for i, figure in enumerate(figures):
        figure.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 0
    # the 1-D fan is a line per path; the 2-D fan of one coordinate too
    assert len(figures[4].axes[0].lines) == 4
    plt.close("all")
    with pytest.raises(ValueError, match=r"coordinate must be an int in 0\.\.1"):
        branch.plot_trajectories(n=2, coordinate=2)
