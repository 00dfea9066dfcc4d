"""The paper's claim at CPU scale: fine-tuning from the denoising-pretrained encoder against
training from scratch, same labels, same steps, both with Noisy Nodes, several seeds.

    python scripts/denoising_pretrain_vs_scratch.py            # 2 seeds, 2 runs at a time
    python scripts/denoising_pretrain_vs_scratch.py --seeds 0 1 2 --jobs 1

Each run is ``zoo fit --config recipes/denoising/finetune_qm9.yaml`` with ``--seed_everything``
and ``--model.init_from`` set (``null`` for scratch); afterwards every checkpoint is scored on
the recipe's test split. Writes ``OUT/results.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "denoising" / "finetune_qm9.yaml"
STARTS = {"pretrained": "denoising.qm9-pretrain", "scratch": "null"}


def fit(start: str, seed: int, out: Path, extra: list[str]) -> tuple[Path, float]:
    """One fine-tuning run in a subprocess; returns its checkpoint and wall time."""
    from zoo.training import fit_in_subprocess

    overrides = ["--seed_everything", str(seed), "--model.init_from", STARTS[start], *extra]
    return fit_in_subprocess(RECIPE, out, f"{start}-seed{seed}", overrides, cwd=REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "denoising" / "compare")
    parser.add_argument("overrides", nargs="*", help="extra `zoo fit` options for every run")
    args = parser.parse_args()

    import torch

    from zoo.export import load_checkpoint
    from zoo.recipes import datamodule_from_recipe

    torch.set_num_threads(1)
    runs = [(start, seed) for seed in args.seeds for start in STARTS]
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(lambda r: fit(*r, args.out, args.overrides), runs))

    data = datamodule_from_recipe(RECIPE)
    results = []
    for (start, seed), (ckpt, seconds) in zip(runs, done, strict=True):
        model, _ = load_checkpoint(ckpt)
        (val,) = model.eval().evaluate(data, split="val")
        (row,) = model.evaluate(data)
        results.append({"start": start, "seed": seed, "seconds": seconds, "val": val, **row})
        print(
            f"{start:10} seed {seed}: {val['name']} {val['value']:.1f}, "
            f"{row['name']} {row['value']:.1f} {row['unit']}"
        )

    means = {
        start: statistics.mean(r["value"] for r in results if r["start"] == start)
        for start in STARTS
    }
    gain = 1 - means["pretrained"] / means["scratch"]
    unit = results[0]["unit"]
    print(f"\n| start | {' | '.join(f'seed {s}' for s in args.seeds)} | mean |")
    print(f"|---|{'---|' * (len(args.seeds) + 1)}")
    for start in STARTS:
        values = [f"{r['value']:.1f}" for r in results if r["start"] == start]
        print(f"| {start} | {' | '.join(values)} | {means[start]:.1f} {unit} |")
    print(f"\npre-trained mean test MAE is {100 * gain:.1f}% below scratch")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"runs": results, "means": means, "relative_gain": gain, "overrides": args.overrides}
    (args.out / "results.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
