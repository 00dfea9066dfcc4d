"""Entry ``fab``, alanine dipeptide: the Z-matrix map and its log-det, the torch energy against
OpenMM, the target's density, the Ramachandran metric, the circular spline flow, and the smoke
recipe through ``zoo fit``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.fab import alanine, alanine_openmm
from zoo.fab.alanine import CIRCULAR, AlanineDipeptide, dihedrals, ramachandran_kld
from zoo.fab.data import FABTargetDataModule
from zoo.fab.module import FABModule
from zoo.fab.spline import CircularSplineFlow
from zoo.fab.targets import target
from zoo.testing import assert_export_roundtrip, run_zoo

REPO = Path(__file__).resolve().parent.parent
F64 = torch.float64
BOUND = math.pi / 0.2


@pytest.fixture(scope="module")
def aldp() -> AlanineDipeptide:
    return target("aldp").double()


def _z(n: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(n, 60, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _rigid(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A random rotation and translation of Cartesians ``(n, 22, 3)``."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=F64))
    q = q * torch.linalg.det(q)  # a proper rotation
    return x @ q.T + torch.randn(3, generator=g, dtype=F64)


# -- internal coordinates --------------------------------------------------------------------


def test_the_minimum_is_the_origin_of_z_and_l_alanine(aldp) -> None:
    z, _ = aldp.from_cartesian(aldp.x_min[None])
    assert z.abs().max() < 1e-12
    x, _ = aldp.to_cartesian(torch.zeros(1, 60, dtype=F64))
    torch.testing.assert_close(torch.cdist(x[0], x[0]), torch.cdist(aldp.x_min, aldp.x_min))
    n, ca, c, cb = (aldp.x_min[i] for i in (6, 8, 14, 10))
    assert torch.dot(n - ca, torch.linalg.cross(c - ca, cb - ca)) > 0  # L chirality
    assert len(CIRCULAR) == 12 and aldp.circular == CIRCULAR


def test_the_z_matrix_round_trips(aldp) -> None:
    z = _z(32)
    x, log_det = aldp.to_cartesian(z)
    assert x.shape == (32, 22, 3) and log_det.shape == (32,)
    z_back, log_det_back = aldp.from_cartesian(_rigid(x))  # invariant to rigid motions
    torch.testing.assert_close(z_back, z, rtol=0, atol=1e-9)
    torch.testing.assert_close(log_det_back, -log_det, rtol=0, atol=1e-9)
    # Cartesians -> z -> Cartesians: the same molecule (up to its rigid placement) to < 1e-6 nm
    x_md = aldp.x_min + 0.01 * torch.randn(8, 22, 3, generator=torch.Generator().manual_seed(1))
    x_again, _ = aldp.to_cartesian(aldp.from_cartesian(x_md.reshape(8, 66))[0])
    assert (torch.cdist(x_again, x_again) - torch.cdist(x_md, x_md)).abs().max() < 1e-6


def test_the_log_det_matches_the_autograd_jacobian(aldp) -> None:
    """With 3 translations and 3 rotations (exponential coordinates at the identity, where
    the Haar density is 1) the map is square: its log|det| is to_cartesian's."""

    def full_map(v: torch.Tensor) -> torch.Tensor:
        z, omega, shift = v[:60], v[60:63], v[63:]
        skew = torch.zeros(3, 3, dtype=F64)
        skew[0, 1], skew[0, 2], skew[1, 2] = -omega[2], omega[1], -omega[0]
        rotation = torch.linalg.matrix_exp(skew - skew.T)
        return (aldp.to_cartesian(z[None])[0][0] @ rotation.T + shift).flatten()

    z = _z(3, seed=2)
    _, log_det = aldp.to_cartesian(z)
    for zi, expected in zip(z, log_det, strict=True):
        jacobian = torch.autograd.functional.jacobian(full_map, torch.cat([zi, zi.new_zeros(6)]))
        assert torch.linalg.slogdet(jacobian)[1].item() == pytest.approx(expected.item(), abs=1e-8)


# -- energy against OpenMM -------------------------------------------------------------------


def test_the_torch_energy_and_forces_match_openmm(aldp) -> None:
    pytest.importorskip("openmm")
    x, _ = aldp.to_cartesian(_z(50, seed=3, scale=0.7))
    x = (x + 0.003 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))).detach()
    x.requires_grad_(True)
    energy = aldp.energy(x)
    forces = -torch.autograd.grad(energy.sum(), x)[0]
    e_ref, f_ref = alanine_openmm.openmm_energy_forces(x.detach().numpy())
    assert np.ptp(e_ref) > 100  # varied configurations, not all at the minimum
    assert np.abs(energy.detach().numpy() - e_ref).max() < 1e-4  # kJ/mol
    assert np.abs(forces.numpy() - f_ref).max() < 1e-3  # kJ/mol/nm


def test_the_shipped_parameters_and_minimum_are_openmm_s() -> None:
    pytest.importorskip("openmm")
    asset = alanine._asset()
    system, topology = alanine_openmm.openmm_system()
    assert topology.getNumAtoms() == 22 and system.getNumParticles() == 22
    fresh = alanine_openmm.forcefield_parameters(system)
    assert fresh.keys() == asset["forcefield"].keys()
    assert fresh.pop("gb_constants") == asset["forcefield"]["gb_constants"]
    for key, value in fresh.items():
        np.testing.assert_allclose(value, asset["forcefield"][key], rtol=1e-12, err_msg=key)
    # OpenMM leaves out the force field's zero-barrier torsions: 32 terms
    assert [len(fresh[k]) for k in ("bond_idx", "angle_idx", "torsion_idx")] == [21, 36, 32]
    x_min = np.asarray(asset["minimum"])[None]
    energy, forces = alanine_openmm.openmm_energy_forces(x_min, system)
    assert energy[0] == pytest.approx(asset["minimum_energy_kj_mol"], abs=1e-6)
    assert np.abs(forces).max() < 0.1  # a local minimum (kJ/mol/nm)


# -- the target ------------------------------------------------------------------------------


def test_the_target_density(aldp) -> None:
    z = _z(16, seed=5, scale=0.5).requires_grad_(True)
    log_p = aldp.log_prob(z)
    (grad,) = torch.autograd.grad(log_p.sum(), z)
    assert log_p.shape == (16,) and torch.isfinite(log_p).all() and torch.isfinite(grad).all()
    x, log_det = aldp.to_cartesian(z.detach())
    expected = log_det - aldp.energy(x) / (8.314462618e-3 * 300.0)
    torch.testing.assert_close(log_p.detach(), expected)
    assert aldp.log_prob(torch.zeros(1, 60, dtype=F64)) > log_p.max()  # the minimum

    # periodic in the circular dihedrals, -inf outside the domain of the others
    shifted = z.detach().clone()
    shifted[:, list(CIRCULAR)] += 2 * BOUND
    torch.testing.assert_close(aldp.log_prob(shifted), log_p.detach())
    outside = z.detach()[:3].clone()
    outside[0, 38 + 6] = BOUND + 0.1  # the amide H's dihedral, not circular
    outside[1, 0] = -0.2 / 0.005  # a negative bond
    outside[2, 19] = 4 / 0.15  # an angle beyond π
    assert torch.isneginf(aldp.log_prob(outside)).all()

    # clashes: log-compressed, finite energies
    clash = aldp.x_min.clone()[None]
    clash[0, 0] = clash[0, 21] + 1e-6  # the two caps' methyl hydrogens on top of each other
    assert 1e8 < aldp.reduced_energy(clash).item() < 1e8 + 1000


def test_the_target_has_no_exact_samples_and_checks_input(aldp) -> None:
    assert aldp.dim == 60 and math.isnan(aldp.log_Z) and not aldp.exact
    with pytest.raises(NotImplementedError, match="no exact samples"):
        aldp.sample(3)
    with pytest.raises(NotImplementedError, match="no list of modes"):
        aldp.modes_covered(torch.zeros(2, 60))
    with pytest.raises(ValueError, match=r"z must have shape \(n, 60\)"):
        aldp.log_prob(torch.zeros(2, 66, dtype=F64))
    with pytest.raises(ValueError, match=r"\(n, 66\) or \(n, 22, 3\)"):
        dihedrals(torch.zeros(2, 21, 3))


def test_dihedrals_and_the_ramachandran_kld(aldp, tmp_path) -> None:
    phi, psi = dihedrals(aldp.x_min[None])[0].rad2deg().tolist()
    assert phi == pytest.approx(-145.6, abs=0.1) and psi == pytest.approx(160.9, abs=0.1)
    angles = aldp.dihedrals(_z(2000, seed=6))  # (φ, ψ) in z: φ and ψ are circular
    assert angles.shape == (2000, 2) and angles.abs().max() <= math.pi
    uniform = (torch.rand(2000, 2, generator=torch.Generator().manual_seed(7)) * 2 - 1) * math.pi
    assert ramachandran_kld(angles, angles) == pytest.approx(0.0, abs=1e-12)
    assert ramachandran_kld(uniform, angles) > 1.0
    # weights that zero out all but the reference's own points recover it
    mixed = torch.cat([angles, uniform])
    log_w = torch.cat([torch.zeros(2000), torch.full((2000,), -math.inf)])
    assert ramachandran_kld(mixed, angles, log_w) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="angles of shape"):
        ramachandran_kld(angles[:, :1], angles)
    with pytest.raises(ValueError, match="log_w must have shape"):
        ramachandran_kld(angles, angles, torch.zeros(3))
    import matplotlib

    matplotlib.use("Agg")
    figure = alanine.plot_ramachandran(angles, title="z ~ N(0, 1)")
    figure.savefig(tmp_path / "rama.png")
    assert (tmp_path / "rama.png").stat().st_size > 0


# -- the circular spline flow ----------------------------------------------------------------


def _flow(seed: int = 0) -> CircularSplineFlow:
    torch.manual_seed(seed)
    flow = CircularSplineFlow(60, CIRCULAR, circular_bound=BOUND, n_layers=4, hidden=16).double()
    with torch.no_grad():  # leave the identity
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow


def test_the_spline_flow_is_invertible_with_the_autograd_log_det() -> None:
    flow = _flow()
    x, log_q = flow.sample_and_log_prob(32)
    assert x.shape == (32, 60) and x[:, list(CIRCULAR)].abs().max() <= BOUND
    torch.testing.assert_close(flow.log_prob(x), log_q)
    z, log_det = flow.inverse(x)
    x_again, log_det_forward = flow(z)
    torch.testing.assert_close(x_again, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(log_det_forward, -log_det)
    for i in range(2):
        jacobian = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], z[i])
        slogdet = torch.linalg.slogdet(jacobian)[1]
        assert slogdet.item() == pytest.approx(log_det_forward[i].item(), abs=1e-8)


def test_the_spline_flow_starts_as_the_identity_and_is_rebuilt_alike() -> None:
    def build(**kwargs) -> CircularSplineFlow:
        return CircularSplineFlow(6, [1, 4], circular_bound=2.0, n_layers=3, hidden=8, **kwargs)

    torch.manual_seed(0)
    flow = build(shift_every=0).double()
    x, log_q = flow.sample_and_log_prob(64)
    torch.testing.assert_close(flow.inverse(x)[0], x)
    gauss = x[:, [0, 2, 3, 5]]
    expected = -2 * math.log(4.0) - 0.5 * (gauss**2).sum(-1) - 2 * math.log(2 * math.pi)
    torch.testing.assert_close(log_q, expected)
    # masks and shifts are seeded: a rebuilt flow has the same buffers and loads strictly
    flow, again = build().double(), build().double()
    again.load_state_dict(flow.state_dict(), strict=True)
    buffers = dict(build().named_buffers())
    for key, value in flow.named_buffers():
        torch.testing.assert_close(buffers[key], value, check_dtype=False)
    with pytest.raises(ValueError, match="circular must be distinct indices"):
        CircularSplineFlow(6, [1, 6])
    with pytest.raises(ValueError, match="n_layers must be >= 1"):
        CircularSplineFlow(6, [1], n_layers=0)


# -- the module ------------------------------------------------------------------------------

SMALL = {
    "target": "aldp",
    "flow": {"kind": "circular_spline", "n_layers": 2, "hidden": 8},
    "n_intermediate": 1,
    "transition": "hmc",
    "step_size": 0.1,
    "n_leapfrog": 2,
    "batch_size": 16,
    "buffer_min": 32,
    "buffer_max": 128,
    "n_updates": 2,
    "n_eval": 64,
}


def test_the_module_builds_the_spline_flow_and_exports(tmp_path) -> None:
    torch.manual_seed(0)
    model = FABModule(**SMALL)
    assert isinstance(model.flow, CircularSplineFlow) and model.flow.circular_bound == BOUND
    with torch.no_grad():
        for p in model.flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    loaded = assert_export_roundtrip(model.eval(), tmp_path / "aldp")
    assert all(p.dtype == F64 for p in loaded.parameters())
    with pytest.raises(ValueError, match="unknown flow kind 'maf'"):
        FABModule(**{**SMALL, "flow": {"kind": "maf"}})


def test_the_datamodule_gives_empty_scoring_batches() -> None:
    data = FABTargetDataModule(target="aldp", iterations_per_epoch=2)
    data.setup()
    assert data.splits["val"].shape == (0, 60) and data.val_dataloader().dataset[0].numel() == 0
    assert data.fingerprint().startswith("sha256:")


@pytest.mark.slow
def test_the_smoke_recipe_trains_through_zoo_fit(tmp_path, subprocess_env) -> None:
    recipe = str(REPO / "recipes/fab/aldp_smoke.yaml")
    logger = [
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        f"--trainer.logger.save_dir={tmp_path}",
        "--trainer.log_every_n_steps=1",
    ]
    args = ["fit", "--config", recipe, "--trainer.default_root_dir", str(tmp_path), *logger]
    run = run_zoo(args, cwd=tmp_path, env=subprocess_env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert list(tmp_path.rglob("*.ckpt"))
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    ess = [float(r["val/ess_flow"]) for r in rows if r.get("val/ess_flow")]
    assert losses and all(math.isfinite(v) for v in losses)
    assert ess and all(0 < v <= 1 for v in ess)


def test_evaluate_and_the_ramachandran_plot_without_exact_samples(tmp_path) -> None:
    torch.manual_seed(0)
    model = FABModule(**SMALL).eval()
    rows = {row["name"]: row for row in model.evaluate()}
    assert list(rows) == ["flow ESS", "AIS ESS", "log Z (flow)", "log Z (AIS)"]
    assert all(0 <= rows[k]["value"] <= 1 for k in ("flow ESS", "AIS ESS"))
    assert math.isfinite(rows["log Z (flow)"]["value"]) and rows["log Z (flow)"]["stderr"] >= 0
    figure = model.plot_ramachandran(n=64)
    figure.savefig(tmp_path / "rama.png")
    assert (tmp_path / "rama.png").stat().st_size > 0
    gmm = FABModule(target="gmm40", flow={"n_layers": 2, "hidden": [8]})
    with pytest.raises(ValueError, match="plot_samples"):
        gmm.plot_ramachandran(n=8)
