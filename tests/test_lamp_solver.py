"""The E2 solver and its cache: order, conservation, agreement with a finer solve, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoo.lamp import burgers, dataset
from zoo.lamp.burgers import coarsen, forcing_cell_averages, generate, sample_parameters, solve
from zoo.lamp.dataset import E2Config, fingerprint, load_e2


def _smooth(n: int = 2) -> dict[str, np.ndarray]:
    params = sample_parameters(n, seed=1)
    params["A"] = 0.3 * params["A"]
    params["nu"] = np.full(n, 0.2)
    return params


def _mean_drift(u: np.ndarray) -> float:
    mean = u.mean(axis=-1)  # (n, n_frames)
    return float(np.abs(mean - mean[:, :1]).max() / np.abs(mean[:, 0]).max())


def test_order_about_two_on_a_smooth_case():
    params = _smooth()
    reference = solve(params, n_cells=1600, n_frames=5, t_end=0.5)
    errors = []
    for n_cells in (50, 100, 200):
        u = solve(params, n_cells=n_cells, n_frames=5, t_end=0.5)
        errors.append(np.sqrt(np.mean((u - coarsen(reference, 1600 // n_cells)) ** 2)))
    order = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert (order > 1.7).all(), (errors, order)


def test_close_to_a_finer_solve_on_e2():
    params = sample_parameters(2, seed=3)
    reference = coarsen(solve(params, n_cells=400), 4)
    u = coarsen(solve(params, n_cells=200), 2)
    cumulative_mse = ((u - reference) ** 2).mean(axis=-1).sum(axis=-1)  # over 250 frames
    assert (cumulative_mse < 1e-2).all(), cumulative_mse
    assert np.abs(reference).max() > 0.5  # the case is not trivial


def test_mean_is_conserved_with_and_without_forcing():
    params = sample_parameters(3, seed=2)
    x = (np.arange(100) + 0.5) * 0.16
    u0 = forcing_cell_averages(params, 0.0, 0.16 * np.arange(101)) + 0.7
    assert abs(forcing_cell_averages(params, 1.3, 0.16 * np.arange(101)).mean()) < 1e-15

    forced = solve(params, n_cells=100, n_frames=20, t_end=2.0, u0=u0)
    assert _mean_drift(forced) < 1e-12

    params["A"] = np.zeros_like(params["A"])
    u0 = 0.7 + np.sin(2 * np.pi * x / 16.0 + np.array([[0.0], [1.0], [2.0]]))
    free = solve(params, n_cells=100, n_frames=20, t_end=2.0, u0=u0)
    assert _mean_drift(free) < 1e-12
    assert np.abs(free[:, -1] - free[:, 0]).max() > 0.1  # it did evolve


def test_forcing_cell_averages_are_exact_integrals():
    params = sample_parameters(2, seed=4)
    edges = np.array([0.0, 0.5, 3.0, 16.0])
    fine = np.linspace(edges[0], edges[-1], 160_001)
    theta = params["omega"][..., None] * 0.7 + params["phi"][..., None]
    k = 2 * np.pi * params["ell"][..., None] / 16.0
    delta = (params["A"][..., None] * np.sin(theta + k * fine)).sum(axis=1)  # (n, n_points)
    for i in range(3):
        inside = (fine >= edges[i]) & (fine <= edges[i + 1])
        expected = np.trapezoid(delta[:, inside], fine[inside]) / (edges[i + 1] - edges[i])
        got = forcing_cell_averages(params, 0.7, edges)[:, i]
        np.testing.assert_allclose(got, expected, atol=1e-8)


def test_coarsen_averages_pairs():
    u = np.arange(12.0).reshape(1, 2, 6)
    np.testing.assert_array_equal(coarsen(u), [[[0.5, 2.5, 4.5], [6.5, 8.5, 10.5]]])
    np.testing.assert_array_equal(coarsen(u, 3), [[[1.0, 4.0], [7.0, 10.0]]])
    with pytest.raises(ValueError, match="groups of 4"):
        coarsen(u, 4)


def test_generate_shapes_dtypes_and_determinism():
    u, nu = generate(3, seed=0, n_cells=40, n_out=20, n_frames=6, t_end=0.5)
    assert u.shape == (3, 6, 20) and u.dtype == np.float32
    assert nu.shape == (3,) and ((nu >= 0) & (nu <= 0.2)).all()
    again, nu_again = generate(3, seed=0, n_cells=40, n_out=20, n_frames=6, t_end=0.5)
    np.testing.assert_array_equal(u, again)
    np.testing.assert_array_equal(nu, nu_again)
    other, _ = generate(3, seed=1, n_cells=40, n_out=20, n_frames=6, t_end=0.5)
    assert not np.array_equal(u, other)


def test_sample_parameters_ranges():
    p = sample_parameters(200, seed=5)
    assert p["A"].shape == p["omega"].shape == p["phi"].shape == p["ell"].shape == (200, 5)
    assert np.abs(p["A"]).max() <= 0.5 and np.abs(p["omega"]).max() <= 0.4
    assert p["phi"].min() >= 0 and p["phi"].max() < 2 * np.pi
    assert set(np.unique(p["ell"]).tolist()) == {1, 2}


def test_load_e2_caches_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = E2Config(n_train=4, n_val=2, n_test=2)
    first = load_e2(config, root=tmp_path, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == [f"e2-{config.key()}.npz"]
    assert first["train"].shape == (4, 250, 100) and first["train"].dtype == np.float32
    assert first["val"].shape == (2, 250, 100) and first["nu_test"].shape == (2,)
    assert not np.array_equal(first["val"], first["test"][:2])

    def no_solver(*args, **kwargs):
        raise AssertionError("the cached set was generated again")

    monkeypatch.setattr(burgers, "solve", no_solver)
    second = load_e2(config, root=tmp_path, progress=False)
    assert fingerprint(second) == fingerprint(first)
    assert fingerprint(second).startswith("sha256:")
    assert E2Config(seed=1).key() != E2Config().key()


def test_load_e2_names_a_corrupt_file(tmp_path: Path):
    config = E2Config(n_train=1, n_val=1, n_test=1)
    path = dataset.cache_path(config, tmp_path)
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="delete it") as error:
        load_e2(config, root=tmp_path, progress=False)
    assert str(path) in str(error.value)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo"))
    assert dataset.default_cache_dir() == tmp_path / "zoo" / "lamp"
    monkeypatch.delenv("ZOO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert dataset.default_cache_dir() == tmp_path / "xdg" / "zoo" / "lamp"
