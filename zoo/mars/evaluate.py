"""Meta-test evaluation of MARS and its baselines with one metric code.

For each method and seed: fit every evaluation task on its context points, score the query
points (mixture NLL, RMSE of the mixture mean, calibration error; raw units), average over the
tasks; then report the mean and standard deviation over seeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from zoo.mars.baselines import LearnedGP, vanilla_gp
from zoo.mars.metrics import calibration_error, mixture_nll, rmse

if TYPE_CHECKING:
    from zoo.mars.datamodule import MarsDataModule
    from zoo.mars.model import MARS

__all__ = ["METHODS", "evaluate_methods", "score_alignment"]

METHODS = ("mars", "vanilla-bnn", "vanilla-gp", "learned-gp")


def evaluate_methods(
    model: MARS,
    datamodule: MarsDataModule,
    *,
    split: str = "test",
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    methods: tuple[str, ...] = METHODS,
    n_tasks: int | None = None,
    svgd_steps: int | None = None,
) -> list[dict[str, Any]]:
    """One row per method and metric: ``{"method", "name", "value", "std", "dataset"}``."""
    from tqdm.auto import tqdm

    datamodule.setup()
    tasks = datamodule.tasks(split)[:n_tasks]
    norm = datamodule.normalization
    per_seed: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    progress = tqdm(total=len(methods) * len(seeds), desc=f"meta-{split}", unit="method-seed")
    for method in methods:
        for seed in seeds:
            learned = None
            if method == "learned-gp":
                xs = torch.stack([norm.x(t.x) for t in datamodule.train_tasks])
                ys = torch.stack([norm.y(t.y) for t in datamodule.train_tasks])
                learned = LearnedGP(xs.shape[-1]).fit(xs, ys, seed=seed)
            scores = []
            for task, (means, stds) in zip(
                tasks, _predict(method, model, tasks, norm, seed, learned, svgd_steps), strict=True
            ):
                y = task.y_query
                scores.append(
                    torch.tensor(
                        [
                            mixture_nll(y, means, stds),
                            rmse(y, means),
                            calibration_error(y, means, stds),
                        ]
                    )
                )
            progress.update()
            per_seed[method].append(torch.stack(scores).mean(0))
    progress.close()
    rows = []
    where = f"{datamodule.hparams.env}, {len(tasks)} meta-{split} tasks, {len(seeds)} seeds"
    for method, values in per_seed.items():
        stacked = torch.stack(values)  # (seeds, 3)
        for i, name in enumerate(("NLL", "RMSE", "calibration error")):
            rows.append(
                {
                    "method": method,
                    "name": name,
                    "value": float(stacked[:, i].mean()),
                    "std": float(stacked[:, i].std()) if len(seeds) > 1 else 0.0,
                    "dataset": where,
                }
            )
    return rows


def _predict(
    method: str,
    model: MARS,
    tasks: list[Any],
    norm: Any,
    seed: int,
    learned: LearnedGP | None,
    svgd_steps: int | None,
) -> list[tuple[torch.Tensor, torch.Tensor | float]]:
    """Per task, the mixture components (means ``(L, m)``, stds) at its query points, raw
    units. fSVGD runs on all tasks at once."""
    if method in ("mars", "vanilla-bnn"):
        prior = "learned" if method == "mars" else "normal"
        posteriors = model.fit_tasks(
            [(t.x, t.y) for t in tasks], steps=svgd_steps, seed=seed, prior=prior
        )
        return [
            (post.sample(t.x_query), float(post.inner.noise * norm.y_std))
            for post, t in zip(posteriors, tasks, strict=True)
        ]
    if method not in ("vanilla-gp", "learned-gp"):
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    out = []
    for task in tasks:
        x, y, xq = norm.x(task.x), norm.y(task.y), norm.x(task.x_query)
        mean, std = vanilla_gp(x, y, xq) if method == "vanilla-gp" else learned.predict(x, y, xq)
        out.append(((mean * norm.y_std + norm.y_mean)[None], (std * norm.y_std)[None]))
    return out


def score_alignment(model: MARS, datamodule: MarsDataModule, k: int = 8) -> torch.Tensor:
    """Cosine similarity between the learned and the exact score on ``gp-shift``.

    The measurement sets are the meta-validation tasks' query points, ``k`` at a time, with
    their noisy observations: draws of the process's Gaussian marginals, whose score is known
    (:func:`~zoo.mars.data.gp_shift_score`). Both scores are taken in normalized units.

    Returns:
        One cosine per measurement set.
    """
    from zoo.mars.data import gp_shift_score

    if datamodule.hparams.env != "gp-shift":
        raise ValueError(
            f"score_alignment needs the gp-shift environment, whose score is known; "
            f"got {datamodule.hparams.env!r}"
        )
    datamodule.setup()
    norm = datamodule.normalization
    cosines = []
    for task in datamodule.tasks("val"):
        usable = len(task.y_query) // k * k
        x = task.x_query[:usable, 0].view(-1, k)
        y = task.y_query[:usable].view(-1, k)
        exact = gp_shift_score(x, y, datamodule.env.noise) * norm.y_std  # chain rule
        with torch.no_grad():
            learned = model(norm.x(x[..., None]).float(), norm.y(y).float()).double()
        cosines.append(torch.nn.functional.cosine_similarity(learned, exact, dim=-1))
    return torch.cat(cosines)


def main(argv: list[str] | None = None) -> None:
    """``python -m zoo.mars.evaluate --ckpt CKPT``: the meta-test table of a training run."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Evaluate MARS and its baselines.")
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by `zoo fit`")
    parser.add_argument("--env", default="sinusoid")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n-tasks", type=int, default=None)
    parser.add_argument("--svgd-steps", type=int, default=None)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override fSVGD init args, such as noise=0.3 clip=1.0",
    )
    args = parser.parse_args(argv)

    from zoo.export import load_checkpoint
    from zoo.mars.datamodule import MarsDataModule

    torch.set_num_threads(1)
    trained, _ = load_checkpoint(args.ckpt)
    hparams = dict(trained.hparams)
    for key, value in (item.split("=", 1) for item in args.set):
        if key not in hparams:
            parser.error(f"--set {key}: MARS has no init arg {key!r}; known: {sorted(hparams)}")
        kind = type(hparams[key]) if hparams[key] is not None else float
        hparams[key] = kind(value)
    model = type(trained)(**hparams)
    model.load_state_dict(trained.state_dict())
    model.eval()
    data = MarsDataModule(env=args.env)
    rows = evaluate_methods(
        model,
        data,
        split=args.split,
        seeds=tuple(range(args.seeds)),
        methods=tuple(args.methods),
        n_tasks=args.n_tasks,
        svgd_steps=args.svgd_steps,
    )
    for row in rows:
        print(f"{row['method']:12} {row['name']:18} {row['value']:.3f} ± {row['std']:.3f}")
    print(json.dumps({"overrides": args.set, "rows": rows}))


if __name__ == "__main__":
    main()
