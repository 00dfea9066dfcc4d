"""Molecular graphs and distance features on plain torch: the neighbour list, the cosine
cutoff and the radial bases of the equivariant Transformer.

:func:`neighbor_list` replaces PyG's ``radius_graph`` (which needs ``torch-cluster`` or
``pyg-lib``): same edge convention, ``edge_index[0]`` the neighbour ``j`` that sends,
``edge_index[1]`` the atom ``i`` that receives.

References:
    Thölke, De Fabritiis. "Equivariant Transformers for Neural Network based Molecular
    Potentials." ICLR 2022. https://arxiv.org/abs/2202.02541

    Unke, Meuwly. "PhysNet: A Neural Network for Predicting Energies, Forces, Dipole Moments
    and Partial Charges." JCTC 2019 (the exponential-normal basis).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["CosineCutoff", "ExpNormalSmearing", "GaussianSmearing", "neighbor_list"]

_PAIR_BUDGET = 1 << 20  # (centre, candidate) pairs per chunk of the neighbour search


def _check_choice(owner: str, option: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{owner}: {option} must be one of {list(choices)}, got {value!r}")


def _check_positive(owner: str, **values: int | float) -> None:
    for option, value in values.items():
        if not value > 0:
            raise ValueError(f"{owner}: {option} must be positive, got {value!r}")


def _check_cutoffs(owner: str, cutoff_lower: float, cutoff_upper: float) -> None:
    if not 0.0 <= cutoff_lower < cutoff_upper:
        raise ValueError(
            f"{owner}: need 0 <= cutoff_lower < cutoff_upper, got cutoff_lower={cutoff_lower}"
            f" and cutoff_upper={cutoff_upper}"
        )


# --- the graph ---------------------------------------------------------------------------------


@torch.no_grad()
def neighbor_list(
    pos: torch.Tensor,
    batch: torch.Tensor,
    cutoff: float,
    max_num_neighbors: int = 32,
    loop: bool = False,
) -> torch.Tensor:
    """All pairs of atoms of the same molecule closer than ``cutoff``.

    Atoms are grouped by molecule and each atom is compared with the atoms of its own molecule
    only (padded to the largest molecule), in chunks, so the cost grows with
    ``n_atoms × largest molecule`` rather than ``n_atoms²``. Where an atom has more than
    ``max_num_neighbors`` neighbours, only the nearest are kept (ties broken arbitrarily);
    elsewhere the cap changes nothing. With ``loop=True`` the atom itself is one of them.

    Args:
        pos: Atom positions.
        batch: The molecule of each atom, ``0 <= batch < n_graphs``, in any order.
        cutoff: Pairs at a distance ``< cutoff`` are neighbours.
        max_num_neighbors: Most neighbours kept per receiving atom.
        loop: Also return the self pairs ``(i, i)``.

    Returns:
        ``edge_index``: row 0 the neighbour ``j``, row 1 the receiving atom ``i``, grouped by
        ``i``. Computed without gradient.

    Shapes:
        - pos: ``(n_atoms, 3)``
        - batch: ``(n_atoms,)``, integer
        - output: ``(2, n_edges)``, ``torch.long``

    Example:
        >>> pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        >>> neighbor_list(pos, torch.tensor([0, 0, 1]), cutoff=2.0).tolist()
        [[1, 0], [0, 1]]
    """
    if pos.dim() != 2 or pos.shape[-1] != 3:
        raise ValueError(f"neighbor_list: pos must be (n_atoms, 3), got {tuple(pos.shape)}")
    if batch.shape != pos.shape[:1] or batch.is_floating_point():
        raise ValueError(
            f"neighbor_list: batch must be an integer tensor of shape ({pos.shape[0]},), got "
            f"{batch.dtype} of shape {tuple(batch.shape)}"
        )
    _check_positive("neighbor_list", cutoff=cutoff, max_num_neighbors=max_num_neighbors)
    n_atoms = pos.shape[0]
    if n_atoms == 0:
        return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
    if int(batch.min()) < 0:
        raise ValueError(f"neighbor_list: batch holds negative molecule {int(batch.min())}")

    # --- atoms sorted by molecule, and each molecule padded to the largest one ---
    order = torch.argsort(batch, stable=True)
    graph = batch[order].long()
    sorted_pos = pos.detach()[order]
    counts = torch.bincount(graph)
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(n_atoms, device=pos.device) - start[graph]
    width = int(counts.max())
    padded = sorted_pos.new_full((counts.numel(), width, 3), math.inf)
    padded[graph, slot] = sorted_pos

    # --- squared distances to every atom of the own molecule, a chunk of centres at a time ---
    rows, cols = [], []
    chunk = max(1, _PAIR_BUDGET // width)
    for first in range(0, n_atoms, chunk):
        centres = torch.arange(first, min(first + chunk, n_atoms), device=pos.device)
        d2 = (sorted_pos[centres, None, :] - padded[graph[centres]]).square().sum(-1)
        if not loop:
            d2[torch.arange(centres.numel(), device=pos.device), slot[centres]] = math.inf
        within = d2 < cutoff**2  # (chunk, width)
        if width > max_num_neighbors:
            within = _keep_nearest(d2, within, max_num_neighbors)
        r, c = within.nonzero(as_tuple=True)
        rows.append(centres[r])
        cols.append(start[graph[centres[r]]] + c)
    centre, neighbour = torch.cat(rows), torch.cat(cols)
    return torch.stack([order[neighbour], order[centre]])


def _keep_nearest(d2: torch.Tensor, within: torch.Tensor, k: int) -> torch.Tensor:
    """``within`` with only the ``k`` nearest candidates left in the rows that have more."""
    over = (within.sum(-1) > k).nonzero(as_tuple=True)[0]
    if over.numel() == 0:
        return within
    nearest = d2[over].masked_fill(~within[over], math.inf).topk(k, dim=-1, largest=False)
    kept = torch.zeros_like(within[over]).scatter_(-1, nearest.indices, True)
    within = within.clone()
    within[over] = kept
    return within


# --- distances ---------------------------------------------------------------------------------


class CosineCutoff(nn.Module):
    """The smooth cutoff ``f_c(d) = ½(cos(πd/r_c) + 1)`` for ``d < r_c``, else 0.

    With ``cutoff_lower = r_l > 0`` it is the bump ``½(cos(π(2(d − r_l)/(r_c − r_l) + 1)) + 1)``
    on ``r_l < d < r_c`` (zero at both ends, one half-way), else 0.

    Args:
        cutoff_lower: ``r_l``, in Å.
        cutoff_upper: ``r_c``, in Å.

    Shapes:
        - input: any shape, distances
        - output: same shape
    """

    def __init__(self, cutoff_lower: float = 0.0, cutoff_upper: float = 5.0) -> None:
        super().__init__()
        _check_cutoffs(type(self).__name__, cutoff_lower, cutoff_upper)
        self.cutoff_lower, self.cutoff_upper = float(cutoff_lower), float(cutoff_upper)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        lower, upper = self.cutoff_lower, self.cutoff_upper
        if lower == 0.0:
            return 0.5 * (torch.cos(math.pi * d / upper) + 1.0) * (d < upper)
        phase = math.pi * (2.0 * (d - lower) / (upper - lower) + 1.0)
        return 0.5 * (torch.cos(phase) + 1.0) * ((d > lower) & (d < upper))


class ExpNormalSmearing(nn.Module):
    """The exponential-normal radial basis, times the cosine cutoff.

    ``φ_k(d) = f_c(d) · exp(−β_k (exp(−α(d − r_l)) − μ_k)²)`` with ``α = 5/(r_c − r_l)``, the
    ``μ_k`` evenly spaced on ``[exp(−(r_c − r_l)), 1]`` and
    ``β_k = (2(1 − exp(−(r_c − r_l)))/K)^(−2)``; ``f_c`` is :class:`CosineCutoff` with a lower
    cutoff of 0, whatever ``r_l``.

    Args:
        cutoff_lower: ``r_l``, in Å.
        cutoff_upper: ``r_c``, in Å.
        num_rbf: ``K``, the number of basis functions.
        trainable: Learn ``μ`` and ``β`` (parameters) instead of keeping them fixed (buffers).

    Shapes:
        - input: ``(*)``, distances
        - output: ``(*, num_rbf)``
    """

    def __init__(
        self,
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        num_rbf: int = 64,
        trainable: bool = False,
    ) -> None:
        super().__init__()
        _check_cutoffs(type(self).__name__, cutoff_lower, cutoff_upper)
        _check_positive(type(self).__name__, num_rbf=num_rbf)
        self.cutoff_lower, self.cutoff_upper, self.num_rbf = cutoff_lower, cutoff_upper, num_rbf
        self.alpha = 5.0 / (cutoff_upper - cutoff_lower)
        self.cutoff = CosineCutoff(0.0, cutoff_upper)
        means, betas = self._initial_values()
        _parameters_or_buffers(self, trainable, means=means, betas=betas)

    def _initial_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        start = math.exp(-(self.cutoff_upper - self.cutoff_lower))
        means = torch.linspace(start, 1.0, self.num_rbf)
        betas = torch.full((self.num_rbf,), (2.0 * (1.0 - start) / self.num_rbf) ** -2)
        return means, betas

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        d = d.unsqueeze(-1)
        shrunk = torch.exp(-self.alpha * (d - self.cutoff_lower))
        return self.cutoff(d) * torch.exp(-self.betas * (shrunk - self.means).square())


class GaussianSmearing(nn.Module):
    """Gaussians ``exp(−(d − μ_k)²/(2Δ²))`` centred on ``K`` points evenly spaced on
    ``[r_l, r_c]``, ``Δ`` their spacing; no cutoff (``rbf_type="gauss"``).

    Args:
        cutoff_lower: ``r_l``, in Å.
        cutoff_upper: ``r_c``, in Å.
        num_rbf: ``K``, at least 2.
        trainable: Learn centres and width.

    Shapes:
        - input: ``(*)``, distances
        - output: ``(*, num_rbf)``
    """

    def __init__(
        self,
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        num_rbf: int = 64,
        trainable: bool = False,
    ) -> None:
        super().__init__()
        _check_cutoffs(type(self).__name__, cutoff_lower, cutoff_upper)
        if num_rbf < 2:
            raise ValueError(f"GaussianSmearing: num_rbf must be at least 2, got {num_rbf}")
        offsets = torch.linspace(cutoff_lower, cutoff_upper, num_rbf)
        coeff = torch.tensor(-0.5 / (offsets[1] - offsets[0]).item() ** 2)
        _parameters_or_buffers(self, trainable, offsets=offsets, coeff=coeff)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.coeff * (d.unsqueeze(-1) - self.offsets).square())


def _parameters_or_buffers(module: nn.Module, trainable: bool, **tensors: torch.Tensor) -> None:
    """Registers ``tensors`` on ``module`` as parameters (``trainable``) or as buffers."""
    for name, tensor in tensors.items():
        if trainable:
            module.register_parameter(name, nn.Parameter(tensor))
        else:
            module.register_buffer(name, tensor)
