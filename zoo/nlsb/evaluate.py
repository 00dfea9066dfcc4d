"""The paper's evaluation on the synthetic sets, with the noise floor in the same table.

- MDD (marginal distribution discrepancy): exact W1 between model samples and reference
  samples of a marginal. *One-step* starts each interval from the observed test samples at
  t_{k-1}; *all-step* starts once from the base sample and runs through every time.
- CDD (conditional distribution discrepancy): for each of ``n_starts`` starting points at
  t_{k-1}, W1 between ``n_repeat`` model paths and ``n_repeat`` true paths at a later time,
  averaged over the starting points. It needs the true SDE, so only the synthetic sets have it.
- Noise floor: the same distance between two independent exact (or reference-solver) samples
  of the true law, at the same sample sizes; a model cannot be told apart from the truth below
  it.

Evaluation points: every observed time (held-out ones included) and every interval mid-point.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from zoo._format import number, table
from zoo.nlsb.metrics import wasserstein1
from zoo.nlsb.sde import euler_maruyama

__all__ = ["Report", "evaluate", "variant"]


class Report(list):
    """The rows of :func:`evaluate` (dicts), printed as a table."""

    columns = ("metric", "time", "kind", "value", "floor", "paper")

    def __str__(self) -> str:
        rows = [[number(row.get(c)) for c in self.columns] for row in self]
        return table(list(self.columns), rows)

    __repr__ = __str__


def variant(model: Any) -> str:
    """``NLSB``, ``neural SDE`` (no regulariser) or ``ODE`` (no diffusion)."""
    if model.sde.diffusion.is_zero:
        return "ODE"
    return "NLSB" if model.regularize else "neural SDE"


@torch.no_grad()
def evaluate(
    model: Any,
    datamodule: Any = None,
    *,
    split: str = "test",
    n_starts: int = 200,
    n_repeat: int = 100,
    seed: int = 0,
) -> Report:
    """MDD (one-step and all-step) and CDD at the observed times and interval mid-points.

    Args:
        model: An :class:`~zoo.nlsb.module.NLSBModule`.
        datamodule: A :class:`~zoo.nlsb.data.SnapshotDataModule`; by default the data of the
            recipe in the model's export folder (or its dataset with its held-out times).
        split: ``test`` (1000 samples per time) or ``val``.
        n_starts: Starting points of the CDD.
        n_repeat: Paths per starting point in the CDD.
        seed: Seed of every draw.

    Returns:
        A :class:`Report`: one row per (metric, time) with ``value``, its noise ``floor`` and
        ``name``/``value``/``dataset`` for ``zoo export``, then the means the targets use.
    """
    datamodule = datamodule or _default_datamodule(model)
    datamodule.setup("test")
    process = datamodule.process
    xs = [x.to(model.base.device) for x in datamodule.splits[split]]
    times = model.times
    held_out = set(times) - set(model.train_times)
    dt = float(model.hparams.dt)
    generator = torch.Generator(device=model.base.device).manual_seed(seed)
    reference = torch.Generator().manual_seed(seed + 1)
    label = f"{datamodule.hparams.dataset}, {len(xs[1])} {split} samples per time"

    def simulate(x0: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
        z = euler_maruyama(
            model.sde, model._to_model(x0), t0, t1, dt, regularize=False, generator=generator
        ).x
        return model._to_data(z)

    def exact(x0: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
        return process.sample_at(x0.cpu(), t0, t1, reference).to(x0)

    rows: list[dict[str, Any]] = []

    def add(metric: str, t: float, kind: str, value: float, floor: float | None) -> None:
        where = f"t = {t:g}" + (" (held out)" if t in held_out else "")
        rows.append(
            {
                "metric": metric,
                "time": t,
                "kind": kind + (", held out" if t in held_out else ""),
                "value": value,
                "floor": floor,
                "paper": None,
                "name": f"{metric} {kind} {where}",
                "dataset": label,
            }
        )

    # the floor at an observed time: a fresh exact sample against the observed one
    floors = [None] + [
        wasserstein1(exact(xs[k - 1], times[k - 1], times[k]), xs[k]) if process else None
        for k in range(1, len(times))
    ]

    # MDD, all-step: from the base sample through every time
    x = xs[0]
    for k in range(1, len(times)):
        x = simulate(x, times[k - 1], times[k])
        add("MDD", times[k], "all-step", wasserstein1(x, xs[k]), floors[k])

    # MDD one-step, at observed times and mid-points
    for k in range(1, len(times)):
        t0, t1 = times[k - 1], times[k]
        mid = 0.5 * (t0 + t1)
        predicted = simulate(xs[k - 1], t0, t1)
        add("MDD", t1, "one-step", wasserstein1(predicted, xs[k]), floors[k])
        if process is None:
            continue
        truth = exact(xs[k - 1], t0, mid)
        floor = wasserstein1(exact(xs[k - 1], t0, mid), truth)
        predicted = simulate(xs[k - 1], t0, mid)
        add("MDD", mid, "one-step, mid-point", wasserstein1(predicted, truth), floor)

    # CDD: n_repeat model and true paths from each of n_starts points
    if process is not None:
        for k in range(1, len(times)):
            t0, t1 = times[k - 1], times[k]
            mid = 0.5 * (t0 + t1)
            starts = xs[k - 1][:n_starts].repeat_interleave(n_repeat, dim=0)
            model_mid = simulate(starts, t0, mid)
            model_end = simulate(model_mid, mid, t1)
            true = [exact(starts, t0, mid) for _ in range(2)]
            true_end = [exact(m, mid, t1) for m in true]
            for t, predicted, (a, b), kind in (
                (mid, model_mid, true, "mid-point"),
                (t1, model_end, true_end, "observed"),
            ):
                value = _conditional_w1(predicted, a, n_repeat)
                add("CDD", t, kind, value, _conditional_w1(b, a, n_repeat))

    rows += _summary(rows, label)
    return Report(rows)


def _conditional_w1(x: torch.Tensor, y: torch.Tensor, n_repeat: int) -> float:
    """Mean over starting points of W1 between their ``n_repeat`` paths in x and in y."""
    xs, ys = x.split(n_repeat), y.split(n_repeat)
    return sum(wasserstein1(a, b) for a, b in zip(xs, ys, strict=True)) / len(xs)


def _summary(rows: Sequence[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    """The means the reproduction targets are stated in."""
    groups = {
        "MDD one-step mean, observed times": lambda r: (
            r["metric"] == "MDD" and r["kind"] == "one-step"
        ),
        "CDD mean, mid-points": lambda r: r["metric"] == "CDD" and r["kind"] == "mid-point",
        "CDD mean, observed times": lambda r: r["metric"] == "CDD" and r["kind"] == "observed",
    }
    out = []
    for name, keep in groups.items():
        chosen = [r for r in rows if keep(r)]
        if not chosen:
            continue
        floors = [r["floor"] for r in chosen]
        floor = None if None in floors else sum(floors) / len(floors)
        out.append(
            {
                "metric": name,
                "time": None,
                "kind": "mean",
                "value": sum(r["value"] for r in chosen) / len(chosen),
                "floor": floor,
                "paper": None,
                "name": name,
                "dataset": label,
            }
        )
    return out


def _default_datamodule(model: Any) -> Any:
    """The data of the export folder's recipe, or else the model's dataset at its defaults."""
    from zoo.nlsb.data import SnapshotDataModule
    from zoo.recipes import datamodule_from_recipe, recipe_of

    origin = getattr(model, "zoo_origin", None)
    if origin is not None and origin.path is not None:
        return datamodule_from_recipe(recipe_of(model))
    dataset = model.hparams.dataset
    if dataset is None or dataset == "eb":
        raise ValueError(
            "evaluate() needs a datamodule for this model: pass "
            "SnapshotDataModule(dataset='eb', data_dir=...) with the data it was trained on"
        )
    return SnapshotDataModule(dataset=dataset, holdout=list(model.hparams.holdout or []))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m zoo.nlsb.evaluate CHECKPOINT_OR_FOLDER [--json FILE]``: the report of a
    training checkpoint (``.ckpt``) or an export folder, on the data of its recipe."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m zoo.nlsb.evaluate", description=main.__doc__)
    parser.add_argument("model", type=Path, help="a .ckpt written by zoo fit, or an export folder")
    parser.add_argument("--n-starts", type=int, default=200)
    parser.add_argument("--n-repeat", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    if args.model.suffix == ".ckpt":
        from zoo.export import load_checkpoint
        from zoo.recipes import datamodule_from_recipe

        model, record = load_checkpoint(args.model)
        datamodule = datamodule_from_recipe(record["recipe"]) if record.get("recipe") else None
    else:
        import zoo

        model, datamodule = zoo.load(args.model), None
    model.eval()
    report = evaluate(model, datamodule, n_starts=args.n_starts, n_repeat=args.n_repeat)
    print(f"{variant(model)} ({args.model})")
    print(report)
    if args.json:
        args.json.write_text(json.dumps(list(report), indent=1) + "\n")


if __name__ == "__main__":
    main()
