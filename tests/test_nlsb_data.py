"""The NLSB snapshot data: exact and simulated ground truths, splits, batches, the EB loader."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from zoo.nlsb.data import SnapshotDataModule, SnapshotProcess, make_snapshots, process
from zoo.nlsb.eb import EBDataError, EBDataNotFoundError, load_eb

SMALL = {"n_train": 300, "n_val": 100, "n_test": 100}


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- ou1d: exact transition law


@pytest.mark.parametrize(("s", "t"), [(0.0, 1.0), (1.0, 2.5), (3.0, 4.0), (0.0, 4.0)])
def test_ou_moments_match_quadrature(s: float, t: float) -> None:
    ou = process("ou1d")
    x = torch.tensor([[-0.7], [0.3]], dtype=torch.float64)
    mean, std = ou.conditional_moments(x, s, t)

    r = torch.linspace(s, t, 20001, dtype=torch.float64)
    shift = ou.mu * torch.trapezoid(torch.exp(-ou.theta * (t - r)) * r, r)
    var = torch.trapezoid(torch.exp(-2 * ou.theta * (t - r)) * (ou.sigma * r) ** 2, r)
    torch.testing.assert_close(mean, x * math.exp(-ou.theta * (t - s)) + shift, atol=1e-8, rtol=0)
    torch.testing.assert_close(std**2, var.expand_as(std), atol=1e-8, rtol=0)


def test_ou_moments_compose_and_vanish_at_zero_lag() -> None:
    ou = process("ou1d")
    x = torch.tensor([[0.4]], dtype=torch.float64)
    mean, std = ou.conditional_moments(x, 2.0, 2.0)
    assert mean.item() == pytest.approx(0.4) and std.item() == pytest.approx(0.0, abs=1e-6)
    # Chapman-Kolmogorov for a linear SDE: 1 -> 2 -> 3.5 equals 1 -> 3.5.
    m12, s12 = ou.conditional_moments(x, 1.0, 2.0)
    m23, s23 = ou.conditional_moments(m12, 2.0, 3.5)
    decay = math.exp(-ou.theta * 1.5)
    m13, s13 = ou.conditional_moments(x, 1.0, 3.5)
    torch.testing.assert_close(m23, m13)
    torch.testing.assert_close(s12**2 * decay**2 + s23**2, s13**2)


def test_ou_exact_sampler_matches_euler_maruyama() -> None:
    ou, n, s, t = process("ou1d", dt_ref=1e-3), 20000, 1.0, 3.0
    x = torch.full((n, 1), 0.5, dtype=torch.float64)
    mean, std = ou.conditional_moments(x[:1], s, t)
    exact = ou.sample_at(x, s, t, _generator(1)).double()
    euler = SnapshotProcess._transition(ou, x, s, t, _generator(2))  # the generic EM path
    assert ou.exact
    for sample in (exact, euler):
        se_mean, se_var = std.item() / math.sqrt(n), std.item() ** 2 * math.sqrt(2 / n)
        assert abs(sample.mean() - mean.item()) < 4 * se_mean
        assert abs(sample.var() - std.item() ** 2) < 4 * se_var


def test_ou_snapshot_marginals_match_chained_closed_form() -> None:
    ou, data = process("ou1d"), make_snapshots("ou1d", n_train=4000, n_val=10, n_test=10)
    m, v = 0.0, 1.0 / 3.0  # X_0 ~ U(-1, 1)
    for k in range(1, 5):
        s, t = ou.times[k - 1], ou.times[k]
        shift, std = ou.conditional_moments(torch.zeros(1, 1, dtype=torch.float64), s, t)
        decay = math.exp(-ou.theta * (t - s))
        m, v = m * decay + shift.item(), v * decay**2 + std.item() ** 2
        x = data["train"][k].double()
        assert abs(x.mean() - m) < 4 * math.sqrt(v / len(x)), t
        assert abs(x.var() - v) < 4 * v * math.sqrt(2 / len(x)) + 0.01 * v, t


def test_snapshots_have_no_correspondence() -> None:
    data = make_snapshots("ou1d", **SMALL)
    x0, x1 = data["train"][0][:, 0], data["train"][1][:, 0]
    assert abs(torch.corrcoef(torch.stack([x0, x1]))[0, 1]) < 0.2  # ≈ 0.92 if paired


# ---------------------------------------------------------------- psde3d: Euler-Maruyama


def _psde_at_4(dt_ref: float, n: int = 4000) -> torch.Tensor:
    proc = process("psde3d", dt_ref=dt_ref)
    generator = _generator(3)
    x = proc.sample_base(n, generator)
    return proc.sample_at(x, 0.0, 4.0, generator).double()


def test_psde_converges_in_dt() -> None:
    fine, ref, coarse = _psde_at_4(2.5e-4), _psde_at_4(1e-3), _psde_at_4(0.1)
    gap_ref = (fine.mean(0) - ref.mean(0)).abs().max().item()
    gap_coarse = (fine.mean(0) - coarse.mean(0)).abs().max().item()
    assert gap_ref < 1e-2, gap_ref
    assert gap_coarse > 2e-2, (gap_ref, gap_coarse)  # the step bias, ≈ 0.03


def test_psde_noise_free_solution_and_potential() -> None:
    proc = process("psde3d", dt_ref=1e-3)
    proc.sigma = 0.0
    x0 = proc.sample_base(200, _generator(4)).double()
    x4 = proc.sample_at(x0, 0.0, 4.0, _generator(5)).double()
    torch.testing.assert_close(x4, x0 / (1 + proc.a * x0 * 4.0), atol=2e-3, rtol=0)
    assert not proc.exact

    x = x0.clone().requires_grad_()
    (grad,) = torch.autograd.grad((proc.a * x**3 / 3).sum(), x)  # U of the "cubic" prior
    torch.testing.assert_close(proc.drift(x0, 1.0), -grad)


# ---------------------------------------------------------------- branch2d: one blob, then two


def test_branch_splits_one_blob_into_two() -> None:
    data = make_snapshots("branch2d", **SMALL, seed=1)["train"]
    start, end = data[0][:, 0], data[-1][:, 0]
    assert (start.abs() < 0.3).float().mean() > 0.5  # one blob at the origin
    assert 0.35 < (end > 0).float().mean() < 0.65  # two blobs of about equal mass ...
    assert (end.abs() < 0.3).float().mean() < 0.03  # ... with a gap between them
    c = process("branch2d").c
    assert abs(end[end > 0].mean() - c) < 0.2 and abs(end[end < 0].mean() + c) < 0.2


def test_branch_drift_is_minus_grad_potential() -> None:
    proc = process("branch2d")
    x = torch.randn(50, 2, generator=_generator(6), dtype=torch.float64)
    for t in (0.0, 1.3, 2.0, 4.0):
        xg = x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(proc.potential(xg, t).sum(), xg)
        torch.testing.assert_close(proc.drift(x, t), -grad)
    assert proc.mix(0.0) == 1.0 and proc.mix(4.0) == 0.0
    assert (proc.diffusion(x, 1.0).abs() < 1).all()


def test_process_errors() -> None:
    with pytest.raises(ValueError, match=r"'ou3d'.*branch2d.*ou1d.*psde3d"):
        process("ou3d")
    ou = process("ou1d")
    with pytest.raises(ValueError, match=r"\(n, 1\)"):
        ou.sample_at(torch.zeros(3, 2), 0.0, 1.0, _generator())
    with pytest.raises(ValueError, match="t >= s"):
        ou.sample_at(torch.zeros(3, 1), 2.0, 1.0, _generator())


# ---------------------------------------------------------------- splits and the DataModule


def test_snapshots_are_seeded_and_splits_independent() -> None:
    proc = process("branch2d", dt_ref=1e-2)  # coarse: only the seeding is tested here
    a, b = make_snapshots(proc, **SMALL), make_snapshots(proc, **SMALL)
    c = make_snapshots(proc, **SMALL, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a["train"], b["train"], strict=True))
    assert not torch.equal(a["train"][0], c["train"][0])
    assert not torch.equal(a["val"][2], a["test"][2])
    assert [x.shape for x in a["val"]] == [(100, 2)] * 5 and a["val"][0].dtype == torch.float32


def test_datamodule_knows_times_before_setup_and_fingerprints() -> None:
    dm = SnapshotDataModule("psde3d", holdout=[2], **SMALL)
    assert dm.times == (0.0, 1.0, 2.0, 3.0, 4.0) and dm.dim == 3 and dm.splits is None
    assert dm.train_times == (0.0, 1.0, 3.0, 4.0)
    same, other = SnapshotDataModule("ou1d", **SMALL), SnapshotDataModule("ou1d", **SMALL, seed=2)
    assert same.fingerprint() == SnapshotDataModule("ou1d", **SMALL).fingerprint()
    assert same.fingerprint() != other.fingerprint()
    assert same.fingerprint().startswith("sha256:") and len(same.fingerprint()) == 23
    assert same.mean is None and same.velocities is None and same.process.name == "ou1d"


def test_holdout_removes_a_time_from_training_only() -> None:
    dm = SnapshotDataModule("branch2d", holdout=[2.0], batch_size=64, **SMALL)
    dm.setup()
    loader = dm.train_dataloader()
    assert len(loader) == 300 // 64
    batch = next(iter(loader))
    assert batch["t"].tolist() == [0.0, 1.0, 3.0, 4.0]
    assert [x.shape for x in batch["x"]] == [(64, 2)] * 4 and "v" not in batch
    assert all(len(torch.unique(x, dim=0)) == 64 for x in batch["x"])  # without replacement
    held = dm.splits["train"][2]
    assert not any(torch.isin(x[:, 0], held[:, 0]).any() for x in batch["x"])
    (val,) = list(dm.val_dataloader())
    assert val["t"].tolist() == list(dm.times) and [len(x) for x in val["x"]] == [100] * 5
    (test,) = list(dm.test_dataloader())
    assert torch.equal(test["x"][2], dm.splits["test"][2])


def test_batches_per_epoch_and_small_times() -> None:
    dm = SnapshotDataModule("ou1d", batch_size=500, batches_per_epoch=3, **SMALL)
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == 3 and [len(x) for x in batches[0]["x"]] == [300] * 5
    assert not torch.equal(batches[0]["x"][1], batches[1]["x"][1])  # reshuffled
    torch.testing.assert_close(
        batches[0]["x"][1].sort(0).values, dm.splits["train"][1].sort(0).values
    )
    assert len(SnapshotDataModule("ou1d", batch_size=500, **SMALL).train_dataloader()) == 1


def test_each_rank_draws_its_own_batches() -> None:
    def first_batch(rank: int) -> torch.Tensor:
        dm = SnapshotDataModule("ou1d", batch_size=32, **SMALL)
        dm.trainer = SimpleNamespace(global_rank=rank)
        return next(iter(dm.train_dataloader()))["x"][1]

    assert torch.equal(first_batch(0), first_batch(0))
    assert not torch.equal(first_batch(0), first_batch(1))


@pytest.mark.parametrize("bad", [0.0, 4.0, 2.5])
def test_bad_holdout_names_the_value_and_the_valid_times(bad: float) -> None:
    with pytest.raises(ValueError, match=rf"{bad}.*\[1\.0, 2\.0, 3\.0\]"):
        SnapshotDataModule("ou1d", holdout=[bad])


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match=r"'cifar'.*'eb'"):
        SnapshotDataModule("cifar")
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        SnapshotDataModule("ou1d", batch_size=0)


# ---------------------------------------------------------------- the EB loader


def _write_eb(path: Path, layout: str, per_time: int = 260, d: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), per_time)
    x = rng.normal(size=(len(labels), d)) * 3 + labels[:, None] + 10
    keys = {"nlsb": ("X", "ts", "v"), "trajectorynet": ("pcs", "sample_labels", "delta_embedding")}
    kx, kt, kv = keys[layout]
    ts = labels if layout == "nlsb" else labels.astype(np.float64)
    np.savez(path, **{kx: x, kt: ts, kv: 2 * x})
    return x


@pytest.mark.parametrize("layout", ["nlsb", "trajectorynet"])
def test_load_eb_standardises_and_splits(tmp_path: Path, layout: str) -> None:
    raw = _write_eb(tmp_path / "eb.npz", layout)
    eb = load_eb(tmp_path / "eb.npz", dim=5)
    assert eb.times == (0.0, 1.0, 2.0, 3.0, 4.0)
    assert [len(x) for x in eb.splits["val"]] == [200] * 5 and eb.splits["test"] is eb.splits[
        "val"
    ]
    assert [len(x) for x in eb.splits["train"]] == [60] * 5
    train = torch.cat(eb.splits["train"]).double()
    assert train.mean(0).abs().max() < 1e-5 and (train.std(0) - 1).abs().max() < 1e-5
    assert eb.mean.shape == (5,)
    torch.testing.assert_close(
        eb.mean.double(), torch.as_tensor(raw[:, :5]).mean(0), atol=0.5, rtol=0
    )
    x, v = eb.splits["val"][3], eb.velocities["val"][3]  # v = 2 x in raw units
    torch.testing.assert_close(v * eb.std, 2 * (x * eb.std + eb.mean), rtol=1e-5, atol=1e-4)


def test_eb_datamodule_batches_carry_velocities(tmp_path: Path) -> None:
    _write_eb(tmp_path / "mine.npz", "nlsb")
    dm = SnapshotDataModule(
        "eb", data_dir=str(tmp_path), file="mine.npz", holdout=[2], batch_size=40
    )
    with pytest.raises(RuntimeError, match="setup"):
        _ = dm.times
    dm.setup()
    assert dm.dim == 5 and dm.process is None and dm.train_times == (0.0, 1.0, 3.0, 4.0)
    batch = next(iter(dm.train_dataloader()))
    assert [x.shape for x in batch["v"]] == [(40, 5)] * 4
    x, v = batch["x"][1], batch["v"][1]
    torch.testing.assert_close(v * dm.std, 2 * (x * dm.std + dm.mean), rtol=1e-5, atol=1e-4)
    assert dm.fingerprint() == dm.fingerprint()


def test_eb_missing_file_or_keys_says_what_to_provide(tmp_path: Path) -> None:
    missing = tmp_path / "eb_velocity_v5.npz"
    with pytest.raises(FileNotFoundError) as info:
        SnapshotDataModule("eb", data_dir=str(tmp_path)).setup()
    message = str(info.value)
    assert str(missing) in message and "download" in message and "data_dir=" in message
    for key in ("'X'", "'ts'", "'v'", "'pcs'", "'sample_labels'", "'delta_embedding'"):
        assert key in message
    with pytest.raises(EBDataNotFoundError, match="data_dir"):
        SnapshotDataModule("eb").setup()
    np.savez(tmp_path / "odd.npz", cells=np.zeros((3, 5)))
    with pytest.raises(EBDataError, match=r"\['cells'\].*'pcs'"):
        load_eb(tmp_path / "odd.npz")
    _write_eb(tmp_path / "few.npz", "nlsb", per_time=150)
    with pytest.raises(ValueError, match="150 cells"):
        load_eb(tmp_path / "few.npz")
