"""Multilevel kernel operator (closed form) against a Fourier neural operator on ``varcoef``.

Both see the same ``n`` noisy training pairs (M = 128) and are scored on the same 1000
noise-free test functions by the pooled relative L2 error ``‖Û - U‖_F / ‖U‖_F``. Only the fits
are timed, in this one process: data in memory, no imports or Trainer start-up.

The FNO is the field's reference implementation (``neuraloperator``, ``pip install
'zoo[baselines]'``): 16 modes, width 16, 3 layers, AdamW (lr 2e-3, weight decay 1e-4) with a
cosine schedule, batch 16, standardized inputs and outputs.

    python benchmarks/kernel_operator_vs_fno.py            # n = 1024, FNO 4000 steps
    python benchmarks/kernel_operator_vs_fno.py --n 256 --steps 20   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from zoo.kernel_operator import KernelOperator, LinearOperatorDataModule


def relative_l2(prediction: torch.Tensor, target: torch.Tensor) -> float:
    return float((prediction - target).norm() / target.norm())


def fit_fno(f: torch.Tensor, u: torch.Tensor, steps: int, seed: int) -> torch.nn.Module:
    """Trains the FNO baseline; returns a callable on raw grids."""
    from neuralop.models import FNO

    torch.manual_seed(seed)
    f_mean, f_std, u_mean, u_std = f.mean(), f.std(), u.mean(), u.std()
    x = ((f - f_mean) / f_std).float().unsqueeze(1)  # (n, 1, M)
    y = ((u - u_mean) / u_std).float().unsqueeze(1)
    model = FNO(n_modes=(16,), in_channels=1, out_channels=1, hidden_channels=16, n_layers=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = torch.randint(0, len(x), (16,), generator=generator)
        loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()

    def predict(grid: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = model(((grid - f_mean) / f_std).float().unsqueeze(1)).squeeze(1)
        return out.double() * u_std + u_mean

    return predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1024, help="training pairs")
    parser.add_argument("--steps", type=int, default=4000, help="FNO optimizer steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = LinearOperatorDataModule(task="varcoef", n_train=args.n, n_test=1000, seed=args.seed)
    f, u = data.split("train").tensors
    f_test, u_test = data.split("test").tensors

    start = time.perf_counter()
    kernel = KernelOperator(n_in=128, n_out=128).fit_closed_form(f, u)
    kernel_seconds = time.perf_counter() - start
    with torch.no_grad():
        kernel_error = relative_l2(kernel(f_test), u_test)

    start = time.perf_counter()
    fno = fit_fno(f, u, args.steps, args.seed)
    fno_seconds = time.perf_counter() - start
    fno_error = relative_l2(fno(f_test), u_test)

    result = {
        "n": args.n,
        "fno_steps": args.steps,
        "threads": args.threads,
        "kernel": {"rel_l2": kernel_error, "seconds": kernel_seconds},
        "fno": {"rel_l2": fno_error, "seconds": fno_seconds},
        "error_ratio_kernel_over_fno": kernel_error / fno_error,
        "time_ratio_fno_over_kernel": fno_seconds / kernel_seconds,
    }
    print(json.dumps(result, indent=2))
    print(
        f"kernel operator: rel L2 {kernel_error:.4%} in {kernel_seconds:.2f} s; "
        f"FNO ({args.steps} steps): {fno_error:.4%} in {fno_seconds:.1f} s; "
        f"error ratio {kernel_error / fno_error:.2f}, FNO takes "
        f"{fno_seconds / kernel_seconds:.0f}x longer"
    )


if __name__ == "__main__":
    main()
