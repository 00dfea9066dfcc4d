"""Entry ``fab``: every loss trains, non-finite steps are skipped, the buffer lives in resume
checkpoints only, the user API's importance weights, log Z and errors, the datamodule, export."""

from __future__ import annotations

import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from zoo.fab.data import FABTargetDataModule
from zoo.fab.module import LOSSES, FABModule
from zoo.testing import assert_export_roundtrip, run_zoo

REPO = Path(__file__).resolve().parent.parent
TINY = {"flow": {"n_layers": 2, "hidden": [8, 8]}, "batch_size": 16, "n_eval": 256}
BUFFER = {"buffer_max": 256, "buffer_min": 32, "n_updates": 2}


def _model(**kwargs) -> FABModule:
    torch.manual_seed(0)
    return FABModule(**{**TINY, **BUFFER, "lr": 1e-2, **kwargs})


def _trainer(tmp_path: Path, **kwargs) -> pl.Trainer:
    options = {
        "accelerator": "cpu",
        "max_steps": 6,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "limit_val_batches": 0,
        "default_root_dir": str(tmp_path),
        **kwargs,
    }
    return pl.Trainer(**options)


def _data(target: str = "gmm40") -> FABTargetDataModule:
    return FABTargetDataModule(target=target, n_val=64, n_test=64, iterations_per_epoch=5)


def _weights(model: FABModule) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.flow.parameters()]).clone()


@pytest.mark.parametrize("loss", LOSSES)
def test_a_few_steps_of_each_loss_are_finite_and_move_the_flow(loss, tmp_path) -> None:
    model = _model(loss=loss)
    before = _weights(model)
    trainer = _trainer(tmp_path)
    trainer.fit(model, _data())
    assert trainer.global_step == 6
    assert math.isfinite(trainer.callback_metrics["train/loss"])
    assert not torch.equal(_weights(model), before)
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_warmup_and_cosine_schedule_follow_the_optimiser_steps(tmp_path) -> None:
    model = _model(loss="reverse_kl", warmup_steps=4, lr_schedule="cosine")
    trainer = _trainer(tmp_path, max_steps=8)
    trainer.fit(model, _data())
    (scheduler,) = trainer.lr_scheduler_configs
    assert scheduler.scheduler.last_epoch == 8  # one scheduler step per optimiser step
    lr = trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi)), abs=1e-12)  # decayed to 0
    factor = scheduler.scheduler.lr_lambdas[0]
    assert factor(0) == pytest.approx(0.25 * 0.5 * (1 + math.cos(0.0)))
    assert factor(3) == pytest.approx(0.5 * (1 + math.cos(math.pi * 3 / 8)))
    with pytest.raises(ValueError, match="lr_schedule"):
        _model(lr_schedule="linear")
    with pytest.raises(ValueError, match="max_steps"):
        _trainer(tmp_path, max_steps=-1, max_epochs=1).fit(
            _model(lr_schedule="cosine"), _data()
        )


def test_non_finite_losses_take_no_step(tmp_path) -> None:
    model = _model(loss="reverse_kl")
    model.target.log_prob = lambda x: torch.full(x.shape[:1], math.nan, dtype=x.dtype)
    before = _weights(model)
    trainer = _trainer(tmp_path, max_steps=-1, max_epochs=1, limit_train_batches=3)
    with pytest.warns(UserWarning, match="not finite; the step is skipped"):
        trainer.fit(model, _data())
    assert trainer.global_step == 0
    assert torch.equal(_weights(model), before)


def test_the_buffer_fills_before_the_first_step(tmp_path) -> None:
    model = _model(buffer_min=64)  # 4 AIS batches of 16 before any update
    trainer = _trainer(tmp_path, max_steps=-1, max_epochs=1, limit_train_batches=4)
    trainer.fit(model, _data())
    assert len(model.buffer) == 64 and trainer.global_step == 2


def test_the_buffer_is_in_resume_checkpoints_only(tmp_path) -> None:
    model = _model()
    trainer = _trainer(tmp_path)
    trainer.fit(model, _data())
    keys = model.state_dict().keys()
    assert {"ais.own_step_size", "ais.shared_step_size"} <= keys
    assert not [k for k in keys if "buffer" in k or k.startswith("target.")]
    path = tmp_path / "resume.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["fab_buffer"]
    assert saved["size"] == len(model.buffer) == 4 * 16  # 2 fill batches, 2 updating ones
    torch.testing.assert_close(saved["log_w"], model.buffer.log_w[: saved["size"]])

    resumed = _model()
    _trainer(tmp_path, max_steps=8).fit(resumed, _data(), ckpt_path=path)
    assert len(resumed.buffer) == 5 * 16  # the saved 4 batches and one more
    torch.testing.assert_close(resumed.buffer.x[16:64], model.buffer.x[16:64])


def test_step_sizes_are_tuned_in_training_and_saved(tmp_path) -> None:
    model = _model(target="manywell6", n_intermediate=2, transition="hmc", n_leapfrog=2)
    before = model.ais.step_sizes.clone()
    _trainer(tmp_path, max_steps=2).fit(model, _data("manywell6"))
    assert not torch.equal(model.ais.step_sizes, before)
    copy = _model(target="manywell6", n_intermediate=2, transition="hmc", n_leapfrog=2)
    copy.load_state_dict(model.state_dict())
    torch.testing.assert_close(copy.ais.step_sizes, model.ais.step_sizes)


def test_the_module_checks_its_arguments_and_its_data(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown loss 'fab'"):
        FABModule(loss="fab")
    with pytest.raises(ValueError, match="n_updates \\* batch_size <= buffer_min"):
        FABModule(batch_size=128, n_updates=4, buffer_min=256)
    with pytest.raises(ValueError, match="unknown FAB target"):
        FABModule(target="gmm9")
    with pytest.raises(ValueError, match="set data.target and model.target alike"):
        _trainer(tmp_path).fit(_model(), _data("manywell6"))


@pytest.fixture
def manywell() -> FABModule:
    return _model(target="manywell6", n_intermediate=1, transition="hmc", n_leapfrog=2).eval()


def test_importance_weights_log_Z_and_expectations(manywell) -> None:
    x, log_w = manywell.importance_sample(50)
    assert x.shape == (50, 6) and log_w.shape == (50,) and x.dtype == torch.float64
    torch.testing.assert_close(log_w, manywell.target.log_prob(x) - manywell.log_prob(x))
    x_ais, log_w_ais = manywell.importance_sample(40, ais=True)
    assert x_ais.shape[1] == 6 and len(x_ais) == len(log_w_ais) <= 40
    assert manywell.importance_sample(8, ais=True, n_intermediate=2)[0].shape[1] == 6
    assert not manywell.ais.training  # evaluation freezes the step sizes
    for ais in (False, True):
        mean, stderr = manywell.log_Z(200, ais=ais, n_splits=4)
        assert math.isfinite(mean) and math.isfinite(stderr) and stderr >= 0
        assert 0 < manywell.ess(200, ais=ais) <= 1
    assert float(manywell.expectation(lambda x: 1.0, n=100)) == pytest.approx(1.0)
    assert manywell.expectation(lambda x: x, n=100).shape == (6,)
    assert 0 <= manywell.modes_covered(500) <= 8


def test_the_api_rejects_bad_input(manywell) -> None:
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        manywell.sample(0)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        manywell.importance_sample(2.5)
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        manywell.log_prob(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="n_splits"):
        manywell.log_Z(5, n_splits=10)
    with pytest.raises(ValueError, match="one value per point"):
        manywell.expectation(lambda x: x[:2], n=10)
    with pytest.raises(ValueError, match="dims must be two different coordinates"):
        manywell.plot_samples(10, dims=(0, 0))


def test_evaluate_and_showcase(manywell, tmp_path) -> None:
    rows = manywell.evaluate(_data("manywell6"))
    names = [row["name"] for row in rows]
    assert names == [
        "flow ESS",
        "AIS ESS",
        "log Z error (flow)",
        "log Z error (AIS)",
        "modes covered",
        "mean log q on exact samples",
    ]
    assert all(math.isfinite(r["value"]) and r["paper"] is None and r["dataset"] for r in rows)
    assert rows[4]["of"] == 8
    result = manywell.showcase(tmp_path / "show")
    assert (tmp_path / "show" / "samples.png").is_file()
    assert {"task", "metric", "value"} <= result.keys()


def test_the_datamodule_is_seeded_and_fingerprinted() -> None:
    data = _data()
    data.setup()
    again = _data()
    assert torch.equal(data.splits["val"], again.val_dataloader().dataset[0])
    assert data.splits["val"].dtype == torch.float64 and data.splits["val"].shape == (64, 2)
    assert not torch.equal(data.splits["val"], data.splits["test"])
    assert data.fingerprint() == again.fingerprint() != _data("manywell6").fingerprint()
    assert [int(i) for i in data.train_dataloader()] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="unknown target"):
        FABTargetDataModule(target="gmm")


def test_export_roundtrip(tmp_path) -> None:
    model = _model()
    with torch.no_grad():
        for p in model.flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    loaded = assert_export_roundtrip(model.eval(), tmp_path / "fab")
    assert all(p.dtype == torch.float64 for p in loaded.parameters())


@pytest.mark.slow
def test_smoke_training_runs_under_ddp(tmp_path, subprocess_env) -> None:
    """Two CPU processes (gloo), each with its own AIS and buffer."""
    recipe = str(REPO / "recipes/fab/smoke.yaml")
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp"]
    out = ["--trainer.default_root_dir", str(tmp_path)]
    run = run_zoo(["fit", "--config", recipe, *ddp, *out], cwd=tmp_path, env=subprocess_env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert list(tmp_path.rglob("*.ckpt"))


GOLDEN = REPO / "tests" / "data" / "fab_golden.json"
SHIPPED = ("fab.gmm40", "fab.manywell6")


def golden_outputs() -> dict[str, list[float]]:
    """What the shipped weights give: log q at fixed points, flow samples from a fixed seed,
    and the HMC step sizes. Rewrite after retraining with ``python tests/test_fab.py``."""
    import zoo

    out: dict[str, list[float]] = {}
    for name in SHIPPED:
        model = zoo.load(name)
        dim = model.target.dim
        points = torch.linspace(-3.0, 3.0, 5 * dim, dtype=torch.float64).reshape(5, dim)
        generator = torch.Generator().manual_seed(0)
        x, log_q = model.flow.sample_and_log_prob(4, generator=generator)
        out[f"{name} log_prob"] = model.log_prob(points).tolist()
        out[f"{name} samples"] = x.flatten().tolist() + log_q.tolist()
        out[f"{name} step sizes"] = model.ais.step_sizes.tolist()
    return out


def test_shipped_weights_load_round_trip_and_match_golden_outputs(tmp_path) -> None:
    import json

    import zoo

    model = zoo.load("fab")
    assert model.zoo_origin.name == "fab.gmm40" and model.zoo_origin.source == "bundled"
    assert not model.training and all(p.dtype == torch.float64 for p in model.parameters())
    assert_export_roundtrip(model, tmp_path / "copy")
    expected = json.loads(GOLDEN.read_text())
    actual = golden_outputs()
    assert expected.keys() == actual.keys()
    for key, values in expected.items():
        assert actual[key] == pytest.approx(values, rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_weights_cover_their_target(name) -> None:
    """What the card reports, on fresh samples: every mode covered, log Z near the truth."""
    import zoo

    model = zoo.load(name)
    torch.manual_seed(1)
    assert model.modes_covered(10000) == model.target.n_modes
    mean, stderr = model.log_Z(10000, ais=True)
    assert abs(mean - model.target.log_Z) < 0.1 + 3 * stderr


if __name__ == "__main__":
    import json

    GOLDEN.write_text(json.dumps(golden_outputs(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")


def test_overflowed_flow_samples_warn_and_are_left_out_of_plots(manywell, monkeypatch) -> None:
    draw = manywell.flow.sample_and_log_prob

    def with_a_nan_row(n, generator=None):
        x, log_q = draw(n, generator=generator)
        x[0] = math.nan
        return x, log_q

    monkeypatch.setattr(manywell.flow, "sample_and_log_prob", with_a_nan_row)
    with pytest.warns(RuntimeWarning, match="1 of 20 flow samples are not finite"):
        x = manywell.sample(20)
    assert torch.isnan(x[0]).all() and torch.isfinite(x[1:]).all()
    assert 0 <= manywell.modes_covered(50) <= 8
    figure = manywell.plot_samples(50)
    assert all(map(math.isfinite, figure.axes[0].get_xlim()))
    _, log_w = manywell.importance_sample(20)
    assert log_w[0] == -math.inf
