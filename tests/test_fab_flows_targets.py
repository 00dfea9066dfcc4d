"""FAB's RealNVP (invertibility, log-dets, initialisation) and its targets (GMM-40, Many Well)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoo.fab.flows import PRESETS, RealNVP
from zoo.fab.targets import GMM40, TARGETS, ManyWell, _well_constants, target

SQRT_2PI = math.sqrt(2 * math.pi)


def _flow(dim: int, scale: float = 0.15, seed: int = 0, **kwargs) -> RealNVP:
    """A float64 RealNVP whose parameters are all drawn from N(0, scale²) by a seeded generator."""
    kwargs = {"n_layers": 4, "hidden": (16, 16), **kwargs}
    flow = RealNVP(dim, **kwargs).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


def _std_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    return (-0.5 * x**2 - math.log(SQRT_2PI)).sum(-1)


def _well_grid() -> tuple[np.ndarray, np.ndarray, float]:
    x = np.linspace(-6.0, 6.0, 120_001)
    return x, np.exp(-(x**4 - 6 * x**2 - 0.5 * x)), x[1] - x[0]


# ----------------------------------------------------------------------------------- flows


@pytest.mark.parametrize("dim", [2, 6])
@pytest.mark.parametrize("scale_fn", ["exp", "softplus"])
def test_realnvp_round_trip(dim: int, scale_fn: str) -> None:
    flow = _flow(dim, scale_fn=scale_fn)
    z = torch.randn(64, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x, log_det = flow(z)
    z_back, log_det_inv = flow.inverse(x)
    assert not torch.allclose(x, z, atol=1e-3)  # the randomised flow is not the identity
    torch.testing.assert_close(z_back, z, atol=1e-10, rtol=0)
    torch.testing.assert_close(log_det + log_det_inv, torch.zeros(64, dtype=torch.float64))


@pytest.mark.parametrize("dim", [2, 6])
def test_log_det_matches_autograd_jacobian(dim: int) -> None:
    flow = _flow(dim, seed=2)
    z = torch.randn(5, dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    forward = torch.func.vmap(torch.func.jacrev(lambda v: flow(v.unsqueeze(0))[0].squeeze(0)))
    inverse = torch.func.vmap(
        torch.func.jacrev(lambda v: flow.inverse(v.unsqueeze(0))[0].squeeze(0))
    )
    x, log_det = flow(z)
    torch.testing.assert_close(torch.linalg.slogdet(forward(z)).logabsdet, log_det)
    # change of variables: log q(x) = log N(f⁻¹(x)) + log|det ∂f⁻¹/∂x|
    expected = _std_normal_log_prob(z) + torch.linalg.slogdet(inverse(x)).logabsdet
    torch.testing.assert_close(flow.log_prob(x), expected)


def test_realnvp_density_integrates_to_one() -> None:
    flow = _flow(2, scale=0.1, seed=4)
    axis = torch.linspace(-12, 12, 481, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum() * (axis[1] - axis[0]) ** 2
    assert abs(mass.item() - 1) < 1e-3


@pytest.mark.parametrize("dim", [2, 6])
def test_fresh_realnvp_is_standard_normal(dim: int) -> None:
    x = torch.randn(32, dim, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    identity = RealNVP(dim, 3, hidden=(8, 8), invertible_linear=False).double()
    y, log_det = identity(x)
    torch.testing.assert_close(y, x, atol=0, rtol=0)
    torch.testing.assert_close(log_det, torch.zeros(32, dtype=torch.float64))
    torch.testing.assert_close(identity.log_prob(x), _std_normal_log_prob(x))
    # with the linear layers the fresh flow is a permutation: the density is unchanged
    permuted = RealNVP(dim, 3, hidden=(8, 8)).double()
    torch.testing.assert_close(permuted.log_prob(x), _std_normal_log_prob(x))


def test_sample_and_log_prob_agree_with_log_prob() -> None:
    flow = _flow(6, seed=6)
    x, log_q = flow.sample_and_log_prob(128, generator=torch.Generator().manual_seed(7))
    assert x.shape == (128, 6) and log_q.shape == (128,) and x.dtype == torch.float64
    torch.testing.assert_close(log_q, flow.log_prob(x), atol=1e-10, rtol=1e-10)
    again = flow.sample(128, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(again, x, atol=0, rtol=0)


def test_realnvp_presets_and_errors() -> None:
    flow = RealNVP(2, **PRESETS["gmm40"])
    assert sum(isinstance(m, torch.nn.Linear) for m in flow.modules()) == 15 * 3
    with pytest.raises(ValueError, match="dim >= 2"):
        RealNVP(1, 2)
    with pytest.raises(ValueError, match="act='swish'"):
        RealNVP(2, 2, act="swish")
    with pytest.raises(ValueError, match="scale_fn='sigmoid'"):
        RealNVP(2, 2, scale_fn="sigmoid")


# ----------------------------------------------------------------------------------- GMM-40


def test_gmm40_means_match_the_global_seed() -> None:
    gmm = GMM40().double()
    torch.testing.assert_close(
        gmm.means[0], torch.tensor([-0.299, 21.458]).double(), atol=1e-3, rtol=0
    )
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        expected = (torch.rand(40, 2) - 0.5) * 80
    finally:
        torch.random.set_rng_state(state)
    torch.testing.assert_close(gmm.means.float(), expected, atol=0, rtol=0)
    torch.testing.assert_close(
        gmm.std, torch.full((2,), 1.3133, dtype=torch.float64), atol=1e-4, rtol=0
    )
    assert gmm.log_Z == 0.0 and gmm.n_modes == 40 and gmm.dim == 2


def test_gmm40_is_normalised() -> None:
    gmm = GMM40(min_log_prob=None).double()
    axis = torch.linspace(-50, 50, 401, dtype=torch.float64)
    grid = torch.cartesian_prod(axis, axis)
    mass = gmm.log_prob(grid).exp().sum() * (axis[1] - axis[0]) ** 2
    assert abs(mass.item() - 1) < 1e-3


def test_gmm40_expected_log_prob_and_modes() -> None:
    gmm = GMM40().double()
    x = gmm.sample(200_000, generator=torch.Generator().manual_seed(8))
    assert abs(gmm.log_prob(x).mean().item() + 6.862) < 0.02
    assert gmm.modes_covered(x[:4000]) == 40
    gaps = torch.cdist(gmm.means, gmm.means).fill_diagonal_(math.inf).min(-1).values
    k = gaps.argmax()  # the most isolated component
    eps = torch.randn(500, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    one = gmm.means[k] + gmm.std * eps
    assert gmm.modes_covered(one) == 1
    assert gmm.mode_counts(one)[k] == 500


def test_gmm40_min_log_prob() -> None:
    far = torch.tensor([[500.0, 500.0]], dtype=torch.float64)
    assert GMM40().double().log_prob(far).item() == -math.inf
    assert math.isfinite(GMM40(min_log_prob=None).double().log_prob(far).item())


# ------------------------------------------------------------------------------- Many Well


def test_double_well_constants() -> None:
    k = _well_constants()
    assert abs(k["z1"] / 11784.50927 - 1) < 1e-6
    assert ManyWell(6).log_Z == pytest.approx(30.880, abs=1e-3)
    assert ManyWell(32).log_Z == pytest.approx(164.696, abs=1e-3)
    for root in (k["low"], k["barrier"], k["high"]):
        assert abs(4 * root**3 - 12 * root - 0.5) < 1e-10
    # the rejection envelope: f(x) <= M g(x) everywhere, and tight (M g touches f)
    x = np.linspace(-8.0, 8.0, 160_001)
    s = 0.42
    g = (
        k["w_low"] * np.exp(-0.5 * ((x - k["low"]) / s) ** 2)
        + (1 - k["w_low"]) * np.exp(-0.5 * ((x - k["high"]) / s) ** 2)
    ) / (s * SQRT_2PI)
    log_ratio = -(x**4 - 6 * x**2 - 0.5 * x) - np.log(g) - k["log_m"]
    assert log_ratio.max() <= 1e-12 and log_ratio.max() > -0.1


def test_many_well_log_prob_and_log_z_in_2d() -> None:
    well = ManyWell(2).double()
    a = torch.linspace(-4, 4, 801, dtype=torch.float64)
    b = torch.linspace(-9, 9, 901, dtype=torch.float64)
    grid = torch.cartesian_prod(a, b)
    log_z = torch.logsumexp(well.log_prob(grid), 0) + math.log((a[1] - a[0]) * (b[1] - b[0]))
    assert log_z.item() == pytest.approx(well.log_Z, abs=1e-6)
    x = torch.tensor([[1.0, 2.0, -0.5, 0.0]], dtype=torch.float64)
    expected = -(1 - 6 - 0.5 + 2) - (0.0625 - 1.5 + 0.25)
    assert ManyWell(4).double().log_prob(x).item() == pytest.approx(expected)


def test_many_well_samples_match_the_density() -> None:
    well = ManyWell(6).double()
    x = well.sample(40_000, generator=torch.Generator().manual_seed(9))
    assert x.shape == (40_000, 6)
    x1 = x[:, 0::2].reshape(-1).numpy()
    grid, f, step = _well_grid()
    cdf = np.cumsum(f) * step / _well_constants()["z1"]
    ks = np.abs(np.searchsorted(np.sort(x1), grid) / len(x1) - cdf).max()
    assert ks < 1.63 / math.sqrt(len(x1))  # Kolmogorov-Smirnov at the 1% level
    mean = (grid * f).sum() * step / _well_constants()["z1"]
    assert abs(x1.mean() - mean) < 0.02
    x2 = x[:, 1::2]
    assert abs(x2.mean().item()) < 0.02 and abs(x2.std().item() - 1) < 0.02
    counts = well.mode_counts(x)
    assert counts.shape == (8,) and counts.sum() == 40_000
    expected = 40_000 * well.mode_weights  # the left well holds 15.6% of the mass
    assert ((counts - expected).abs() < 5 * expected.sqrt()).all()
    assert well.modes_covered(x) == 8 and (counts > 0).all()


def test_many_well_modes() -> None:
    well = ManyWell(6).double()
    modes = well.modes.clone().requires_grad_()
    assert modes.shape == (8, 6)
    torch.testing.assert_close(well.mode_counts(modes.detach()), torch.ones(8, dtype=torch.long))
    (grad,) = torch.autograd.grad(well.log_prob(modes).sum(), modes)
    torch.testing.assert_close(grad, torch.zeros_like(grad), atol=1e-10, rtol=0)
    assert well.modes[0, 0] == pytest.approx(-1.7108, abs=1e-4)
    assert well.modes[-1, 0] == pytest.approx(1.7525, abs=1e-4)
    torch.testing.assert_close(well.mode_weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert well.mode_weights.argmax() == 7  # every pair in the deeper, right well
    with pytest.raises(ValueError, match="even dim"):
        ManyWell(5)


def test_target_factory() -> None:
    assert isinstance(target("gmm40"), GMM40)
    assert [target(name).dim for name in TARGETS[1:]] == [6, 32, 60]
    assert target("manywell32").n_modes == 2**16
    with pytest.raises(ValueError, match="gmm40, manywell6, manywell32"):
        target("manywell8")
