"""Entry ``fab``: AIS weights and log Z, invariance of the HMC and Metropolis transitions, HMC
step-size tuning, dropped chains, and the prioritised replay buffer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from zoo.fab.ais import AIS, ess, log_Z_estimate
from zoo.fab.buffer import PrioritisedReplayBuffer, adjusted_weights

F64 = torch.float64


def _normal_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    z = (x - mean) / std
    return (-0.5 * z**2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)


class GaussianFlow(nn.Module):
    """A diagonal Gaussian "flow" with learnable mean and log std."""

    def __init__(self, mean: list[float], std: list[float], seed: int = 0) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.tensor(mean, dtype=F64))
        self.log_std = nn.Parameter(torch.tensor(std, dtype=F64).log())
        self.generator = torch.Generator().manual_seed(seed)

    def sample_and_log_prob(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        eps = torch.randn(n, len(self.mean), generator=self.generator, dtype=F64)
        x = self.mean + self.log_std.exp() * eps
        return x, self.log_prob(x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return _normal_log_prob(x, self.mean, self.log_std.exp())


class GaussianTarget:
    """Z · N(mean, diag(std²)), so log Z is known."""

    def __init__(self, mean: list[float], std: list[float], log_Z: float = 0.0) -> None:
        self.mean, self.std = torch.tensor(mean, dtype=F64), torch.tensor(std, dtype=F64)
        self.log_Z = log_Z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return _normal_log_prob(x, self.mean, self.std) + self.log_Z

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.mean + self.std * torch.randn(
            n, len(self.mean), generator=generator, dtype=F64
        )


class MixtureTarget:
    """0.3 N(-2, 0.5²) + 0.7 N(2, 1) in 1-D."""

    weights, means, stds = (0.3, 0.7), (-2.0, 2.0), (0.5, 1.0)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        parts = [
            math.log(w) + _normal_log_prob(x, torch.tensor([m], dtype=F64), torch.tensor([s]))
            for w, m, s in zip(self.weights, self.means, self.stds, strict=True)
        ]
        return torch.logsumexp(torch.stack(parts), 0)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        first = torch.rand(n, 1, generator=generator, dtype=F64) < self.weights[0]
        z = torch.randn(n, 1, generator=generator, dtype=F64)
        return torch.where(first, self.means[0] + self.stds[0] * z, self.means[1] + z)


class HalfGaussianTarget(GaussianTarget):
    """N(0, I) restricted to x_0 > 0 (log p = -inf elsewhere)."""

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x[:, 0] > 0, super().log_prob(x), -math.inf)


def _moments_agree(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
    n = len(x)
    mean_se, var_se = (var / n).sqrt(), var * math.sqrt(2 / n)
    assert ((x.mean(0) - mean).abs() < 4 * mean_se).all(), (x.mean(0), mean)
    assert ((x.var(0) - var).abs() < 4 * var_se).all(), (x.var(0), var)


# AIS weights


@pytest.mark.parametrize("transition", ["metropolis", "hmc"])
@pytest.mark.parametrize("alpha", [1.0, 2.0])
@pytest.mark.parametrize("log_Z", [0.0, 0.7])
def test_flow_equal_to_target_gives_constant_weights(transition, alpha, log_Z) -> None:
    flow = GaussianFlow([0.5, -1.0], [1.0, 2.0])
    target = GaussianTarget([0.5, -1.0], [1.0, 2.0], log_Z=log_Z)
    ais = AIS(2, n_intermediate=3, transition=transition, step_size=0.5, n_leapfrog=3)
    out = ais(flow, target, 200, alpha=alpha, generator=torch.Generator().manual_seed(1))
    assert out.n_dropped == 0 and out.x.shape == (200, 2) and out.acceptance.shape == (3,)
    # normalised: log w = 0; p = Z q: log Z towards p, 2 log Z towards g = p²/q
    torch.testing.assert_close(
        out.log_w, torch.full_like(out.log_w, alpha * log_Z), atol=1e-10, rtol=0
    )
    torch.testing.assert_close(out.log_q, flow.log_prob(out.x).detach())
    torch.testing.assert_close(out.log_p, target.log_prob(out.x))


def test_log_Z_of_a_mismatched_flow_and_ais_beats_the_flow() -> None:
    flow = GaussianFlow([0.0], [2.0], seed=3)
    target = GaussianTarget([1.0], [1.0], log_Z=1.3)
    ais = AIS(1, n_intermediate=8, transition="hmc", step_size=0.8, n_leapfrog=3).eval()
    out = ais(flow, target, 2000, alpha=1.0, generator=torch.Generator().manual_seed(4))

    w = (out.log_w - out.log_w.max()).exp()
    stderr = float(w.std() / (w.mean() * math.sqrt(len(w))))
    assert abs(float(log_Z_estimate(out.log_w)) - 1.3) < 4 * stderr + 1e-3

    with torch.no_grad():
        x, log_q = flow.sample_and_log_prob(2000)
    flow_ess = ess(target.log_prob(x) - log_q)
    assert float(ess(out.log_w)) > float(flow_ess) + 0.1
    assert not out.log_w.requires_grad and flow.mean.grad is None

    # towards g = p²/q (the module's α = 2): log ∫ p²/q by quadrature
    grid = torch.linspace(-15.0, 15.0, 30_001, dtype=F64)[:, None]
    with torch.no_grad():
        log_g = 2 * target.log_prob(grid) - flow.log_prob(grid)
    truth = float(torch.logsumexp(log_g, 0) + math.log(30.0 / 30_000))
    out = ais(flow, target, 2000, generator=torch.Generator().manual_seed(5))
    w = (out.log_w - out.log_w.max()).exp()
    stderr = float(w.std() / (w.mean() * math.sqrt(len(w))))
    assert abs(float(log_Z_estimate(out.log_w)) - truth) < 4 * stderr + 1e-3


def test_non_finite_chains_are_dropped() -> None:
    flow = GaussianFlow([0.0, 0.0], [1.0, 1.0], seed=5)
    target = HalfGaussianTarget([0.0, 0.0], [1.0, 1.0])
    for transition in ("metropolis", "hmc"):
        ais = AIS(2, n_intermediate=2, transition=transition, step_size=0.3, metropolis_std=1.0)
        out = ais(flow, target, 400, generator=torch.Generator().manual_seed(6))
        assert 100 < out.n_dropped < 300 and len(out.x) + out.n_dropped == 400
        assert (out.x[:, 0] > 0).all() and torch.isfinite(out.log_w).all()


def test_helpers() -> None:
    torch.testing.assert_close(
        log_Z_estimate(torch.log(torch.tensor([1.0, 3.0]))), torch.tensor(math.log(2.0))
    )
    assert float(ess(torch.zeros(10))) == pytest.approx(1.0)
    assert float(ess(torch.tensor([0.0, -1e3, -1e3]))) == pytest.approx(1 / 3)
    assert float(ess(torch.zeros(5), n=10)) == pytest.approx(0.5)


# transitions


def test_hmc_leaves_a_gaussian_invariant_and_tunes_its_step_size() -> None:
    gen = torch.Generator().manual_seed(7)
    stds = [0.5, 0.8, 1.0, 1.2, 1.5, 2.0]
    flow = GaussianFlow([0.0] * 6, [1.0] * 6)
    target = GaussianTarget([1.0, -2.0, 0.0, 0.5, 3.0, -1.0], stds, log_Z=0.4)
    ais = AIS(6, n_intermediate=1, transition="hmc", step_size=0.1, n_leapfrog=5)  # π_{1/2} = p

    # tuning from a too-small step settles around the target acceptance
    x = target.sample(2000, gen)
    rates = []
    for _ in range(150):
        x, rate = ais.transition(flow, target, x, 1, generator=gen)
        rates.append(float(rate))
    assert min(rates[-10:]) < 0.65 < max(rates[-10:])
    assert abs(sum(rates[-50:]) / 50 - 0.65) < 0.1
    tuned = ais.step_sizes.clone()

    # frozen in eval mode; exact samples stay exact
    ais.eval()
    x = target.sample(4000, gen)
    for _ in range(20):
        x, rate = ais.transition(flow, target, x, 1, generator=gen)
    torch.testing.assert_close(ais.step_sizes, tuned, rtol=0, atol=0)
    _moments_agree(x, target.mean, target.std**2)


def test_hmc_step_size_rule_and_buffers() -> None:
    flow = GaussianFlow([0.0], [1.0])
    target = GaussianTarget([0.0], [1.0])
    x = torch.randn(500, 1, generator=torch.Generator().manual_seed(8), dtype=F64)
    small = AIS(1, n_intermediate=2, transition="hmc", step_size=0.01)
    small.transition(flow, target, x, 2)  # acceptance ≈ 1: grow
    torch.testing.assert_close(small.own_step_size, torch.tensor([0.009, 0.009 * 1.05], dtype=F64))
    torch.testing.assert_close(small.shared_step_size, torch.tensor(0.001 * 1.02, dtype=F64))
    big = AIS(1, n_intermediate=1, transition="hmc", step_size=20.0, n_leapfrog=2)
    _, rate = big.transition(flow, target, x, 1)  # acceptance ≈ 0: shrink
    assert float(rate) < 0.65
    torch.testing.assert_close(big.step_sizes, torch.tensor([18 / 1.05 + 2 / 1.02], dtype=F64))
    frozen = AIS(1, n_intermediate=1, transition="hmc", step_size=0.01, adapt=False)
    frozen.transition(flow, target, x, 1)
    torch.testing.assert_close(frozen.step_sizes, torch.tensor([0.01], dtype=F64))
    assert set(small.state_dict()) == {"own_step_size", "shared_step_size"}
    with pytest.raises(ValueError, match="j must be in 1..2"):
        small.transition(flow, target, x, 0)


def test_metropolis_leaves_a_mixture_invariant() -> None:
    gen = torch.Generator().manual_seed(9)
    target = MixtureTarget()
    ais = AIS(1, n_intermediate=1, transition="metropolis", metropolis_std=2.0)
    x0 = target.sample(4000, gen)
    x = x0
    for _ in range(100):
        x, rate = ais.transition(GaussianFlow([0.0], [3.0]), target, x, 1, generator=gen)
    assert 0.1 < float(rate) < 0.9
    assert (x != x0).float().mean() > 0.99  # the chains moved
    exact = target.sample(400_000, gen)
    _moments_agree(x, exact.mean(0), exact.var(0))
    left = float((x < 0).double().mean())
    assert abs(left - 0.3) < 4 * math.sqrt(0.21 / 4000)


def test_ais_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="transition must be one of"):
        AIS(2, transition="mala")
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        AIS(3)(GaussianFlow([0.0], [1.0]), GaussianTarget([0.0], [1.0]), 5)


# replay buffer


def _filled(weights: list[float], max_length: int = 10, min_length: int = 0):
    buffer = PrioritisedReplayBuffer(1, max_length, min_length)
    n = len(weights)
    buffer.add(
        torch.arange(n, dtype=F64)[:, None], torch.tensor(weights, dtype=F64).log(), torch.zeros(n)
    )
    return buffer


def test_buffer_draws_in_proportion_to_the_weights() -> None:
    buffer = _filled([1.0, 2.0, 7.0])
    gen = torch.Generator().manual_seed(10)
    n = 4000
    counts = torch.zeros(3)
    for _ in range(n):
        (batch,) = buffer.sample(1, 1, generator=gen)
        counts[batch.indices] += 1
    expected = torch.tensor([0.1, 0.2, 0.7])
    assert ((counts / n - expected).abs() < 4 * (expected * (1 - expected) / n).sqrt()).all()


def test_buffer_draws_without_replacement_in_minibatches() -> None:
    buffer = _filled([1e-3, 1.0, 1e3, 1.0, 2.0, 5.0, 1.0, 1.0, 1.0, 1e-6])
    batches = buffer.sample(2, 5, generator=torch.Generator().manual_seed(11))
    assert len(batches) == 2 and all(len(b.indices) == 5 for b in batches)
    indices = torch.cat([b.indices for b in batches])
    assert sorted(indices.tolist()) == list(range(10))
    torch.testing.assert_close(batches[0].x[:, 0], batches[0].indices.to(F64))
    with pytest.raises(ValueError, match="cannot draw"):
        buffer.sample(1, 11)


def test_buffer_is_a_fifo_ring_with_a_min_length_gate() -> None:
    buffer = PrioritisedReplayBuffer(1, max_length=5, min_length=4)
    assert len(buffer) == 0 and not buffer.ready
    buffer.add(torch.arange(3, dtype=F64)[:, None], torch.zeros(3), torch.zeros(3))
    assert len(buffer) == 3 and not buffer.ready
    buffer.add(torch.arange(3, 7, dtype=F64)[:, None], torch.zeros(4), torch.zeros(4))
    assert len(buffer) == 5 and buffer.ready
    assert sorted(buffer.x[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]  # 0 and 1 evicted
    buffer.add(torch.arange(10, 17, dtype=F64)[:, None], torch.zeros(7), torch.zeros(7))
    assert sorted(buffer.x[:, 0].tolist()) == [12.0, 13.0, 14.0, 15.0, 16.0]


def test_buffer_adjust_and_killed_entries() -> None:
    buffer = _filled([1.0, 1.0, 1.0, 1.0])
    idx = torch.tensor([0, 2])
    buffer.adjust(
        idx, torch.tensor([float("nan"), 0.5], dtype=F64), torch.tensor([-1.0, -2.0], dtype=F64)
    )
    assert buffer.log_w[0] == -math.inf and float(buffer.log_w[2]) == pytest.approx(0.5)
    torch.testing.assert_close(
        buffer.log_q_old[:4], torch.tensor([-1.0, 0.0, -2.0, 0.0], dtype=F64)
    )
    gen = torch.Generator().manual_seed(12)
    for _ in range(200):
        (batch,) = buffer.sample(1, 3, generator=gen)
        assert 0 not in batch.indices.tolist()
    with pytest.raises(ValueError, match="3 with finite weight"):
        buffer.sample(2, 2)


def test_buffer_state_dict_round_trip() -> None:
    buffer = PrioritisedReplayBuffer(2, max_length=6, min_length=2)
    gen = torch.Generator().manual_seed(13)
    for _ in range(3):  # wraps around the ring
        buffer.add(
            torch.randn(4, 2, generator=gen, dtype=F64),
            torch.randn(4, dtype=F64),
            torch.randn(4, dtype=F64),
        )
    state = buffer.state_dict()
    assert all(isinstance(v, (torch.Tensor, int)) for v in state.values())
    restored = PrioritisedReplayBuffer(2, max_length=6, min_length=2)
    restored.load_state_dict(state)
    assert len(restored) == len(buffer) == 6
    a = buffer.sample(2, 2, generator=torch.Generator().manual_seed(14))
    b = restored.sample(2, 2, generator=torch.Generator().manual_seed(14))
    for left, right in zip(a, b, strict=True):
        for u, v in zip(left, right, strict=True):
            torch.testing.assert_close(u, v)
    buffer.add(torch.zeros(1, 2, dtype=F64), torch.zeros(1), torch.zeros(1))
    restored.add(torch.zeros(1, 2, dtype=F64), torch.zeros(1), torch.zeros(1))
    torch.testing.assert_close(buffer.x, restored.x)  # same write position
    with pytest.raises(ValueError, match="max_length"):
        PrioritisedReplayBuffer(2, max_length=7, min_length=2).load_state_dict(state)


def test_adjusted_weights() -> None:
    log_q_new = torch.tensor([0.0, -1.0, 3.0], dtype=F64)
    log_q_old = torch.tensor([1.0, -1.0, 0.0], dtype=F64)
    weights, log_adj = adjusted_weights(log_q_new, log_q_old, alpha=2.0)
    torch.testing.assert_close(log_adj, log_q_old - log_q_new)  # log(q_old / q_θ)
    torch.testing.assert_close(weights, log_adj.exp())
    clipped, _ = adjusted_weights(log_q_new, log_q_old, alpha=2.0, clip=1.5)
    torch.testing.assert_close(clipped, torch.tensor([1.5, 1.0, math.exp(-3.0)], dtype=F64))
    _, none = adjusted_weights(log_q_new, log_q_old, alpha=1.0)
    torch.testing.assert_close(none, torch.zeros(3, dtype=F64))
