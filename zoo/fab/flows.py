"""Normalizing flows for FAB: a common interface and a RealNVP with learned invertible linears.

A flow maps base noise z ~ N(0, I) to x = f(z). FAB needs samples with their log density,
``log q(x) = log N(z) - log|det ∂x/∂z|``, and the density of given points,
``log q(x) = log N(f⁻¹(x)) + log|det ∂f⁻¹/∂x|``; both directions are exact here.

References:
    Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017,
    arXiv:1605.08803.
    Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018,
    arXiv:1807.03039 (the LU-parameterised invertible linear layer).
    Midgley, Stimper, Simm, Schölkopf, Hernández-Lobato, "Flow Annealed Importance Sampling
    Bootstrap", ICLR 2023, arXiv:2208.01893.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
from torch import nn

__all__ = ["PRESETS", "AffineCoupling", "Flow", "InvertibleLinear", "RealNVP"]

#: RealNVP sizes used for FAB: the paper's GMM-40 and Many Well 32D flows, and the CPU-scale
#: GMM-40 flow of the reproduction (keyword arguments of :class:`RealNVP`).
PRESETS: dict[str, dict] = {
    "gmm40": {"n_layers": 15, "hidden": (80, 80)},
    "gmm40_cpu": {"n_layers": 10, "hidden": (64, 64)},
    "manywell32": {"n_layers": 10, "hidden": (320, 320)},
}

_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "silu": nn.SiLU, "tanh": nn.Tanh}
_SOFTPLUS_ONE = math.log(math.e - 1)  # softplus(_SOFTPLUS_ONE) = 1


class Flow(nn.Module):
    """Base class: a bijection x = f(z) of a standard normal base in ``dim`` dimensions.

    Subclasses set ``self.layers``, bijections whose ``layer(z)`` gives ``(x, log|det ∂x/∂z|)``
    and ``layer.inverse(x)`` gives ``(z, log|det ∂z/∂x|)``; the flow composes them, and
    sampling and densities follow.

    Args:
        dim: Dimension of x and z.

    Shapes:
        - z, x: ``(n, dim)``; log-dets and log densities: ``(n,)``
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("base_loc", torch.zeros(dim))
        self.register_buffer("base_scale", torch.ones(dim))

    layers: nn.ModuleList

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = f(z) through ``self.layers`` in order, with log|det ∂x/∂z|."""
        log_det = z.new_zeros(z.shape[0])
        for layer in self.layers:
            z, ld = layer(z)
            log_det = log_det + ld
        return z, log_det

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = f⁻¹(x) through ``self.layers`` in reverse, with log|det ∂z/∂x|."""
        log_det = x.new_zeros(x.shape[0])
        for layer in reversed(self.layers):
            x, ld = layer.inverse(x)
            log_det = log_det + ld
        return x, log_det

    def base_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; base_loc, diag(base_scale²)), summed over the last dimension."""
        u = (z - self.base_loc) / self.base_scale
        return (-0.5 * u**2 - self.base_scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def sample_and_log_prob(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` samples x ~ q with log q(x), in one pass through the flow.

        Args:
            n: Number of samples.
            generator: Random generator for the base noise (torch's global one if ``None``).

        Returns:
            ``(x, log_q)`` of shapes ``(n, dim)`` and ``(n,)``.
        """
        loc = self.base_loc
        eps = torch.randn(n, self.dim, generator=generator, dtype=loc.dtype, device=loc.device)
        z = loc + self.base_scale * eps
        x, log_det = self(z)
        return x, self.base_log_prob(z) - log_det

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` samples, ``(n, dim)``."""
        return self.sample_and_log_prob(n, generator=generator)[0]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log q(x) for points ``(n, dim)``, returned as ``(n,)``."""
        z, log_det = self.inverse(x)
        return self.base_log_prob(z) + log_det


def _mlp(n_in: int, hidden: Sequence[int], n_out: int, act: str) -> nn.Sequential:
    widths = [n_in, *hidden]
    modules: list[nn.Module] = []
    for a, b in pairwise(widths):
        modules += [nn.Linear(a, b), _ACTIVATIONS[act]()]
    last = nn.Linear(widths[-1], n_out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*modules, last)


class AffineCoupling(nn.Module):
    """y_B = x_B ⊙ s(x_A) + t(x_A), y_A = x_A, with (t, log s) from an MLP of x_A.

    The MLP's last layer starts at zero, so a fresh coupling is the identity.

    Args:
        dim: Dimension of x.
        transformed: Indices B of the coordinates that are transformed; the rest condition.
        hidden: Widths of the MLP's hidden layers.
        act: Activation between them: ``relu``, ``leaky_relu``, ``silu`` or ``tanh``.
        scale_fn: ``exp`` (s = exp(raw)) or ``softplus`` (s = softplus(raw + log(e - 1))).
    """

    def __init__(
        self, dim: int, transformed: Sequence[int], hidden: Sequence[int], act: str, scale_fn: str
    ) -> None:
        super().__init__()
        trans = torch.as_tensor(list(transformed), dtype=torch.long)
        keep = torch.ones(dim, dtype=torch.bool)
        keep[trans] = False
        cond = torch.arange(dim)[keep]
        self.register_buffer("cond", cond, persistent=False)
        self.register_buffer("trans", trans, persistent=False)
        self.register_buffer("unsort", torch.argsort(torch.cat([cond, trans])), persistent=False)
        self.scale_fn = scale_fn
        self.net = _mlp(len(cond), hidden, 2 * len(trans), act)

    def _shift_log_scale(self, x_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, raw = self.net(x_a).chunk(2, dim=-1)
        if self.scale_fn == "exp":
            return shift, raw
        return shift, torch.log(nn.functional.softplus(raw + _SOFTPLUS_ONE))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_a, x_b = x[:, self.cond], x[:, self.trans]
        shift, log_scale = self._shift_log_scale(x_a)
        y_b = x_b * log_scale.exp() + shift
        return torch.cat([x_a, y_b], -1)[:, self.unsort], log_scale.sum(-1)

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y_a, y_b = y[:, self.cond], y[:, self.trans]
        shift, log_scale = self._shift_log_scale(y_a)
        x_b = (y_b - shift) * torch.exp(-log_scale)
        return torch.cat([y_a, x_b], -1)[:, self.unsort], -log_scale.sum(-1)


class InvertibleLinear(nn.Module):
    """y = W x with W = P L (U + diag(sign ⊙ exp(log_s))), log|det W| = Σ log_s.

    P is a fixed permutation, L unit lower triangular, U strictly upper triangular; the layer
    starts as W = P. The inverse is two triangular solves.

    Args:
        dim: Dimension of x.
        permutation: The permutation P as an index tensor (``(P x)_i = x[permutation[i]]``);
            identity if ``None``.
    """

    def __init__(self, dim: int, permutation: torch.Tensor | None = None) -> None:
        super().__init__()
        perm = torch.arange(dim) if permutation is None else permutation.long()
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm), persistent=False)
        self.register_buffer("sign", torch.ones(dim))
        self.lower = nn.Parameter(torch.zeros(dim, dim))
        self.upper = nn.Parameter(torch.zeros(dim, dim))
        self.log_s = nn.Parameter(torch.zeros(dim))

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        eye = torch.eye(len(self.perm), dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower.tril(-1) + eye
        upper = self.upper.triu(1) + torch.diag(self.sign * self.log_s.exp())
        return lower, upper

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lower, upper = self._factors()
        y = (x @ upper.T @ lower.T)[:, self.perm]
        return y, self.log_s.sum().expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lower, upper = self._factors()
        h = y[:, self.inv_perm]
        h = torch.linalg.solve_triangular(lower.T, h, upper=True, left=False, unitriangular=True)
        x = torch.linalg.solve_triangular(upper.T, h, upper=False, left=False)
        return x, -self.log_s.sum().expand(y.shape[0])


class RealNVP(Flow):
    """RealNVP: ``n_layers`` × [affine coupling on alternating halves, invertible linear].

    Couplings alternate between transforming the second and the first half of the
    coordinates. For ``dim > 2`` each invertible linear starts as a fixed random permutation
    (seeded by the layer's index, so every instance is alike); in 2-D it starts as the identity.
    At initialisation the flow is a permutation, so log q is the standard normal density.

    Args:
        dim: Dimension of x (at least 2).
        n_layers: Number of coupling (+ linear) layers.
        hidden: Hidden widths of each coupling's MLP.
        act: Activation of the MLPs (see :class:`AffineCoupling`).
        invertible_linear: Put a learned :class:`InvertibleLinear` after every coupling.
        scale_fn: ``exp`` or ``softplus`` (see :class:`AffineCoupling`).

    Shapes:
        - z, x: ``(n, dim)``; log-dets: ``(n,)``

    Example:
        >>> flow = RealNVP(2, n_layers=4, hidden=(16, 16)).double()
        >>> x, log_q = flow.sample_and_log_prob(8)
        >>> torch.allclose(log_q, flow.log_prob(x))
        True
    """

    def __init__(
        self,
        dim: int,
        n_layers: int,
        *,
        hidden: Sequence[int] = (80, 80),
        act: str = "relu",
        invertible_linear: bool = True,
        scale_fn: str = "exp",
    ) -> None:
        super().__init__(dim)
        if dim < 2:
            raise ValueError(f"RealNVP needs dim >= 2 to split coordinates, got dim={dim}")
        if n_layers < 1:
            raise ValueError(f"RealNVP needs n_layers >= 1, got {n_layers}")
        if act not in _ACTIVATIONS:
            raise ValueError(f"RealNVP: unknown act={act!r}; choose one of {sorted(_ACTIVATIONS)}")
        if scale_fn not in ("exp", "softplus"):
            raise ValueError(f"RealNVP: unknown scale_fn={scale_fn!r}; use 'exp' or 'softplus'")
        self.n_layers = n_layers
        half = dim // 2
        layers: list[nn.Module] = []
        for i in range(n_layers):
            transformed = range(half, dim) if i % 2 == 0 else range(half)
            layers.append(AffineCoupling(dim, transformed, tuple(hidden), act, scale_fn))
            if invertible_linear:
                g = torch.Generator().manual_seed(i)
                perm = torch.randperm(dim, generator=g) if dim > 2 else None
                layers.append(InvertibleLinear(dim, perm))
        self.layers = nn.ModuleList(layers)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_layers={self.n_layers}"
