"""The OT-Flow potential Φ(x, t), with its gradient and Hessian diagonal in closed form.

NLSB's drift is a function of ∇ₓΦ and its HJB regulariser needs ∂ₜΦ and the diagonal of ∇ₓ²Φ
(the diffusion is diagonal, so the Itô term is Σᵢ ½ gᵢ² ∂ᵢᵢΦ). Differentiating the network by
autograd would take one backward pass per dimension for the diagonal; here one forward pass
carries the Jacobians of the hidden layers and one backward sweep collects the gradient and
the exact diagonal of the Hessian.

References:
    Onken, Wu Fung, Li, Ruthotto, "OT-Flow: Fast and Accurate Continuous Normalizing Flows via
    Optimal Transport", AAAI 2021, arXiv:2006.00104.
    Koshizuka, Sato, "Neural Lagrangian Schrödinger Bridge: Diffusion Modeling for Population
    Dynamics", ICLR 2023, arXiv:2204.04853.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

__all__ = ["OTFlowPotential", "PotentialDerivatives", "log_cosh"]


def log_cosh(z: torch.Tensor) -> torch.Tensor:
    """The activation log(2 cosh z), an antiderivative of tanh, computed without overflow."""
    return z.abs() + torch.log1p(torch.exp(-2 * z.abs()))


class PotentialDerivatives(NamedTuple):
    """Φ and its derivatives at a batch of points.

    Shapes:
        - value, dt: ``(batch,)``
        - grad, hess_diag: ``(batch, dim)`` (derivatives in x only; ``hess_diag`` is ``None``
          when not asked for)
    """

    value: torch.Tensor
    grad: torch.Tensor
    dt: torch.Tensor
    hess_diag: torch.Tensor | None


class OTFlowPotential(nn.Module):
    """Φ(s) = wᵀN(s) + ½ sᵀAᵀA s + bᵀs, with s = [x; t] and N a residual network.

    N(s) = u_L with u_0 = σ(K_0 s + b_0), u_l = u_{l-1} + h σ(K_l u_{l-1} + b_l),
    h = 1 / (n_layers - 1), and σ(z) = log(2 cosh z).

    Args:
        dim: Dimension of x.
        width: Width m of the residual network.
        n_layers: Layers of the residual network (at least 2, as in OT-Flow).
        rank: Rank of A, capped at ``dim + 1``.

    Shapes:
        - x: ``(batch, dim)``; t: a float or ``(batch,)``
        - output of ``forward``: ``(batch,)``
    """

    def __init__(self, dim: int, width: int = 32, n_layers: int = 2, rank: int = 10) -> None:
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"OTFlowPotential needs n_layers >= 2, got {n_layers}")
        self.dim = dim
        self.step = 1.0 / (n_layers - 1)
        self.layers = nn.ModuleList(
            [nn.Linear(dim + 1, width)] + [nn.Linear(width, width) for _ in range(n_layers - 1)]
        )
        self.w = nn.Parameter(torch.ones(width))
        self.A = nn.Parameter(torch.empty(min(rank, dim + 1), dim + 1))
        nn.init.xavier_uniform_(self.A)
        # OT-Flow's constant c is left out: only derivatives of Φ enter the SDE and the losses
        self.linear = nn.Linear(dim + 1, 1, bias=False)
        nn.init.zeros_(self.linear.weight)

    def forward(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        s = self._space_time(x, t)
        u = log_cosh(self.layers[0](s))
        for layer in self.layers[1:]:
            u = u + self.step * log_cosh(layer(u))
        quadratic = 0.5 * ((s @ self.A.T) ** 2).sum(-1)
        return u @ self.w + quadratic + self.linear(s).squeeze(-1)

    def derivatives(
        self, x: torch.Tensor, t: float | torch.Tensor, *, hessian: bool = True
    ) -> PotentialDerivatives:
        """Φ, ∇ₓΦ, ∂ₜΦ and diag ∇ₓ²Φ in one forward pass and one backward sweep.

        The Hessian of wᵀN is a sum over layers of Jᵀ diag(σ''(a) ⊙ z) J, where a is the
        layer's pre-activation, J = ∂a/∂s and z the gradient of wᵀN with respect to the
        layer's output; its diagonal needs only the squares of J.

        Args:
            x: Points, ``(batch, dim)``.
            t: Time, a float or ``(batch,)``.
            hessian: Compute the Hessian diagonal; without it ``hess_diag`` is ``None`` and
                the Jacobians are not carried (the cost of a plain gradient).
        """
        s = self._space_time(x, t)

        # forward: pre-activations a_l and the Jacobians ∂a_l/∂s
        first = self.layers[0]
        a = first(s)
        u = log_cosh(a)
        jacobian = torch.tanh(a).unsqueeze(-1) * first.weight if hessian else None
        stack = [(a, first.weight)]
        for layer in self.layers[1:]:
            a = layer(u)
            a_jacobian = layer.weight @ jacobian if hessian else None  # (batch, width, dim + 1)
            stack.append((a, a_jacobian))
            u = u + self.step * log_cosh(a)
            if hessian:
                jacobian = jacobian + self.step * torch.tanh(a).unsqueeze(-1) * a_jacobian
        value = u @ self.w

        # backward: z = ∂(wᵀN)/∂u_l, with one Hessian term per layer
        z = self.w.expand_as(u)
        hess = s.new_zeros(s.shape)
        for index in range(len(self.layers) - 1, -1, -1):
            a, a_jacobian = stack[index]
            tanh = torch.tanh(a)
            if hessian and index == 0:
                hess = hess + ((1 - tanh**2) * z) @ a_jacobian**2
            elif hessian:
                curvature = self.step * (1 - tanh**2) * z
                hess = hess + torch.einsum("bm,bmk->bk", curvature, a_jacobian**2)
            if index == 0:
                grad = (tanh * z) @ self.layers[0].weight
            else:
                z = z + self.step * (tanh * z) @ self.layers[index].weight

        # quadratic and linear terms
        gram = self.A.T @ self.A
        value = value + 0.5 * ((s @ self.A.T) ** 2).sum(-1) + self.linear(s).squeeze(-1)
        grad = grad + s @ gram + self.linear.weight
        hess = hess + torch.diagonal(gram)
        return PotentialDerivatives(
            value=value,
            grad=grad[:, : self.dim],
            dt=grad[:, self.dim],
            hess_diag=hess[:, : self.dim] if hessian else None,
        )

    def _space_time(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        return torch.cat([x, t.expand(x.shape[0]).unsqueeze(-1)], dim=-1)

    def extra_repr(self) -> str:
        width = self.w.numel()
        return (
            f"dim={self.dim}, width={width}, n_layers={len(self.layers)}, rank={self.A.shape[0]}"
        )
