"""The paper's alanine dipeptide flow: circular coupled rational-quadratic splines (normflows).

Some coordinates are angles (circular: periodic on [-bound, bound)), the others real. The base
is uniform on the circular coordinates and N(0, 1) on the others; each layer is a coupling
whose rational-quadratic splines are circular on the circular coordinates (the conditioner sees
them through periodic features) and have linear tails outside [-tail_bound, tail_bound] on the
others; a random periodic shift of the circular coordinates follows every ``shift_every``
layers, and a final wrap maps them back into [-bound, bound).

The layers are normflows' (``VincentStimper/normalizing-flows``); this module only assembles
them deterministically (seeded masks and shifts, so that a flow rebuilt from the same
arguments loads a state dict strictly) behind :class:`~zoo.fab.flows.Flow`'s interface.

References:
    Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", NeurIPS 2019,
    arXiv:1906.04032.
    Rezende, Papamakarios, Racanière, Albergo, Kanwar, Shanahan, Cranmer, "Normalizing Flows
    on Tori and Spheres", ICML 2020, arXiv:2002.02428 (circular splines).
    Midgley, Stimper, Simm, Schölkopf, Hernández-Lobato, "Flow Annealed Importance Sampling
    Bootstrap", ICLR 2023, arXiv:2208.01893 (the alanine dipeptide flow).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from zoo.fab.flows import Flow

__all__ = ["CircularSplineFlow"]


class CircularSplineFlow(Flow):
    """Coupled rational-quadratic spline flow with circular coordinates, identity at start.

    Args:
        dim: Dimension of x (at least 2).
        circular: Indices of the circular coordinates (may be empty).
        circular_bound: Half period of the circular coordinates: they live on
            [-circular_bound, circular_bound).
        n_layers: Coupling layers.
        hidden: Hidden units of each conditioner (a residual network).
        n_blocks: Residual blocks per conditioner.
        n_bins: Spline bins.
        tail_bound: Spline interval [-tail_bound, tail_bound] of the real coordinates (linear
            tails outside).
        shift_every: A random periodic shift of the circular coordinates after every
            ``shift_every``-th layer (0: none).
        seed: Seed of the random coupling masks and shifts.

    Shapes:
        - z, x: ``(n, dim)``; log-dets: ``(n,)``

    Example:
        >>> flow = CircularSplineFlow(4, circular=[1], n_layers=2, hidden=8).double()
        >>> x, log_q = flow.sample_and_log_prob(8)
        >>> torch.allclose(log_q, flow.log_prob(x))
        True
    """

    def __init__(
        self,
        dim: int,
        circular: Sequence[int] = (),
        *,
        circular_bound: float = math.pi,
        n_layers: int = 12,
        hidden: int = 256,
        n_blocks: int = 1,
        n_bins: int = 8,
        tail_bound: float = 5.0,
        shift_every: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__(dim)
        import normflows as nf

        # argument checks
        circular = sorted(int(i) for i in circular)
        if dim < 2:
            raise ValueError(f"CircularSplineFlow needs dim >= 2, got dim={dim}")
        if len(set(circular)) != len(circular) or any(not 0 <= i < dim for i in circular):
            raise ValueError(
                f"CircularSplineFlow: circular must be distinct indices in 0..{dim - 1}, got "
                f"{circular}"
            )
        for key, value in (
            ("n_layers", n_layers),
            ("hidden", hidden),
            ("n_blocks", n_blocks),
            ("n_bins", n_bins),
        ):
            if value < 1:
                raise ValueError(f"CircularSplineFlow: {key} must be >= 1, got {value}")
        if circular_bound <= 0 or tail_bound <= 0 or shift_every < 0:
            raise ValueError(
                "CircularSplineFlow: circular_bound and tail_bound must be positive and "
                f"shift_every >= 0, got {circular_bound}, {tail_bound}, {shift_every}"
            )
        self.circular, self.circular_bound, self.n_layers = circular, circular_bound, n_layers

        # which coordinates are uniform in the base (the rest use Flow's Gaussian buffers)
        is_circular = torch.zeros(dim, dtype=torch.bool)
        is_circular[circular] = True
        self.register_buffer("is_circular", is_circular, persistent=False)

        # layers: seeded random masks and shifts, so every instance is alike
        bounds = torch.full((dim,), float(tail_bound))
        bounds[circular] = circular_bound
        generator = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = []
        for i in range(n_layers):
            mask = nf.utils.masks.create_random_binary_mask(dim, seed=seed + i)
            layers.append(
                nf.flows.CircularCoupledRationalQuadraticSpline(
                    dim,
                    n_blocks,
                    hidden,
                    circular,
                    num_bins=n_bins,
                    tail_bound=bounds,
                    init_identity=True,
                    mask=mask,
                )
            )
            if circular and shift_every and (i + 1) % shift_every == 0 and i + 1 < n_layers:
                shift = (2 * torch.rand(len(circular), generator=generator) - 1) * circular_bound
                layers.append(nf.flows.PeriodicShift(circular, circular_bound, shift))
        if circular:
            layers.append(nf.flows.PeriodicWrap(circular, circular_bound))
        self.layers = nn.ModuleList(layers)

    def base_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Uniform on the circular coordinates, N(base_loc, base_scale²) on the others."""
        u = (z - self.base_loc) / self.base_scale
        gauss = -0.5 * u**2 - self.base_scale.log() - 0.5 * math.log(2 * math.pi)
        uniform = torch.full_like(gauss, -math.log(2 * self.circular_bound))
        return torch.where(self.is_circular, uniform, gauss).sum(-1)

    def sample_and_log_prob(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.base_loc
        options = {"generator": generator, "dtype": loc.dtype, "device": loc.device}
        gauss = loc + self.base_scale * torch.randn(n, self.dim, **options)
        uniform = (2 * torch.rand(n, self.dim, **options) - 1) * self.circular_bound
        z = torch.where(self.is_circular, uniform, gauss)
        x, log_det = self(z)
        return x, self.base_log_prob(z) - log_det

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_layers={self.n_layers}, circular={len(self.circular)}"
