"""Lagrangians L(x, u, t) of the Lagrangian Schrödinger bridge and their inverse maps.

Each Lagrangian gives the running cost of a path and the control that a potential Φ induces,
u = (∂L/∂u)⁻¹(-∇ₓΦ), which is NLSB's drift. Three families, as in the paper:

- :class:`PotentialFree`: L = ½|u|², u = -∇Φ.
- :class:`Newtonian`: L = ½M|u|² - λ_U U(x, t) with a named prior U, u = -∇Φ / M.
- :class:`Cellular`: L = ½|u|² - λ_U log p(x) + ½λ_v|u - v|² with p a Gaussian mixture fitted
  to the cells at both ends of each interval and v the RNA velocity of the starting cell,
  u = (λ_v v - ∇Φ) / (1 + λ_v).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["PRIORS", "Cellular", "Lagrangian", "Newtonian", "PotentialFree", "make_lagrangian"]


class Lagrangian(nn.Module):
    """Base class: ``forward(x, u, t, v)`` is L, ``control(grad, x, t, v)`` the inverse map.

    Shapes:
        - x, u, grad, v: ``(batch, dim)``; t: a float
        - output of ``forward``: ``(batch,)``
    """

    #: Whether the Lagrangian uses the velocity v of each sample.
    uses_velocity = False

    def control(
        self, grad: torch.Tensor, x: torch.Tensor, t: float, v: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, u: torch.Tensor, t: float, v: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError


class PotentialFree(Lagrangian):
    """L = ½|u|² (kinetic energy), so u = -∇Φ."""

    def control(self, grad, x, t, v=None):
        return -grad

    def forward(self, x, u, t, v=None):
        return 0.5 * (u**2).sum(-1)


# Named priors U(x, t) for the Newtonian Lagrangian L = ½M|u|² - λ_U U: regions where U is
# large are cheap to cross, obstacles are regions where U is very negative.
def _cubic(x: torch.Tensor, t: float, coefficients: Sequence[float] = (1.0,)) -> torch.Tensor:
    """U = Σᵢ aᵢ xᵢ³ / 3, the potential of the drift -a ⊙ x² (the psde3d benchmark)."""
    a = torch.as_tensor(coefficients, dtype=x.dtype, device=x.device)
    return (a * x**3 / 3).sum(-1)


def _harmonic(x: torch.Tensor, t: float, k: float = 1.0) -> torch.Tensor:
    """U = -½k|x|²: paths are pulled towards the origin."""
    return -0.5 * k * (x**2).sum(-1)


def _hill(x: torch.Tensor, t: float, height: float = 10.0, width: float = 0.5) -> torch.Tensor:
    """U = -h exp(-|x|² / 2w²): a Gaussian hill at the origin that paths go around."""
    return -height * torch.exp(-(x**2).sum(-1) / (2 * width**2))


def _box(
    x: torch.Tensor, t: float, half_width: float = 0.5, height: float = 10.0, sharpness: float = 20
) -> torch.Tensor:
    """U = -h inside the centred square of half side ``half_width`` (a smoothed indicator)."""
    inside = torch.sigmoid(sharpness * (half_width - x.abs())).prod(-1)
    return -height * inside


def _slit(
    x: torch.Tensor, t: float, gap: float = 0.3, thickness: float = 0.1, height: float = 10.0
) -> torch.Tensor:
    """U = -h on the wall x₀ ≈ 0, except for a slit |x₁| < ``gap`` (2-D)."""
    wall = torch.exp(-(x[..., 0] ** 2) / (2 * thickness**2))
    opening = torch.sigmoid(20 * (gap - x[..., 1].abs()))
    return -height * wall * (1 - opening)


PRIORS: dict[str, Callable[..., torch.Tensor]] = {
    "box": _box,
    "cubic": _cubic,
    "harmonic": _harmonic,
    "hill": _hill,
    "slit": _slit,
}


class Newtonian(Lagrangian):
    """L = ½M|u|² - λ_U U(x, t), so u = -∇Φ / M.

    Args:
        mass: M.
        prior: Name of a prior in :data:`PRIORS`, or ``None`` for U = 0.
        prior_args: Keyword arguments of the prior (``{"coefficients": [1, 0.5, 0.1]}``).
        weight: λ_U.
    """

    def __init__(
        self,
        mass: float = 1.0,
        prior: str | None = None,
        prior_args: Mapping[str, Any] | None = None,
        weight: float = 1.0,
    ) -> None:
        super().__init__()
        if mass <= 0:
            raise ValueError(f"Newtonian needs mass > 0, got {mass}")
        if prior is not None and prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; choose one of {sorted(PRIORS)} or None")
        self.mass, self.prior, self.weight = mass, prior, weight
        self.prior_args = dict(prior_args or {})

    def potential(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """The prior U(x, t), ``(batch,)``."""
        if self.prior is None:
            return x.new_zeros(x.shape[0])
        return PRIORS[self.prior](x, t, **self.prior_args)

    def control(self, grad, x, t, v=None):
        return -grad / self.mass

    def forward(self, x, u, t, v=None):
        return 0.5 * self.mass * (u**2).sum(-1) - self.weight * self.potential(x, t)


class Cellular(Lagrangian):
    """L = ½|u|² - λ_U log p_k(x) + ½λ_v|u - v|², on interval k of the observed times.

    The mixtures are buffers (saved with the weights); :meth:`fit` fills them with
    scikit-learn's full-covariance ``GaussianMixture`` on the cells at both ends of each interval.

    Args:
        dim: Dimension of x.
        times: The observed times; interval k is ``[times[k], times[k + 1]]``.
        n_components: Mixture components per interval.
        weight_density: λ_U.
        weight_velocity: λ_v.
    """

    uses_velocity = True

    def __init__(
        self,
        dim: int,
        times: Sequence[float],
        n_components: Sequence[int],
        weight_density: float = 1.0,
        weight_velocity: float = 1.0,
    ) -> None:
        super().__init__()
        intervals = len(times) - 1
        if len(n_components) != intervals:
            raise ValueError(
                f"Cellular needs one mixture size per interval ({intervals}), got {n_components}"
            )
        size = max(n_components)
        self.n_components = list(n_components)
        self.weight_density, self.weight_velocity = weight_density, weight_velocity
        self.register_buffer("times", torch.tensor(list(times), dtype=torch.float32))
        self.register_buffer("means", torch.zeros(intervals, size, dim))
        self.register_buffer("precision_cholesky", torch.eye(dim).repeat(intervals, size, 1, 1))
        self.register_buffer("log_weights", torch.full((intervals, size), -math.inf))
        self.register_buffer("fitted", torch.tensor(False))

    def fit(self, cells: Sequence[torch.Tensor], seed: int = 0) -> None:
        """Fits one mixture per interval to ``cells[k]`` and ``cells[k + 1]`` (per time)."""
        from sklearn.mixture import GaussianMixture

        for k, components in enumerate(self.n_components):
            data = torch.cat([cells[k], cells[k + 1]]).double().cpu().numpy()
            mixture = GaussianMixture(components, covariance_type="full", random_state=seed)
            mixture.fit(data)
            dtype = self.means.dtype
            self.means[k, :components] = torch.as_tensor(mixture.means_, dtype=dtype)
            self.precision_cholesky[k, :components] = torch.as_tensor(
                mixture.precisions_cholesky_, dtype=dtype
            )
            self.log_weights[k, :components] = torch.as_tensor(mixture.weights_, dtype=dtype).log()
        self.fitted.fill_(True)

    def log_density(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """log p_k(x) for the interval k that holds t, ``(batch,)``."""
        if not bool(self.fitted):
            raise RuntimeError("Cellular.fit() has not been called: the mixtures are empty")
        k = int(torch.searchsorted(self.times[1:-1], torch.tensor(float(t)), right=True))
        # sklearn's precisions_cholesky_ P satisfies Σ⁻¹ = P Pᵀ, so the Mahalanobis term is
        # |(x - μ)ᵀ P|² and log det Σ^{-1/2} = Σ log diag P
        centred = x.unsqueeze(1) - self.means[k]  # (batch, components, dim)
        y = torch.einsum("bcd,cde->bce", centred, self.precision_cholesky[k])
        log_det = torch.diagonal(self.precision_cholesky[k], dim1=-2, dim2=-1).log().sum(-1)
        dim = x.shape[-1]
        log_normal = -0.5 * (y**2).sum(-1) + log_det - 0.5 * dim * math.log(2 * math.pi)
        return torch.logsumexp(log_normal + self.log_weights[k], dim=-1)

    def control(self, grad, x, t, v=None):
        if v is None:
            raise ValueError("the cellular Lagrangian needs the velocity v of each sample")
        return (self.weight_velocity * v - grad) / (1 + self.weight_velocity)

    def forward(self, x, u, t, v=None):
        if v is None:
            raise ValueError("the cellular Lagrangian needs the velocity v of each sample")
        kinetic = 0.5 * (u**2).sum(-1)
        alignment = 0.5 * self.weight_velocity * ((u - v) ** 2).sum(-1)
        return kinetic - self.weight_density * self.log_density(x, t) + alignment


def make_lagrangian(config: Mapping[str, Any], *, dim: int, times: Sequence[float]) -> Lagrangian:
    """Builds a Lagrangian from its JSON config: ``{"kind": "potential-free"}``,
    ``{"kind": "newtonian", "mass": 1, "prior": "cubic", "prior_args": {...}, "weight": 1}`` or
    ``{"kind": "cellular", "n_components": [9, 9, 7, 8], ...}``."""
    config = dict(config)
    kind = config.pop("kind", "potential-free")
    if kind == "potential-free":
        if config:
            raise ValueError(f"the potential-free Lagrangian takes no options, got {config}")
        return PotentialFree()
    if kind == "newtonian":
        return Newtonian(**config)
    if kind == "cellular":
        return Cellular(dim=dim, times=times, **config)
    raise ValueError(
        f"unknown Lagrangian kind {kind!r}; choose 'potential-free', 'newtonian' or 'cellular'"
    )
