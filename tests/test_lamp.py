"""Entry ``lamp``: meshes and their split / collapse rules, the policy's log-probability, rollouts
and the paper's metric, the two training phases through the CLI, and the user API."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from zoo.lamp import mesh
from zoo.lamp.gnn import EvolutionModel
from zoo.lamp.module import LampModule
from zoo.lamp.policy import Policy
from zoo.lamp.simulate import bundle_error, bundles, rollout
from zoo.testing import run_zoo

REPO = Path(__file__).resolve().parent.parent


def random_masks(n: int, n_grid: int = 40, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    masks = mesh.dropout_mask(n, n_grid, 0.8, generator)
    masks[:, -1] = torch.rand(n, generator=generator) < 0.5  # the last lattice vertex may be off
    return masks


# --- meshes ------------------------------------------------------------------------------------


def test_uniform_meshes_and_bad_descriptions() -> None:
    assert mesh.make_mask("uniform:4", 3, 100).sum(-1).tolist() == [25, 25, 25]
    assert mesh.make_mask("uniform:2", 1, 100).sum().item() == 50
    assert mesh.make_mask("full", 1, 100).all()
    for bad in ("uniform", "uniform:0", "coarse"):
        with pytest.raises(ValueError, match="unknown mesh"):
            mesh.make_mask(bad, 1, 100)
    with pytest.raises(ValueError, match="vertex 0"):
        mesh.make_mask(torch.arange(100) % 2 == 1, 1, 100)


def test_next_vertex_and_candidates_on_a_hand_made_mesh() -> None:
    mask = torch.tensor([[1, 0, 0, 1, 1, 0, 1, 0]], dtype=torch.bool)  # vertices 0, 3, 4, 6
    assert mesh.next_vertex(mask)[0, [0, 3, 4, 6]].tolist() == [3, 4, 6, 8]
    assert mesh.split_candidates(mask)[0].nonzero().flatten().tolist() == [0, 4]
    assert mesh.collapse_candidates(mask)[0].nonzero().flatten().tolist() == [3, 4]


def test_split_adds_midpoints_with_interpolated_values() -> None:
    mask = torch.tensor([[1, 0, 0, 1, 1, 0, 1, 0]], dtype=torch.bool)
    values = torch.arange(8.0)[None, :, None] ** 2  # only the mesh vertices' values count
    new_mask, new_values = mesh.split(mask, values, torch.ones_like(mask))
    assert new_mask[0].nonzero().flatten().tolist() == [0, 1, 3, 4, 5, 6]  # (0+3)//2, (4+6)//2
    assert new_values[0, 1, 0].item() == pytest.approx(9 / 3)  # 0 → 9 over three cells
    assert new_values[0, 5, 0].item() == pytest.approx((16 + 36) / 2)


def test_collapse_spares_the_ends_and_drops_chains() -> None:
    mask = torch.ones(1, 8, dtype=torch.bool)
    edges = torch.zeros_like(mask)
    edges[0, [0, 2, 3, 4, 7]] = True  # 0: first vertex; 3 is 2's target, 4 is 3's; 7: no edge
    assert mesh.collapse(mask, edges)[0].nonzero().flatten().tolist() == [0, 1, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("seed", range(5))
def test_random_remeshing_keeps_valid_meshes(seed: int) -> None:
    """Split then collapse random edges of random meshes, collapses chosen among the unsplit
    edges as the policy does: the result is a mask (so sorted, one lattice cell apart at
    least), keeps vertex 0 and the last vertex, and only removes chosen vertices."""
    generator = torch.Generator().manual_seed(seed)
    mask = random_masks(16, seed=seed)
    values = torch.randn(16, 40, 3, generator=generator)
    split_edges = torch.rand(16, 40, generator=generator) < 0.3
    collapse_edges = torch.rand(16, 40, generator=generator) < 0.5
    collapse_edges &= mesh.collapse_candidates(mask, split_edges)  # named on the mesh before
    split_mask, split_values = mesh.split(mask, values, split_edges)
    final = mesh.collapse(split_mask, collapse_edges)

    assert (split_mask >= mask).all(), "splitting only adds vertices"
    last = lambda m: m.shape[1] - 1 - m.flip(1).int().argmax(1)  # noqa: E731
    assert final[:, 0].all() and torch.equal(last(final), last(mask))
    removed = split_mask & ~final
    assert (removed <= (collapse_edges & mask)).all(), "only chosen, pre-existing vertices go"
    target = torch.zeros_like(mask)
    rows, cols = removed.nonzero(as_tuple=True)
    target[rows, mesh.next_vertex(split_mask)[rows, cols]] = True
    assert not (removed & target).any(), "no collapse chains"
    assert torch.equal(split_values[mask], values[mask]), "old vertices keep their values"


def test_interpolation_is_exact_on_the_mesh_and_periodic() -> None:
    mask = mesh.make_mask("uniform:4", 2, 16)  # vertices 0, 4, 8, 12
    values = torch.randn(2, 16, 5)
    grid = mesh.interpolate(values, mask)
    assert torch.equal(grid[mask], values[mask])
    torch.testing.assert_close(grid[:, 2], (values[:, 0] + values[:, 4]) / 2)
    torch.testing.assert_close(grid[:, 14], (values[:, 12] + values[:, 0]) / 2)  # across the wrap


def test_graph_is_a_path_per_mesh_with_flagged_ends() -> None:
    mask = torch.tensor([[1, 1, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)
    g = mesh.graph(mask)
    assert g.rows.tolist() == [0, 0, 0, 1, 1] and g.columns.tolist() == [0, 1, 3, 0, 2]
    assert sorted(map(tuple, g.edge_index.T.tolist())) == [
        (0, 1),
        (1, 0),
        (1, 2),
        (2, 1),
        (3, 4),
        (4, 3),
    ]
    assert g.boundary.tolist() == [1, 0, 1, 1, 1]
    assert g.edge_features(0.5)[:, 1].tolist() == [0.5, 1.0, 1.0, 0.5, 1.0, 1.0]


# --- policy ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_policy() -> Policy:
    torch.manual_seed(0)
    return Policy(bundle=4, latent=16, steps=2, max_action=6)


@pytest.mark.parametrize("sample", [True, False])
def test_log_prob_is_the_sum_over_counts_and_draws(small_policy: Policy, sample: bool) -> None:
    """log π(a) = log p(K_s) + Σ_d<K_s log p(edge_d) + the same for the collapses, duplicates
    counted; scoring the sampled action again gives the same number."""
    policy = small_policy
    mask = random_masks(6, n_grid=30, seed=1)
    values, beta = torch.randn(6, 30, 4), torch.rand(6) * 0.5
    with torch.no_grad():
        out = policy(values, mask, beta)
        action, log_prob, _ = policy.act(out, mask, sample, torch.Generator().manual_seed(3))
        _, again, _ = policy.act(out, mask, given=action)
    torch.testing.assert_close(again, log_prob)

    split_c = mesh.split_candidates(mask)
    collapse_c = mesh.collapse_candidates(mask, action.split_edges)
    for b in range(6):
        expected = 0.0
        parts = (
            (action.k_split, action.split_draws, out.k_split, out.split, split_c),
            (action.k_collapse, action.collapse_draws, out.k_collapse, out.collapse, collapse_c),
        )
        for k, draws, k_logits, logits, cand in ([x[b] for x in part] for part in parts):
            if not cand.any():
                assert k == 0
                continue
            expected += torch.log_softmax(k_logits, 0)[k].item()
            edge_logp = torch.log_softmax(logits[cand], 0)
            position = {int(c): i for i, c in enumerate(cand.nonzero().flatten())}
            expected += sum(edge_logp[position[int(d)]].item() for d in draws[:k])
            assert set(draws[:k].tolist()) <= set(position)
        assert log_prob[b].item() == pytest.approx(expected, abs=1e-4)
    merged = torch.zeros_like(mask)
    for b in range(6):
        merged[b, action.split_draws[b, : action.k_split[b]]] = True
    assert torch.equal(merged, action.split_edges)
    assert not (action.collapse_edges & action.split_edges).any()


def test_meshes_without_candidates_act_with_zero_count(small_policy: Policy) -> None:
    full = torch.ones(2, 12, dtype=torch.bool)  # nothing to split: every span is one cell
    with torch.no_grad():
        out = small_policy(torch.randn(2, 12, 4), full, torch.zeros(2))
        action, log_prob, entropy = small_policy.act(out, full)
    assert action.k_split.tolist() == [0, 0] and not action.split_edges.any()
    assert torch.isfinite(log_prob).all() and torch.isfinite(entropy).all()


def test_fitting_loaded_weights_does_not_reload_the_pretrained_evolution_model() -> None:
    from types import SimpleNamespace

    from zoo.checkpoint import Origin

    model = LampModule(latent=8, steps=1, policy_latent=8, policy_steps=1, init_from="no.ckpt")
    model._trainer = SimpleNamespace(ckpt_path=None, global_rank=0)
    with pytest.raises(Exception, match=r"no\.ckpt"):
        model.setup("fit")  # a fresh module loads init_from
    model.zoo_origin = Origin("lamp.burgers1d", "bundled")
    model.setup("fit")  # loaded weights are trained already


# --- rollouts and the metric -------------------------------------------------------------------


def test_bundles_and_the_metric_on_a_hand_made_case() -> None:
    frames = torch.arange(2 * 10 * 4, dtype=torch.float32).reshape(2, 10, 4)
    b = bundles(frames, 2, 4, 2)
    assert b.shape == (4, 2, 4, 2) and b[1, 0, 3].tolist() == [frames[0, 4, 3], frames[0, 5, 3]]
    with pytest.raises(ValueError, match="need frames 2..11"):
        bundles(frames, 2, 5, 2)

    mask = torch.tensor([[1, 0, 1, 0]], dtype=torch.bool)
    truth = torch.zeros(1, 4, 2)
    prediction = torch.zeros(1, 4, 2)
    prediction[0, 2] = 2.0  # interpolates to 1 at vertices 1 and 3 (across the wrap)
    # per frame: (0 + 1 + 4 + 1) / 4 = 1.5, summed over the 2 frames
    assert bundle_error(prediction, mask, truth).item() == pytest.approx(3.0)


def test_rollout_shapes_with_and_without_the_policy(small_policy: Policy) -> None:
    torch.manual_seed(0)
    evolution = EvolutionModel(bundle=4, latent=8, steps=1)
    mask = mesh.make_mask("uniform:2", 3, 30)
    initial = torch.randn(3, 30, 4)
    with torch.no_grad():
        plain = rollout(evolution, initial, mask, 5)
        remeshed = rollout(evolution, initial, mask, 5, policy=small_policy, beta=torch.zeros(3))
    assert plain.states.shape == (5, 3, 30, 4) and plain.log_probs is None
    assert (plain.n_vertices == 15).all() and len(plain.actions) == 0
    assert remeshed.log_probs.shape == (5, 3) and len(remeshed.actions) == 5
    assert (remeshed.states[~remeshed.masks] == 0).all()
    assert plain.on_grid().shape == (3, 20, 30)
    with pytest.raises(ValueError, match="needs beta"):
        rollout(evolution, initial, mask, 2, policy=small_policy)


# --- training through the CLI and the API ------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The two smoke recipes in sequence; the joint phase starts from the pretraining run."""
    root = tmp_path_factory.mktemp("lamp")
    env = {
        **os.environ,
        "ZOO_CACHE": str(root / "cache"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    pretrained = "runs/lamp/smoke-evolution/checkpoints/evolution.ckpt"
    for recipe, extra in (
        ("smoke_evolution", []),
        ("smoke_remesh", ["--model.init_from", pretrained]),
    ):
        config = str(REPO / f"recipes/lamp/{recipe}.yaml")
        run = run_zoo(["fit", "--config", config, *extra], cwd=root, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
    return root / "runs/lamp"


@pytest.mark.slow
def test_joint_phase_runs_under_ddp(tmp_path) -> None:
    """Two CPU processes (gloo): ragged graph batches per rank, frozen halves in each phase."""
    env = {
        **os.environ,
        "ZOO_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    recipe = str(REPO / "recipes/lamp/smoke_remesh.yaml")
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp_find_unused_parameters_true"]
    run = run_zoo(["fit", "--config", recipe, *ddp], cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "runs/lamp/smoke-remesh/checkpoints/remesh.ckpt").is_file()


@pytest.mark.slow
def test_joint_phase_starts_from_the_pretrained_evolution_model(trained: Path) -> None:
    from zoo.export import load_checkpoint

    pretrained, _ = load_checkpoint(trained / "smoke-evolution/checkpoints/evolution.ckpt")
    joint, record = load_checkpoint(trained / "smoke-remesh/checkpoints/remesh.ckpt")
    assert isinstance(joint, LampModule) and record["global_step"] == 6
    # phases of 2 steps: steps 2-3 updated the evolution model, so it moved from the pretrained
    moved = [
        not torch.equal(a, b)
        for a, b in zip(
            pretrained.evolution.parameters(), joint.evolution.parameters(), strict=True
        )
    ]
    assert any(moved)


@pytest.mark.slow
def test_rollout_api_shapes_errors_and_beta_warning(trained: Path, monkeypatch) -> None:
    from zoo.export import load_checkpoint

    monkeypatch.setenv("ZOO_CACHE", str(trained.parent.parent / "cache"))
    model, _ = load_checkpoint(trained / "smoke-remesh/checkpoints/remesh.ckpt")
    truth = model.sample_trajectory(seed=0)
    assert truth.shape == (250, 100)
    initial = truth[25:50]
    assert torch.equal(initial, model.sample_initial_condition(seed=0))

    out = model.rollout(initial, steps=100, beta=0.2, init_mesh="uniform:4")
    assert out.on_grid().shape == (100, 100) and out.n_vertices.shape == (4,)
    assert len(out.positions) == 4 and out.states[0].shape == (int(out.n_vertices[0]), 25)
    steps = torch.cat([torch.tensor([25]), out.n_vertices])
    assert torch.equal(steps[1:] - steps[:-1], out.splits - out.collapses)
    assert out.error(truth[50:150]).item() == pytest.approx(
        ((out.on_grid() - truth[50:150]) ** 2).sum().item() / 100, rel=1e-4
    )
    assert repr(out).startswith("LampRollout(1 trajectory, 4 steps of 25 frames, vertices")
    fixed = model.rollout(initial, steps=50, remesh=False, init_mesh="uniform:2")
    assert (fixed.n_vertices == 50).all() and (fixed.splits == 0).all()
    batched = model.rollout(torch.stack([initial, initial]), steps=25, beta=[0.0, 0.5])
    assert batched.on_grid().shape == (2, 25, 100) and batched.n_vertices.shape == (2, 1)

    with pytest.raises(ValueError, match="multiple of the bundle"):
        model.rollout(initial, steps=30)
    with pytest.raises(ValueError, match=r"initial must be \(25, n_grid\)"):
        model.rollout(initial[:10])
    with pytest.raises(ValueError, match="NaN"):
        model.rollout(torch.full((25, 100), float("nan")))
    with pytest.warns(UserWarning, match="outside the trained range"):
        model.rollout(initial, steps=25, beta=0.9)


@pytest.mark.slow
def test_evaluation_table_and_plots(trained: Path, monkeypatch, tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from zoo.export import load_checkpoint
    from zoo.recipes import datamodule_from_recipe

    monkeypatch.setenv("ZOO_CACHE", str(trained.parent.parent / "cache"))
    model, record = load_checkpoint(trained / "smoke-remesh/checkpoints/remesh.ckpt")
    dm = datamodule_from_recipe(record["recipe"])
    rows = model.evaluate("test", dm, beta=[0.0, 0.5], init_mesh=["uniform:4"], n=2)
    assert [(r["model"], r["beta"]) for r in rows] == [
        ("LAMP (no remeshing)", None),
        ("LAMP", 0.0),
        ("LAMP", 0.5),
        ("LAMP (no remeshing)", None),
    ]
    assert rows[0]["average_vertices"] == 25 and rows[-1]["average_vertices"] == 100
    assert all(r["value"] == r["error"] > 0 for r in rows)
    out = model.rollout(model.sample_initial_condition(), steps=50)
    model.plot_rollout(out, model.sample_trajectory()[50:100]).savefig(tmp_path / "r.png")
    model.plot_tradeoff(rows, [{"model": "FNO", "average_vertices": 25, "error": 3.0}])
    assert (tmp_path / "r.png").stat().st_size > 0


# --- the shipped weights -----------------------------------------------------------------------

GOLDEN = REPO / "tests" / "data" / "lamp_golden.json"


def golden_outputs() -> dict[str, list[float]]:
    """What ``lamp.burgers1d`` gives on one fresh trajectory (seed 0): a sampled remeshing
    rollout of 100 frames from 25 vertices (beta 0.2, action seed 0) and the same without
    remeshing. Rewrite the file after retraining with ``python tests/test_lamp.py``."""
    import zoo

    model = zoo.load("lamp")
    truth = model.sample_trajectory(seed=0)
    out = model.rollout(truth[25:50], steps=100, beta=0.2, init_mesh="uniform:4", seed=0)
    fixed = model.rollout(truth[25:50], steps=100, init_mesh="uniform:4", remesh=False)
    return {
        "n_vertices": out.n_vertices.tolist(),
        "splits": out.splits.tolist(),
        "error": [out.error(truth[50:150]).item(), fixed.error(truth[50:150]).item()],
        "grid": out.on_grid()[::10, ::10].flatten().tolist(),
    }


def test_shipped_weights_load_round_trip_and_match_golden_outputs(tmp_path) -> None:
    import json

    import zoo
    from zoo.testing import assert_export_roundtrip

    model = zoo.load("lamp")
    assert model.zoo_origin.name == "lamp.burgers1d" and model.zoo_origin.source == "bundled"
    assert_export_roundtrip(model, tmp_path / "copy")
    expected = json.loads(GOLDEN.read_text())
    actual = golden_outputs()
    assert actual["n_vertices"] == expected["n_vertices"]
    assert actual["splits"] == expected["splits"]
    for key in ("error", "grid"):
        assert actual[key] == pytest.approx(expected[key], rel=1e-3, abs=1e-4), key


if __name__ == "__main__":
    import json

    GOLDEN.write_text(json.dumps(golden_outputs(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
