"""Entry ``denoising``: the ET encoder and its heads: symmetries, graph, basis, gradients, size."""

from __future__ import annotations

import math

import pytest
import torch
from e3nn import o3
from e3nn.util.test import assert_equivariant
from torch import nn

from zoo.denoising.et import (
    ET,
    CosineCutoff,
    EquivariantMultiHeadAttention,
    ExpNormalSmearing,
    neighbor_list,
)
from zoo.denoising.heads import GatedEquivariantBlock, NoiseHead, ScalarHead
from zoo.testing import assert_all_parameters_get_gradient, assert_finite

ELEMENTS = torch.tensor([1, 1, 1, 1, 6, 6, 6, 7, 8, 9])  # H-rich, as in QM9


def random_molecules(
    sizes: list[int],
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    min_distance: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Molecule-like inputs: points in a ball of radius ``1.2 n^(1/3)`` Å, at least
    ``min_distance`` apart (rejection sampling), H C N O F. Returns ``z, pos, batch``."""
    generator = torch.Generator().manual_seed(seed)
    zs, positions, batch = [], [], []
    for graph, n in enumerate(sizes):
        radius = 1.2 * n ** (1 / 3)
        points: list[torch.Tensor] = []
        while len(points) < n:
            p = (2 * torch.rand(3, generator=generator, dtype=torch.float64) - 1) * radius
            if p.norm() <= radius and all((p - q).norm() >= min_distance for q in points):
                points.append(p)
        positions.append(torch.stack(points))
        zs.append(ELEMENTS[torch.randint(len(ELEMENTS), (n,), generator=generator)])
        batch.append(torch.full((n,), graph))
    return torch.cat(zs), torch.cat(positions).to(dtype), torch.cat(batch)


def small_et(**options) -> ET:
    config = dict(embedding_dimension=16, num_layers=2, num_heads=4, num_rbf=8, cutoff_upper=4.0)
    return ET(**(config | options))


class DenoisingModel(nn.Module):
    """Encoder plus both heads, as the Lightning modules will hold them."""

    def __init__(self, **options) -> None:
        super().__init__()
        self.encoder = small_et(**options)
        width = self.encoder.embedding_dimension
        self.noise_head = NoiseHead(width)
        self.scalar_head = ScalarHead(width, mean=-6.5, std=0.6)

    def forward(self, z, pos, batch):
        x, vec = self.encoder(z, pos, batch)
        return self.noise_head(x, vec), self.scalar_head(x, batch)


@pytest.fixture(scope="module")
def model() -> DenoisingModel:
    torch.manual_seed(0)
    return DenoisingModel().double().eval()


# --- symmetries --------------------------------------------------------------------------------


@pytest.mark.parametrize("layernorm_on_vec", [None, "whitened"])
def test_noise_is_equivariant_and_property_invariant(layernorm_on_vec: str | None) -> None:
    """Rotations, reflections and translations, drawn at random by e3nn. Its Wigner matrix of
    ``1o`` goes through Euler angles and is accurate to ~1e-7 only, hence the relative
    tolerance; :func:`test_rotation_by_hand` checks to 1e-10."""
    torch.manual_seed(1)
    model = DenoisingModel(layernorm_on_vec=layernorm_on_vec).double()
    if layernorm_on_vec == "whitened":
        # its regulariser eps * diag(1, 2, 3) is not rotation invariant: exact only as eps -> 0
        model.encoder.out_norm_vec.eps = 1e-12
    z, pos, batch = random_molecules([5, 9, 7], seed=1)

    def noise_and_value(z, pos, batch):
        noise, value = model(z, pos, batch)
        return noise, value.unsqueeze(-1)

    scale = max(output.abs().max().item() for output in noise_and_value(z, pos, batch))
    errors = assert_equivariant(
        noise_and_value,
        args_in=[z, pos, batch],
        irreps_in=[None, "cartesian_points", None],
        irreps_out=[o3.Irreps("1o"), o3.Irreps("0e")],
        ntrials=3,
        tolerance=1e-6 * scale,
    )
    assert set(errors) == {(0, False), (0, True), (1, False), (1, True)}


def test_rotation_by_hand(model: DenoisingModel) -> None:
    z, pos, batch = random_molecules([6, 11], seed=2)
    rotation = o3.rand_matrix(dtype=torch.float64)
    noise, value = model(z, pos, batch)
    rotated_noise, rotated_value = model(
        z, pos @ rotation.T + torch.tensor([1.0, -2.0, 0.5]), batch
    )
    torch.testing.assert_close(rotated_noise, noise @ rotation.T, rtol=0, atol=1e-10)
    torch.testing.assert_close(rotated_value, value, rtol=0, atol=1e-10)


def test_atom_permutations(model: DenoisingModel) -> None:
    """Relabelling atoms (within and across the batch order) permutes the noise and leaves the
    molecules' values alone; ``batch`` need not be sorted."""
    z, pos, batch = random_molecules([8, 5, 10], seed=3)
    permutation = torch.randperm(z.numel(), generator=torch.Generator().manual_seed(0))
    noise, value = model(z, pos, batch)
    permuted_noise, permuted_value = model(z[permutation], pos[permutation], batch[permutation])
    torch.testing.assert_close(permuted_noise, noise[permutation], rtol=0, atol=1e-10)
    torch.testing.assert_close(permuted_value, value, rtol=0, atol=1e-10)


def test_molecules_do_not_interact(model: DenoisingModel) -> None:
    z, pos, batch = random_molecules([7, 6], seed=4)
    noise, value = model(z, pos, batch)
    alone_noise, alone_value = model(z[:7], pos[:7], batch[:7])
    torch.testing.assert_close(alone_noise, noise[:7], rtol=0, atol=1e-12)
    torch.testing.assert_close(alone_value, value[:1], rtol=0, atol=1e-12)


def test_isolated_atoms_have_finite_outputs_and_gradients() -> None:
    """A lone atom (its own molecule, or beyond the cutoff) has zero vectors: norms of zero
    vectors must not turn the gradient into NaN."""
    torch.manual_seed(0)
    model = DenoisingModel().double()
    z = torch.tensor([1, 6, 8, 1])
    pos = torch.tensor([[0.0, 0, 0], [0, 0, 0], [1.2, 0, 0], [30, 0, 0]], dtype=torch.float64)
    pos.requires_grad_(True)
    noise, value = model(z, pos, torch.tensor([0, 1, 1, 1]))
    assert torch.equal(noise[0], torch.zeros(3, dtype=torch.float64))
    (noise.square().sum() + value.sum()).backward()
    assert_finite([noise, value, pos.grad])
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --- the graph ---------------------------------------------------------------------------------


def brute_force_pairs(pos, batch, cutoff, loop):
    """Every ``(j, i)`` of the same molecule closer than ``cutoff``, one pair at a time."""
    pairs = set()
    for graph in batch.unique():
        atoms = (batch == graph).nonzero().flatten().tolist()
        for i in atoms:
            for j in atoms:
                if (loop or i != j) and float((pos[i] - pos[j]).norm()) < cutoff:
                    pairs.add((j, i))
    return pairs


@pytest.mark.parametrize("loop", [False, True])
@pytest.mark.parametrize("cutoff", [1.5, 2.5, 100.0])
def test_neighbor_list_matches_brute_force(loop: bool, cutoff: float) -> None:
    _, pos, batch = random_molecules([1, 4, 12, 9, 3], seed=5)
    shuffle = torch.randperm(len(pos), generator=torch.Generator().manual_seed(1))
    pos, batch = pos[shuffle], batch[shuffle]  # unsorted molecules
    edges = neighbor_list(pos, batch, cutoff, max_num_neighbors=100, loop=loop)
    pairs = {tuple(e) for e in edges.T.tolist()}
    assert len(pairs) == edges.shape[1], "duplicate edges"
    assert pairs == brute_force_pairs(pos, batch, cutoff, loop)


def test_neighbor_list_keeps_the_nearest_where_the_cap_binds() -> None:
    # atoms on a line at 0, 1, 2, ... Å: atom 0 has 9 neighbours within 9.5 Å, atom 9 has 9,
    # but the lone molecule-1 pair has only one each and must be untouched
    pos = torch.zeros(12, 3)
    pos[:10, 0] = torch.arange(10.0)
    pos[11, 0] = 1.0
    batch = torch.tensor([0] * 10 + [1, 1])
    edges = neighbor_list(pos, batch, cutoff=9.5, max_num_neighbors=3)
    kept = {i: sorted(edges[0, edges[1] == i].tolist()) for i in range(12)}
    assert kept[0] == [1, 2, 3]
    assert kept[9] == [6, 7, 8]
    assert kept[5] in ([3, 4, 6], [4, 6, 7])  # 4 and 6 at 1 Å, then a tie at 2 Å
    assert kept[10] == [11] and kept[11] == [10]
    with_loops = neighbor_list(pos, batch, cutoff=9.5, max_num_neighbors=3, loop=True)
    assert sorted(with_loops[0, with_loops[1] == 0].tolist()) == [0, 1, 2]  # itself counts


def test_neighbor_list_of_a_qm9_sized_batch_is_fast_enough() -> None:
    _, pos, batch = random_molecules([18] * 32, seed=6, dtype=torch.float32)
    edges = neighbor_list(pos, batch, 5.0)
    assert edges.shape[1] == len(brute_force_pairs(pos, batch, 5.0, False))
    assert (batch[edges[0]] == batch[edges[1]]).all()


# --- the radial basis --------------------------------------------------------------------------


def test_cosine_cutoff_values() -> None:
    cutoff = CosineCutoff(0.0, 5.0)
    d = torch.tensor([0.0, 2.5, 5.0, 6.0], dtype=torch.float64)
    torch.testing.assert_close(cutoff(d), torch.tensor([1.0, 0.5, 0.0, 0.0]).double())
    bump = CosineCutoff(1.0, 5.0)
    d = torch.tensor([0.5, 1.0, 3.0, 5.0], dtype=torch.float64)
    torch.testing.assert_close(bump(d), torch.tensor([0.0, 0.0, 1.0, 0.0]).double())


@pytest.mark.parametrize(("lower", "upper"), [(0.0, 5.0), (0.5, 4.0)])
def test_expnorm_basis_matches_hand_computed_values(lower: float, upper: float) -> None:
    k = 4
    rbf = ExpNormalSmearing(lower, upper, num_rbf=k).double()
    alpha = 5 / (upper - lower)
    start = math.exp(-(upper - lower))
    means = [start + (1 - start) * m / (k - 1) for m in range(k)]
    beta = (2 * (1 - start) / k) ** -2
    for d in (1.0, 2.5):
        fc = 0.5 * (math.cos(math.pi * d / upper) + 1)
        shrunk = math.exp(-alpha * (d - lower))
        expected = [fc * math.exp(-beta * (shrunk - mu) ** 2) for mu in means]
        actual = rbf(torch.tensor(d, dtype=torch.float64))
        torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64))
    assert rbf(torch.tensor([upper, upper + 1.0])).abs().max() == 0


def test_trainable_rbf_is_learned() -> None:
    fixed, trainable = ExpNormalSmearing(trainable=False), ExpNormalSmearing(trainable=True)
    assert (
        not list(fixed.parameters()) and {"means", "betas"} <= dict(fixed.named_buffers()).keys()
    )
    assert {n for n, _ in trainable.named_parameters()} == {"means", "betas"}


# --- training ----------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"trainable_rbf": True, "layernorm_on_vec": "whitened"}])
def test_every_parameter_gets_a_gradient(options: dict) -> None:
    torch.manual_seed(0)
    model = DenoisingModel(**options)
    z, pos, batch = random_molecules([9, 6, 12], seed=7, dtype=torch.float32)
    eps = torch.randn_like(pos)
    noise, value = model(z, pos + 0.04 * eps, batch)
    loss = (noise - eps).square().mean() + (value - torch.randn(3)).square().mean()
    # the first layer sees the initial vectors, all zero, so U₁, U₂, U₃ there get an exactly
    # zero gradient, as in the reference code
    assert_all_parameters_get_gradient(
        model, loss, may_be_zero=["encoder.attention_layers.0.vec_proj.weight"]
    )


def test_a_small_et_trains_on_a_batch_of_32_molecules() -> None:
    torch.manual_seed(0)
    model = DenoisingModel()
    sizes = torch.randint(3, 30, (32,), generator=torch.Generator().manual_seed(0)).tolist()
    z, pos, batch = random_molecules(sizes, seed=8, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    eps = torch.randn_like(pos)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        noise, value = model(z, pos + 0.04 * eps, batch)
        assert noise.shape == (len(z), 3) and value.shape == (32,)
        loss = (noise - eps).square().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]


def test_paper_configuration_size() -> None:
    """256 channels, 8 layers, 8 heads, 64 basis functions, both heads: 6,897,923 weights
    (encoder 6,519,808, noise head 345,090, property head 33,025), the spec's ≈ 6.9 M."""
    sizes = [_count(ET()), _count(NoiseHead(256)), _count(ScalarHead(256))]
    assert sizes == [6_519_808, 345_090, 33_025]
    assert sum(sizes) == 6_897_923


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- heads and arguments -----------------------------------------------------------------------


def test_scalar_head_sums_and_rescales() -> None:
    head = ScalarHead(4, mean=2.0, std=3.0)
    x, batch = torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1])
    atoms = head.mlp(x).squeeze(-1)
    expected = torch.stack([atoms[:2].sum(), atoms[2:].sum()]) * 3.0 + 2.0
    torch.testing.assert_close(head(x, batch), expected)
    mean_head = ScalarHead(4, reduce="mean")
    mean_head.load_state_dict(head.state_dict())
    mean_head.set_label_statistics(0.0, 1.0)
    torch.testing.assert_close(
        mean_head(x, batch, num_graphs=3),
        torch.stack([atoms[:2].mean(), atoms[2:].mean(), 0 * atoms[0]]),
    )
    assert {"mean", "std"} <= dict(head.named_buffers()).keys()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ET(embedding_dimension=30, num_heads=8), "ET.*num_heads=8 does not divide"),
        (lambda: ET(activation="relu"), "ET.*unknown activation 'relu'"),
        (lambda: ET(attn_activation="gelu"), "unknown attn_activation 'gelu'"),
        (lambda: ET(rbf_type="bessel"), "ET: rbf_type must be one of"),
        (lambda: ET(distance_influence="queries"), "distance_influence must be one of"),
        (lambda: ET(cutoff_lower=5.0, cutoff_upper=5.0), "ET: need 0 <= cutoff_lower"),
        (lambda: ET(layernorm_on_vec="whiten"), "layernorm_on_vec must be one of"),
        (lambda: ET(num_layers=0), "ET: num_layers must be positive"),
        (lambda: EquivariantMultiHeadAttention(16, 8, num_heads=3), "does not divide"),
        (lambda: GatedEquivariantBlock(8, 4, activation="elu"), "GatedEquivariantBlock"),
        (lambda: ScalarHead(8, std=0.0), "ScalarHead: the label std must be positive"),
        (lambda: ScalarHead(8, reduce="max"), "ScalarHead: reduce must be one of"),
    ],
)
def test_bad_options_are_named(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_bad_inputs_are_named() -> None:
    et = small_et()
    z, pos, batch = random_molecules([4], dtype=torch.float32)
    with pytest.raises(ValueError, match="max_z=100"):
        et(z + 100, pos, batch)
    with pytest.raises(ValueError, match="ET: z must be a 1-d torch.long"):
        et(z.float(), pos, batch)
    with pytest.raises(ValueError, match=r"ET: pos must be floating point of shape \(4, 3\)"):
        et(z, pos[:, :2], batch)
