"""NLSB's Itô SDE dX = f(X, t) dt + g(X, t) dW, its regularisers, and Euler–Maruyama.

The drift comes from the potential through the Lagrangian, f = (∂L/∂u)⁻¹(-∇ₓΦ); the
diffusion is diagonal. Along each path two more coordinates accumulate ∫L(x, f, t) dt and
∫|r(x, t)| dt, with the HJB residual r = ∂ₜΦ + Σᵢ ½ gᵢ² ∂ᵢᵢΦ + L(x, f, t) + ∇ₓΦ·f.

:func:`euler_maruyama` is the training and sampling loop (fixed step, no adjoint);
:class:`TorchsdeSDE` exposes the same augmented SDE to ``torchsde.sdeint``, which the tests use
as the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from zoo.nlsb.lagrangian import Lagrangian
from zoo.nlsb.potential import OTFlowPotential

__all__ = [
    "Coefficients",
    "Diffusion",
    "LagrangianSDE",
    "Path",
    "TorchsdeSDE",
    "euler_maruyama",
    "n_steps",
]


class _LipSwish(nn.Module):
    """0.909 · x · sigmoid(x), a 1-Lipschitz smooth activation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.909 * nn.functional.silu(x)


class Diffusion(nn.Module):
    """The diagonal diffusion g(x, t).

    Args:
        dim: Dimension of x.
        sigma: ``"mlp"``: g = g_max tanh(MLP([x, t])) with two hidden layers of ``width``
            (the paper's); ``"const"``: a learned constant per dimension, g_max tanh(θ);
            a number: that fixed value (0 gives an ODE).
        g_max: Bound of |g| for the learned kinds (the paper's tanh output gives 1).
        width: Hidden width of the MLP.

    Shapes:
        - x: ``(batch, dim)``; t: a float
        - output: ``(batch, dim)``
    """

    def __init__(
        self, dim: int, sigma: float | str = "mlp", g_max: float = 1.0, width: int = 16
    ) -> None:
        super().__init__()
        if isinstance(sigma, str) and sigma not in ("mlp", "const"):
            raise ValueError(f"sigma must be 'mlp', 'const' or a number, got {sigma!r}")
        if g_max <= 0:
            raise ValueError(f"g_max must be positive, got {g_max}")
        self.sigma, self.g_max = sigma, g_max
        if sigma == "mlp":
            self.net = nn.Sequential(
                nn.Linear(dim + 1, width),
                _LipSwish(),
                nn.Linear(width, width),
                _LipSwish(),
                nn.Linear(width, dim),
            )
        elif sigma == "const":
            self.theta = nn.Parameter(torch.full((dim,), 0.5))
        else:
            self.register_buffer("value", torch.full((dim,), float(sigma)))

    @property
    def is_zero(self) -> bool:
        """Whether g ≡ 0 (the ODE baseline)."""
        return not isinstance(self.sigma, str) and float(self.sigma) == 0.0

    def forward(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        if self.sigma == "mlp":
            t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0], 1)
            return self.g_max * torch.tanh(self.net(torch.cat([x, t], dim=-1)))
        if self.sigma == "const":
            return (self.g_max * torch.tanh(self.theta)).expand_as(x)
        return self.value.expand_as(x)


class Coefficients(NamedTuple):
    """Drift, diffusion, running Lagrangian and HJB residual at a batch of points.

    Shapes:
        - drift, diffusion: ``(batch, dim)``; lagrangian, residual: ``(batch,)``
    """

    drift: torch.Tensor
    diffusion: torch.Tensor
    lagrangian: torch.Tensor
    residual: torch.Tensor


class LagrangianSDE(nn.Module):
    """The SDE whose drift is the Lagrangian's control of an OT-Flow potential.

    Args:
        potential: Φ(x, t).
        diffusion: g(x, t).
        lagrangian: L(x, u, t) and its inverse map.
    """

    def __init__(
        self, potential: OTFlowPotential, diffusion: Diffusion, lagrangian: Lagrangian
    ) -> None:
        super().__init__()
        self.potential, self.diffusion, self.lagrangian = potential, diffusion, lagrangian

    def drift(self, x: torch.Tensor, t: float, v: torch.Tensor | None = None) -> torch.Tensor:
        """f(x, t) alone, from the gradient of Φ (no Hessian)."""
        grad = self.potential.derivatives(x, t, hessian=False).grad
        return self.lagrangian.control(grad, x, t, v)

    def coefficients(
        self, x: torch.Tensor, t: float, v: torch.Tensor | None = None
    ) -> Coefficients:
        """Drift, diffusion, L and the HJB residual, from one closed-form pass through Φ."""
        phi = self.potential.derivatives(x, t)
        g = self.diffusion(x, t)
        f = self.lagrangian.control(phi.grad, x, t, v)
        running = self.lagrangian(x, f, t, v)
        residual = phi.dt + 0.5 * (g**2 * phi.hess_diag).sum(-1) + running + (phi.grad * f).sum(-1)
        return Coefficients(f, g, running, residual)


class Path(NamedTuple):
    """The end of an Euler–Maruyama run and its two accumulated integrals.

    Shapes:
        - x: ``(batch, dim)``; action, residual: ``(batch,)``
    """

    x: torch.Tensor
    action: torch.Tensor
    residual: torch.Tensor


def n_steps(t0: float, t1: float, dt: float) -> int:
    """Steps of size at most ``dt`` that cover [t0, t1] exactly."""
    return max(1, math.ceil((t1 - t0) / dt - 1e-9))


def euler_maruyama(
    sde: LagrangianSDE,
    x: torch.Tensor,
    t0: float,
    t1: float,
    dt: float,
    *,
    v: torch.Tensor | None = None,
    regularize: bool = True,
    drop_first_step: bool = False,
    generator: torch.Generator | None = None,
    increments: Callable[[float, float], torch.Tensor] | None = None,
) -> Path:
    """Integrates the SDE from ``t0`` to ``t1`` with equal steps of at most ``dt``.

    Args:
        sde: The SDE.
        x: Starting points, ``(batch, dim)``.
        t0, t1: Time span.
        dt: Largest step.
        v: Per-sample velocities for the cellular Lagrangian, carried unchanged.
        regularize: Accumulate ∫L and ∫|r| (needs the Hessian); off, only ∇Φ is computed.
        drop_first_step: Leave the first step out of the two integrals, as the paper's code
            does (it integrates the first step separately and discards its regularisers).
        generator: Source of the Brownian increments.
        increments: ``increments(s, t)`` returns W(t) - W(s) of shape ``(batch, dim)``
            instead (a ``torchsde.BrownianInterval``, to compare against torchsde).

    Returns:
        The end points and the two integrals (zeros when ``regularize`` is off).
    """
    steps = n_steps(t0, t1, dt)
    h = (t1 - t0) / steps
    action = x.new_zeros(x.shape[0])
    residual = x.new_zeros(x.shape[0])
    noiseless = sde.diffusion.is_zero
    for i in range(steps):
        t = t0 + i * h
        if regularize:
            f, g, running, r = sde.coefficients(x, t, v)
            if i > 0 or not drop_first_step:
                action = action + running * h
                residual = residual + r.abs() * h
        else:
            f = sde.drift(x, t, v)
            g = None if noiseless else sde.diffusion(x, t)
        if noiseless:
            x = x + f * h
            continue
        if increments is not None:
            dw = increments(t, t + h)
        else:
            dw = math.sqrt(h) * torch.randn(
                x.shape, generator=generator, dtype=x.dtype, device=x.device
            )
        x = x + f * h + g * dw
    return Path(x, action, residual)


class TorchsdeSDE(nn.Module):
    """The augmented SDE [x, ∫L, ∫|r|] in ``torchsde``'s interface (Itô, diagonal noise)."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, sde: LagrangianSDE) -> None:
        super().__init__()
        self.sde = sde

    def _split(self, t: torch.Tensor, y: torch.Tensor) -> Coefficients:
        dim = y.shape[-1] - 2
        return self.sde.coefficients(y[:, :dim], float(t))

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = self._split(t, y)
        return torch.cat([c.drift, c.lagrangian[:, None], c.residual.abs()[:, None]], dim=-1)

    def g(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c = self._split(t, y)
        return torch.cat([c.diffusion, torch.zeros_like(y[:, -2:])], dim=-1)
