"""Annealed importance sampling from a flow q towards g = p^α q^(1-α), FAB's sampler.

The chains start at flow samples and pass through the intermediate densities

    log π_β(x) = (1 - β) log q(x) + β log g(x) = (1 - αβ) log q(x) + αβ log p(x),

for β = linspace(0, 1, K + 2), one Markov transition per intermediate β_1..β_K. At α = 2 the
chain ends at g ∝ p²/q, the minimum-variance proposal for FAB's loss; at α = 1 it ends at p
itself, for evaluation. p may be unnormalised and may return -inf off its support.

References:
    Midgley, Stimper, Simm, Schölkopf, Hernández-Lobato, "Flow Annealed Importance Sampling
    Bootstrap", ICLR 2023, arXiv:2208.01893.
    Neal, "Annealed Importance Sampling", Statistics and Computing 11, 2001.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import torch
from torch import nn

__all__ = ["AIS", "AISResult", "ess", "log_Z_estimate"]

_GRAD_CLAMP = 1e3
_TRANSITIONS = ("metropolis", "hmc")


class _Flow(Protocol):
    def sample_and_log_prob(self, n: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def log_prob(self, x: torch.Tensor) -> torch.Tensor: ...


class _Target(Protocol):
    def log_prob(self, x: torch.Tensor) -> torch.Tensor: ...


class AISResult(NamedTuple):
    """The kept chains of one AIS run.

    Attributes:
        x: Final states.
        log_w: Log importance weights w.r.t. g = p^α q^(1-α) (unnormalised).
        log_q: Flow log density at ``x`` (the buffer's ``log_q_old``).
        log_p: Target log density at ``x``.
        acceptance: Mean acceptance rate of each transition.
        n_dropped: Chains dropped for a non-finite log p, log q or log w.

    Shapes:
        - x: ``(n_kept, dim)``; log_w, log_q, log_p: ``(n_kept,)``
        - acceptance: ``(n_intermediate,)``
    """

    x: torch.Tensor
    log_w: torch.Tensor
    log_q: torch.Tensor
    log_p: torch.Tensor
    acceptance: torch.Tensor
    n_dropped: int


class _State(NamedTuple):
    """Chain states with their log densities and (for HMC) cleaned input gradients."""

    x: torch.Tensor
    log_q: torch.Tensor
    log_p: torch.Tensor
    grad_q: torch.Tensor | None = None
    grad_p: torch.Tensor | None = None

    def select(self, keep: torch.Tensor) -> _State:
        return _State(*(None if t is None else t[keep] for t in self))

    def where(self, accept: torch.Tensor, other: _State) -> _State:
        """``other`` where ``accept``, else ``self``."""
        fields = []
        for mine, theirs in zip(self, other, strict=True):
            if mine is None:
                fields.append(None)
                continue
            mask = accept.view(-1, *([1] * (mine.dim() - 1)))
            fields.append(torch.where(mask, theirs, mine))
        return _State(*fields)


class AIS(nn.Module):
    """AIS from a flow towards g = p^α q^(1-α) with Metropolis or HMC transitions.

    The HMC step size of intermediate distribution j is ``own[j] + shared``, two registered
    buffers (saved with the weights) that start at 90% and 10% of ``step_size``. In training
    mode with ``adapt``, each transition's mean acceptance is compared with
    ``target_acceptance``: above, ``own[j]`` grows by 5% and ``shared`` by 2%; below, both
    shrink by the same factors. In eval mode the step sizes are frozen.

    Args:
        dim: Dimension of x.
        n_intermediate: K, the number of intermediate distributions (one transition each).
        transition: ``"metropolis"`` (Gaussian random walk, one step of fixed std, no tuning)
            or ``"hmc"`` (identity mass, ``n_leapfrog`` leapfrog steps).
        alpha: α of g = p^α q^(1-α); 2 is FAB's training target, 1 gives p.
        step_size: Initial HMC step size of every intermediate distribution.
        n_leapfrog: HMC leapfrog steps per transition.
        adapt: Tune the HMC step sizes in training mode.
        target_acceptance: The acceptance rate the tuning aims at.
        metropolis_std: Standard deviation of the Metropolis proposal.

    Shapes:
        - output of ``forward(flow, target, n)``: an :class:`AISResult` of at most ``n``
          chains

    References:
        Midgley et al., "Flow Annealed Importance Sampling Bootstrap", ICLR 2023,
        arXiv:2208.01893, Section 3 and Appendix (AIS with HMC transitions).
    """

    own_step_size: torch.Tensor
    shared_step_size: torch.Tensor
    betas: torch.Tensor

    def __init__(
        self,
        dim: int,
        n_intermediate: int = 1,
        transition: str = "metropolis",
        *,
        alpha: float = 2.0,
        step_size: float = 1.0,
        n_leapfrog: int = 5,
        adapt: bool = True,
        target_acceptance: float = 0.65,
        metropolis_std: float = 5.0,
    ) -> None:
        super().__init__()

        # argument checks
        if dim < 1:
            raise ValueError(f"AIS: dim must be at least 1, got {dim}")
        if n_intermediate < 0:
            raise ValueError(f"AIS: n_intermediate must be >= 0, got {n_intermediate}")
        if transition not in _TRANSITIONS:
            raise ValueError(f"AIS: transition must be one of {_TRANSITIONS}, got {transition!r}")
        if step_size <= 0 or metropolis_std <= 0:
            raise ValueError(
                f"AIS: step_size and metropolis_std must be positive, got {step_size} and "
                f"{metropolis_std}"
            )
        if n_leapfrog < 1:
            raise ValueError(f"AIS: n_leapfrog must be at least 1, got {n_leapfrog}")
        if not 0 < target_acceptance < 1:
            raise ValueError(f"AIS: target_acceptance must be in (0, 1), got {target_acceptance}")

        # settings
        self.dim, self.n_intermediate, self.transition_kind = dim, n_intermediate, transition
        self.alpha, self.n_leapfrog, self.adapt = float(alpha), n_leapfrog, adapt
        self.target_acceptance, self.metropolis_std = target_acceptance, metropolis_std

        # annealing schedule (derived, not saved) and HMC step sizes (saved)
        betas = torch.linspace(0.0, 1.0, n_intermediate + 2, dtype=torch.float64)
        self.register_buffer("betas", betas, persistent=False)
        own = torch.full((n_intermediate,), 0.9 * step_size, dtype=torch.float64)
        self.register_buffer("own_step_size", own)
        shared = torch.tensor(0.1 * step_size, dtype=torch.float64)
        self.register_buffer("shared_step_size", shared)

    @property
    def step_sizes(self) -> torch.Tensor:
        """The HMC step size of each intermediate distribution, ``own + shared``, ``(K,)``."""
        return self.own_step_size + self.shared_step_size

    @torch.no_grad()
    def forward(
        self,
        flow: _Flow,
        target: _Target,
        n: int,
        *,
        alpha: float | None = None,
        generator: torch.Generator | None = None,
    ) -> AISResult:
        """Runs ``n`` AIS chains from the flow towards g = p^α q^(1-α).

        Args:
            flow: Has ``sample_and_log_prob(n)`` and ``log_prob(x)``.
            target: Has ``log_prob(x)``, the unnormalised log p (may be -inf).
            n: Number of chains.
            alpha: Overrides the module's α for this run (``alpha=1`` gives weights w.r.t. p).
            generator: Source of the transitions' randomness (the flow uses its own).

        Returns:
            The chains with finite log densities and weights, and how many were dropped.
        """
        alpha = self.alpha if alpha is None else float(alpha)
        hmc = self.transition_kind == "hmc"
        betas = self.betas.tolist()

        # start: flow samples, chains off the support dropped
        x, log_q = flow.sample_and_log_prob(n)
        self._check_shape(x)
        state = self._evaluate(flow, target, x, hmc, log_q=None if hmc else log_q.detach())
        keep = torch.isfinite(state.log_q) & torch.isfinite(state.log_p)
        if not keep.any():
            raise RuntimeError(
                f"AIS: all {len(keep)} flow samples have non-finite log p or log q; check that "
                "the flow covers the target's support"
            )
        state = state.select(keep)
        log_w = alpha * betas[1] * (state.log_p - state.log_q)

        # anneal: T_j keeps π_{β_j} invariant, then the weight moves on to π_{β_{j+1}}
        acceptance = []
        for j in range(1, self.n_intermediate + 1):
            state, rate = self._transition(flow, target, state, j, alpha, generator)
            acceptance.append(rate)
            log_w = log_w + alpha * (betas[j + 1] - betas[j]) * (state.log_p - state.log_q)

        # end: drop chains whose densities or weights went non-finite
        final = torch.isfinite(state.log_q) & torch.isfinite(state.log_p) & torch.isfinite(log_w)
        state, log_w = state.select(final), log_w[final]
        return AISResult(
            x=state.x,
            log_w=log_w,
            log_q=state.log_q,
            log_p=state.log_p,
            acceptance=torch.stack(acceptance) if acceptance else x.new_zeros(0),
            n_dropped=len(x) - len(log_w),
        )

    @torch.no_grad()
    def transition(
        self,
        flow: _Flow,
        target: _Target,
        x: torch.Tensor,
        j: int,
        *,
        alpha: float | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Applies the transition T_j, which leaves π_{β_j} invariant, to ``x`` once.

        Tunes the step size as a run does (training mode with ``adapt`` only).

        Args:
            flow: The flow q.
            target: The target p.
            x: Chain states, ``(n, dim)``, with finite log p and log q.
            j: Intermediate distribution, 1..K.
            alpha: Overrides the module's α.
            generator: Source of randomness.

        Returns:
            The new states ``(n, dim)`` and the mean acceptance rate (a scalar).
        """
        if not 1 <= j <= self.n_intermediate:
            raise ValueError(f"AIS.transition: j must be in 1..{self.n_intermediate}, got {j}")
        self._check_shape(x)
        alpha = self.alpha if alpha is None else float(alpha)
        state = self._evaluate(flow, target, x, self.transition_kind == "hmc")
        state, rate = self._transition(flow, target, state, j, alpha, generator)
        return state.x, rate

    # transitions

    def _transition(
        self,
        flow: _Flow,
        target: _Target,
        state: _State,
        j: int,
        alpha: float,
        generator: torch.Generator | None,
    ) -> tuple[_State, torch.Tensor]:
        coef = alpha * float(self.betas[j])
        if self.transition_kind == "metropolis":
            return self._metropolis(flow, target, state, coef, generator)
        eps = float(self.step_sizes[j - 1])
        state, rate = self._hmc(flow, target, state, coef, eps, generator)
        if self.training and self.adapt:
            self._tune(j, float(rate))
        return state, rate

    def _metropolis(
        self,
        flow: _Flow,
        target: _Target,
        state: _State,
        coef: float,
        generator: torch.Generator | None,
    ) -> tuple[_State, torch.Tensor]:
        noise = torch.randn(
            state.x.shape, generator=generator, dtype=state.x.dtype, device=state.x.device
        )
        proposal = self._evaluate(flow, target, state.x + self.metropolis_std * noise, False)
        log_ratio = _log_pi(proposal, coef) - _log_pi(state, coef)
        return self._accept(state, proposal, log_ratio, generator)

    def _hmc(
        self,
        flow: _Flow,
        target: _Target,
        state: _State,
        coef: float,
        eps: float,
        generator: torch.Generator | None,
    ) -> tuple[_State, torch.Tensor]:
        x = state.x
        momentum = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

        # leapfrog: half kick, L drifts with full kicks between, half kick
        p = momentum + 0.5 * eps * _grad_log_pi(state, coef)
        new = state
        for step in range(self.n_leapfrog):
            new = self._evaluate(flow, target, new.x + eps * p, True)
            kick = eps if step < self.n_leapfrog - 1 else 0.5 * eps
            p = p + kick * _grad_log_pi(new, coef)

        # Metropolis correction on H = -log π + |p|²/2
        h_old = -_log_pi(state, coef) + 0.5 * momentum.pow(2).sum(-1)
        h_new = -_log_pi(new, coef) + 0.5 * p.pow(2).sum(-1)
        return self._accept(state, new, h_old - h_new, generator)

    @staticmethod
    def _accept(
        state: _State,
        proposal: _State,
        log_ratio: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[_State, torch.Tensor]:
        """Accepts with probability min(1, exp(log_ratio)); non-finite ratios are rejected."""
        finite = torch.isfinite(log_ratio)
        log_accept = torch.where(finite, log_ratio.clamp(max=0.0), -math.inf)
        u = torch.rand(
            log_ratio.shape, generator=generator, dtype=log_ratio.dtype, device=log_ratio.device
        )
        accept = u.log() < log_accept
        rate = (torch.logsumexp(log_accept, 0) - math.log(len(log_accept))).exp()
        return state.where(accept, proposal), rate

    def _tune(self, j: int, rate: float) -> None:
        up = rate > self.target_acceptance
        self.own_step_size[j - 1].mul_(1.05 if up else 1 / 1.05)
        self.shared_step_size.mul_(1.02 if up else 1 / 1.02)

    # densities

    def _check_shape(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"AIS: states must have shape (n, {self.dim}), got {tuple(x.shape)}; build AIS "
                "with the flow's dimension"
            )

    @staticmethod
    def _evaluate(
        flow: _Flow,
        target: _Target,
        x: torch.Tensor,
        with_grad: bool,
        log_q: torch.Tensor | None = None,
    ) -> _State:
        """log q, log p at ``x`` (``log_q`` reused when given) and, for HMC, their gradients."""
        if not with_grad:
            log_q = flow.log_prob(x) if log_q is None else log_q
            return _State(x, log_q, target.log_prob(x))
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            log_q, log_p = flow.log_prob(x), target.log_prob(x)
            grad_q, grad_p = _input_grad(log_q, x), _input_grad(log_p, x)
        return _State(x.detach(), log_q.detach(), log_p.detach(), grad_q, grad_p)


def _input_grad(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """∂(Σ y)/∂x with NaN set to 0 and entries clamped to ±1e3."""
    if not y.requires_grad:
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    if grad is None:
        return torch.zeros_like(x)
    return _clean(grad)


def _clean(grad: torch.Tensor) -> torch.Tensor:
    grad = torch.nan_to_num(grad, nan=0.0, posinf=_GRAD_CLAMP, neginf=-_GRAD_CLAMP)
    return grad.clamp(-_GRAD_CLAMP, _GRAD_CLAMP)


def _log_pi(state: _State, coef: float) -> torch.Tensor:
    """log π = (1 - αβ) log q + αβ log p, with the end points exact (no 0 · inf)."""
    if coef == 0.0:
        return state.log_q
    if coef == 1.0:
        return state.log_p
    return (1.0 - coef) * state.log_q + coef * state.log_p


def _grad_log_pi(state: _State, coef: float) -> torch.Tensor:
    assert state.grad_q is not None and state.grad_p is not None, "HMC state lacks gradients"
    return _clean((1.0 - coef) * state.grad_q + coef * state.grad_p)


def log_Z_estimate(log_w: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """log of the importance-sampling estimate of the normalising constant, log mean w.

    Args:
        log_w: Log importance weights, ``(n_kept,)``.
        n: Number of chains drawn, when some were dropped with weight zero (p = 0 there);
            defaults to ``len(log_w)``.

    Returns:
        logsumexp(log w) - log n, a scalar.
    """
    n = len(log_w) if n is None else n
    return torch.logsumexp(log_w, 0) - math.log(n)


def ess(log_w: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """Normalised effective sample size 1 / (n Σ w̄²) with w̄ the self-normalised weights.

    Args:
        log_w: Log importance weights, ``(n_kept,)``.
        n: Number of chains drawn (see :func:`log_Z_estimate`); defaults to ``len(log_w)``.

    Returns:
        A scalar in [1/n, 1]; 1 for equal weights.

    >>> float(ess(torch.zeros(4)))
    1.0
    """
    n = len(log_w) if n is None else n
    log_w_bar = log_w - torch.logsumexp(log_w, 0)
    return (-torch.logsumexp(2.0 * log_w_bar, 0)).exp() / n
