"""The TorchMD equivariant Transformer (ET), configured as the denoising paper's code uses it.

Each atom carries ``F`` scalar channels ``x`` and ``F`` vector channels ``vec`` (``3 × F``).
Atoms within ``cutoff_upper`` of each other in the same molecule exchange messages; an atom
also messages itself (the reference code builds its graph with self loops), except in the
neighbour embedding. Distances enter through an exponential-normal radial basis ``φ`` and a
cosine cutoff ``f_c`` (:mod:`zoo.denoising.geometry`, re-exported here). Written on plain
torch: the neighbour list and the scatter sums need neither ``torch-cluster`` nor
``torch-scatter``.

Edges follow PyG's convention: ``edge_index[0]`` is the neighbour ``j`` that sends,
``edge_index[1]`` the atom ``i`` that receives, and ``edge_dir`` is the unit vector from ``i``
to ``j`` (zero on self loops).

References:
    Thölke, De Fabritiis. "Equivariant Transformers for Neural Network based Molecular
    Potentials." ICLR 2022. https://arxiv.org/abs/2202.02541

    Zaidi, Schaarschmidt, Martens, Kim, Teh, Sanchez-Gonzalez, Battaglia, Pascanu, Godwin.
    "Pre-training via Denoising for Molecular Property Prediction." ICLR 2023.
    https://arxiv.org/abs/2206.00133
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from zoo.denoising.geometry import (
    CosineCutoff,
    ExpNormalSmearing,
    GaussianSmearing,
    _check_choice,
    _check_cutoffs,
    _check_positive,
    neighbor_list,
)

__all__ = [
    "ACTIVATIONS",
    "ET",
    "CosineCutoff",
    "EquivariantMultiHeadAttention",
    "ExpNormalSmearing",
    "GaussianSmearing",
    "NeighborEmbedding",
    "WhitenedVectorNorm",
    "neighbor_list",
]


class _ShiftedSoftplus(nn.Module):
    """``softplus(x) - log 2``, zero at zero (SchNet's activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x) - math.log(2.0)


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "silu": nn.SiLU,
    "ssp": _ShiftedSoftplus,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
"""The activations the options ``activation`` and ``attn_activation`` accept, by name."""

_RBF_TYPES = ("expnorm", "gauss")
_DISTANCE_INFLUENCE = ("keys", "values", "both", "none")
_VECTOR_NORMS = (None, "whitened")


def _activation(owner: str, option: str, name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(
            f"{owner}: unknown {option} {name!r}; choose one of {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


# --- layers ------------------------------------------------------------------------------------


class NeighborEmbedding(nn.Module):
    """The initial embedding mixed with the neighbours' element embeddings.

    ``x_i ← W_c [x_i ‖ Σ_{j≠i} f_c(d_ij) (W_r φ_ij) ⊙ e'(z_j)]``, with its own element table
    ``e'``. Self loops in ``edge_index`` are skipped.

    Args:
        embedding_dimension: ``F``.
        num_rbf: Size of the radial basis.
        cutoff_lower: Lower cutoff of ``f_c``, in Å.
        cutoff_upper: Upper cutoff of ``f_c``, in Å.
        max_z: Size of the element table (atomic numbers ``0 ... max_z − 1``).

    Shapes:
        - z: ``(n_atoms,)``; x: ``(n_atoms, F)``
        - edge_index: ``(2, n_edges)``; edge_weight: ``(n_edges,)``, distances;
          edge_attr: ``(n_edges, num_rbf)``
        - output: ``(n_atoms, F)``
    """

    def __init__(
        self,
        embedding_dimension: int,
        num_rbf: int,
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        max_z: int = 100,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_z, embedding_dimension)
        self.distance_proj = nn.Linear(num_rbf, embedding_dimension)
        self.combine = nn.Linear(2 * embedding_dimension, embedding_dimension)
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)
        for layer in (self.distance_proj, self.combine):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self,
        z: torch.Tensor,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor,
        edge_attr: torch.Tensor,
    ) -> torch.Tensor:
        others = edge_index[0] != edge_index[1]
        j, i = edge_index[:, others]
        w = self.distance_proj(edge_attr[others]) * self.cutoff(edge_weight[others]).unsqueeze(-1)

        messages = self.embedding(z).index_select(0, j) * w  # (n_edges, F)
        neighbours = torch.zeros_like(x).index_add_(0, i, messages)

        return self.combine(torch.cat([x, neighbours], dim=-1))


class EquivariantMultiHeadAttention(nn.Module):
    """One ET layer: equivariant attention over the neighbours, returning the residual updates.

    With ``x`` layer-normalised, per head: ``a_ij = σ_a(Σ q_i ⊙ k_j ⊙ d^K_ij) f_c(d_ij)`` (no
    softmax), ``d^K = σ(W_K φ)``, ``d^V = σ(W_V φ)``; ``v_j ⊙ d^V_ij`` splits into ``m, g₁, g₂``
    and the messages are ``a_ij m`` and ``vec_j g₁ + g₂ r̂_ij``. Summed over ``j``:
    ``o₁, o₂, o₃ = W_o(Σ a m)``, ``Δx = ⟨U₁vec, U₂vec⟩ ⊙ o₂ + o₃`` and
    ``Δvec = U₃vec ⊙ o₁ + Σ (vec_j g₁ + g₂ r̂_ij)``. As in the reference code, the attention
    weight scales only the scalar message ``m``: the vector gates ``g₁, g₂`` go unweighted, so
    a neighbour's vector message does not vanish at the cutoff (``d^V`` tends to ``σ(bias)``).

    Args:
        embedding_dimension: ``F``.
        num_rbf: Size of the radial basis.
        num_heads: Attention heads; must divide ``F``.
        distance_influence: Where the filters act: ``keys`` (``d^K``), ``values`` (``d^V``),
            ``both`` or ``none``.
        activation: ``σ``, of the distance filters.
        attn_activation: ``σ_a``, of the attention weights.
        cutoff_lower: Lower cutoff of ``f_c``, in Å.
        cutoff_upper: Upper cutoff of ``f_c``, in Å.

    Shapes:
        - x: ``(n_atoms, F)``; vec: ``(n_atoms, 3, F)``
        - edge_index: ``(2, n_edges)``; edge_weight: ``(n_edges,)``, distances;
          edge_attr: ``(n_edges, num_rbf)``; edge_dir: ``(n_edges, 3)``, unit ``i → j``
        - output: ``Δx`` ``(n_atoms, F)`` and ``Δvec`` ``(n_atoms, 3, F)``
    """

    def __init__(
        self,
        embedding_dimension: int,
        num_rbf: int,
        num_heads: int = 8,
        distance_influence: str = "both",
        activation: str = "silu",
        attn_activation: str = "silu",
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        _check_positive(owner, embedding_dimension=embedding_dimension, num_heads=num_heads)
        if embedding_dimension % num_heads:
            raise ValueError(
                f"{owner}: num_heads={num_heads} does not divide "
                f"embedding_dimension={embedding_dimension}; pick a divisor of it"
            )
        _check_choice(owner, "distance_influence", distance_influence, _DISTANCE_INFLUENCE)
        f = embedding_dimension
        self.num_heads, self.head_dim = num_heads, f // num_heads

        # --- scalars: queries, keys, values (m, g₁, g₂ per head) and the output mix ---
        self.layernorm = nn.LayerNorm(f)
        self.q_proj = nn.Linear(f, f)
        self.k_proj = nn.Linear(f, f)
        self.v_proj = nn.Linear(f, 3 * f)
        self.o_proj = nn.Linear(f, 3 * f)

        # --- vectors: U₁, U₂, U₃, linear in the channels (no bias keeps equivariance) ---
        self.vec_proj = nn.Linear(f, 3 * f, bias=False)

        # --- distance filters ---
        use_keys = distance_influence in ("keys", "both")
        use_values = distance_influence in ("values", "both")
        self.dk_proj = nn.Linear(num_rbf, f) if use_keys else None
        self.dv_proj = nn.Linear(num_rbf, 3 * f) if use_values else None
        self.act = _activation(owner, "activation", activation)
        self.attn_act = _activation(owner, "attn_activation", attn_activation)
        self.cutoff = CosineCutoff(cutoff_lower, cutoff_upper)

        for layer in (self.q_proj, self.k_proj, self.v_proj, self.o_proj, *self._filters()):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.xavier_uniform_(self.vec_proj.weight)

    def _filters(self) -> list[nn.Linear]:
        return [layer for layer in (self.dk_proj, self.dv_proj) if layer is not None]

    def forward(
        self,
        x: torch.Tensor,
        vec: torch.Tensor,
        edge_index: torch.Tensor,
        edge_weight: torch.Tensor,
        edge_attr: torch.Tensor,
        edge_dir: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_atoms, f = x.shape
        n_edges = edge_index.shape[1]
        heads, head_dim = self.num_heads, self.head_dim
        j, i = edge_index

        # --- projections of the atoms ---
        x = self.layernorm(x)
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        u1, u2, u3 = self.vec_proj(vec).split(f, dim=-1)  # (n_atoms, 3, F) each

        # --- attention weights, per head ---
        qk = q.index_select(0, i) * k.index_select(0, j)  # (n_edges, F)
        if self.dk_proj is not None:
            qk = qk * self.act(self.dk_proj(edge_attr))
        a = self.attn_act(qk.view(n_edges, heads, head_dim).sum(-1))
        a = a * self.cutoff(edge_weight).unsqueeze(-1)  # (n_edges, heads)

        # --- messages ---
        values = v.index_select(0, j)
        if self.dv_proj is not None:
            values = values * self.act(self.dv_proj(edge_attr))
        m, g1, g2 = values.view(n_edges, heads, 3, head_dim).unbind(2)
        m = (m * a.unsqueeze(-1)).reshape(n_edges, f)
        g1, g2 = g1.reshape(n_edges, 1, f), g2.reshape(n_edges, 1, f)
        vec_messages = vec.index_select(0, j) * g1 + g2 * edge_dir.unsqueeze(-1)  # (n_edges, 3, F)

        # --- sums over the neighbours ---
        m = x.new_zeros(n_atoms, f).index_add_(0, i, m)
        vec_messages = vec.new_zeros(n_atoms, 3, f).index_add_(0, i, vec_messages)

        # --- updates ---
        o1, o2, o3 = self.o_proj(m).split(f, dim=-1)
        dx = (u1 * u2).sum(1) * o2 + o3
        dvec = u3 * o1.unsqueeze(1) + vec_messages
        return dx, dvec


class WhitenedVectorNorm(nn.Module):
    """Whitens each atom's vector channels (``layernorm_on_vec="whitened"``).

    The channels ``X`` (``3 × F``) are centred over the channels, ``C = X Xᵀ/F + ε diag(1, 2, 3)``
    and the output is ``C^(−1/2) X``, times a per-channel weight; computed in float64. The
    regulariser keeps the eigenvalues apart for the backward pass but is not rotation
    invariant: the output is equivariant up to ``O(ε)``.

    Args:
        num_channels: ``F``.
        eps: ``ε``.

    Shapes:
        - input: ``(n_atoms, 3, F)``
        - output: ``(n_atoms, 3, F)``
    """

    def __init__(self, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))

    def forward(self, vec: torch.Tensor) -> torch.Tensor:
        x = vec.double()
        x = x - x.mean(-1, keepdim=True)
        regulariser = self.eps * torch.tensor([1.0, 2.0, 3.0], dtype=x.dtype, device=x.device)
        covariance = x @ x.transpose(-1, -2) / x.shape[-1] + torch.diag(regulariser)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # (n_atoms, 3), (n_atoms, 3, 3)
        inverse_sqrt = (eigenvectors * eigenvalues.rsqrt().unsqueeze(-2)) @ eigenvectors.mT
        return (inverse_sqrt @ x).to(vec.dtype) * self.weight


# --- the encoder -------------------------------------------------------------------------------


class ET(nn.Module):
    """The equivariant Transformer encoder: per-atom scalar and vector features of a molecule.

    Atoms start from an element embedding (mixed with the neighbours' by
    :class:`NeighborEmbedding`) and zero vectors; ``num_layers`` residual
    :class:`EquivariantMultiHeadAttention` updates follow, then a LayerNorm on the scalars
    (and, with ``layernorm_on_vec="whitened"``, :class:`WhitenedVectorNorm` on the vectors).
    The scalars are invariant and the vectors equivariant under rotations, reflections and
    translations of ``pos``, and both are equivariant under permutations of the atoms.

    Args:
        embedding_dimension: ``F``, scalar and vector channels per atom.
        num_layers: Attention layers.
        num_heads: Attention heads; must divide ``F``.
        num_rbf: Size of the radial basis.
        rbf_type: ``expnorm`` (:class:`ExpNormalSmearing`) or ``gauss``.
        trainable_rbf: Learn the radial basis parameters.
        cutoff_lower: Pairs closer than this are dropped (self loops too, if positive), in Å.
        cutoff_upper: Interaction cutoff, in Å.
        max_num_neighbors: Most neighbours (the atom itself included) per atom; the nearest
            are kept. It never binds on QM9 (at most 29 atoms).
        max_z: Size of the element tables (atomic numbers ``0 ... max_z − 1``).
        neighbor_embedding: Use :class:`NeighborEmbedding`.
        activation: Of the distance filters, one of :data:`ACTIVATIONS`.
        attn_activation: Of the attention weights, one of :data:`ACTIVATIONS`.
        distance_influence: ``keys``, ``values``, ``both`` or ``none``.
        layernorm_on_vec: ``None`` or ``whitened``.

    Shapes:
        - z: ``(n_atoms,)``, atomic numbers, ``torch.long``
        - pos: ``(n_atoms, 3)``, in Å
        - batch: ``(n_atoms,)``, the molecule of each atom
        - output: scalars ``(n_atoms, F)`` and vectors ``(n_atoms, 3, F)``

    Example:
        >>> et = ET(embedding_dimension=16, num_layers=1, num_heads=2, num_rbf=8)
        >>> x, vec = et(torch.tensor([8, 1, 1]), torch.randn(3, 3), torch.zeros(3, dtype=int))
        >>> tuple(x.shape), tuple(vec.shape)
        ((3, 16), (3, 3, 16))
    """

    def __init__(
        self,
        embedding_dimension: int = 256,
        num_layers: int = 8,
        num_heads: int = 8,
        num_rbf: int = 64,
        rbf_type: str = "expnorm",
        trainable_rbf: bool = False,
        cutoff_lower: float = 0.0,
        cutoff_upper: float = 5.0,
        max_num_neighbors: int = 32,
        max_z: int = 100,
        neighbor_embedding: bool = True,
        activation: str = "silu",
        attn_activation: str = "silu",
        distance_influence: str = "both",
        layernorm_on_vec: str | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        _check_positive(
            owner,
            embedding_dimension=embedding_dimension,
            num_layers=num_layers,
            num_heads=num_heads,
            num_rbf=num_rbf,
            max_num_neighbors=max_num_neighbors,
            max_z=max_z,
        )
        if embedding_dimension % num_heads:
            raise ValueError(
                f"{owner}: num_heads={num_heads} does not divide "
                f"embedding_dimension={embedding_dimension}; pick a divisor of it"
            )
        _check_choice(owner, "rbf_type", rbf_type, _RBF_TYPES)
        _check_choice(owner, "distance_influence", distance_influence, _DISTANCE_INFLUENCE)
        _check_choice(owner, "layernorm_on_vec", layernorm_on_vec, _VECTOR_NORMS)
        _check_cutoffs(owner, cutoff_lower, cutoff_upper)
        for option, name in (("activation", activation), ("attn_activation", attn_activation)):
            _activation(owner, option, name)
        self.embedding_dimension, self.max_z = embedding_dimension, max_z
        self.cutoff_lower, self.cutoff_upper = cutoff_lower, cutoff_upper
        self.max_num_neighbors = max_num_neighbors

        # --- atoms and distances ---
        self.embedding = nn.Embedding(max_z, embedding_dimension)
        rbf = ExpNormalSmearing if rbf_type == "expnorm" else GaussianSmearing
        self.distance_expansion = rbf(cutoff_lower, cutoff_upper, num_rbf, trainable_rbf)
        self.neighbor_embedding = (
            NeighborEmbedding(embedding_dimension, num_rbf, cutoff_lower, cutoff_upper, max_z)
            if neighbor_embedding
            else None
        )

        # --- interaction layers ---
        self.attention_layers = nn.ModuleList(
            EquivariantMultiHeadAttention(
                embedding_dimension,
                num_rbf,
                num_heads,
                distance_influence,
                activation,
                attn_activation,
                cutoff_lower,
                cutoff_upper,
            )
            for _ in range(num_layers)
        )

        # --- output normalisation ---
        self.out_norm = nn.LayerNorm(embedding_dimension)
        self.out_norm_vec = (
            WhitenedVectorNorm(embedding_dimension) if layernorm_on_vec == "whitened" else None
        )

    def forward(
        self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_inputs(z, pos, batch)

        # --- the graph: neighbours and self loops, directions i → j ---
        edge_index = neighbor_list(
            pos, batch, self.cutoff_upper, self.max_num_neighbors, loop=True
        )
        edge_index, edge_weight, edge_dir = self._edges(pos, edge_index)
        edge_attr = self.distance_expansion(edge_weight)  # (n_edges, num_rbf)

        # --- initial features ---
        x = self.embedding(z)
        if self.neighbor_embedding is not None:
            x = self.neighbor_embedding(z, x, edge_index, edge_weight, edge_attr)
        vec = x.new_zeros(x.shape[0], 3, x.shape[1])

        # --- interactions ---
        for layer in self.attention_layers:
            dx, dvec = layer(x, vec, edge_index, edge_weight, edge_attr, edge_dir)
            x, vec = x + dx, vec + dvec

        # --- output normalisation ---
        x = self.out_norm(x)
        if self.out_norm_vec is not None:
            vec = self.out_norm_vec(vec)
        return x, vec

    def _edges(
        self, pos: torch.Tensor, edge_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Distances and unit directions of the edges (zero on self loops), dropping pairs
        closer than ``cutoff_lower``."""
        j, i = edge_index
        offset = pos[j] - pos[i]  # (n_edges, 3)
        d = torch.linalg.vector_norm(offset, dim=-1)
        if self.cutoff_lower > 0.0:
            keep = d >= self.cutoff_lower
            edge_index, offset, d = edge_index[:, keep], offset[keep], d[keep]
        safe = torch.where(edge_index[0] == edge_index[1], torch.ones_like(d), d)
        return edge_index, d, offset / safe.unsqueeze(-1)

    def _check_inputs(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> None:
        if z.dim() != 1 or z.dtype != torch.long:
            raise ValueError(
                f"ET: z must be a 1-d torch.long tensor of atomic numbers, got {z.dtype} of "
                f"shape {tuple(z.shape)}"
            )
        if pos.shape != (z.shape[0], 3) or not pos.is_floating_point():
            raise ValueError(
                f"ET: pos must be floating point of shape ({z.shape[0]}, 3) to match z, got "
                f"{pos.dtype} of shape {tuple(pos.shape)}"
            )
        if batch.shape != z.shape:
            raise ValueError(
                f"ET: batch must have the shape of z, {tuple(z.shape)}, got {tuple(batch.shape)}"
            )
        if z.numel() and not 0 <= int(z.min()) <= int(z.max()) < self.max_z:
            raise ValueError(
                f"ET: atomic numbers must lie in [0, max_z={self.max_z}), got "
                f"{int(z.min())} ... {int(z.max())}; build the ET with a larger max_z"
            )
