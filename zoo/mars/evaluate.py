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

__all__ = ["METHODS", "evaluate_methods"]

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
    progress = tqdm(total=len(methods) * len(seeds) * len(tasks), desc="meta-test", leave=False)
    for method in methods:
        for seed in seeds:
            learned = None
            if method == "learned-gp":
                xs = torch.stack([norm.x(t.x) for t in datamodule.train_tasks])
                ys = torch.stack([norm.y(t.y) for t in datamodule.train_tasks])
                learned = LearnedGP(xs.shape[-1]).fit(xs, ys, seed=seed)
            scores = []
            for task in tasks:
                means, stds = _predict(method, model, task, norm, seed, learned, svgd_steps)
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
    task: Any,
    norm: Any,
    seed: int,
    learned: LearnedGP | None,
    svgd_steps: int | None,
) -> tuple[torch.Tensor, torch.Tensor | float]:
    """Mixture components (means ``(L, m)``, stds) at the query points, raw units."""
    if method in ("mars", "vanilla-bnn"):
        prior = "learned" if method == "mars" else "normal"
        post = model.fit_task(task.x, task.y, steps=svgd_steps, seed=seed, prior=prior)
        means = post.sample(task.x_query)
        return means, float(post.inner.noise * norm.y_std)
    x, y, xq = norm.x(task.x), norm.y(task.y), norm.x(task.x_query)
    if method == "vanilla-gp":
        mean, std = vanilla_gp(x, y, xq)
    elif method == "learned-gp":
        mean, std = learned.predict(x, y, xq)
    else:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    return (mean * norm.y_std + norm.y_mean)[None], (std * norm.y_std)[None]
