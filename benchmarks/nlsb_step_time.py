"""One NLSB training step with the closed-form Hessian diagonal, against the same step with the
diagonal from autograd (one extra backward pass per dimension, what a generic potential needs)
and against a neural-SDE step (no regulariser, so no Hessian at all).

All three are the same module and data (a batch of ou1d or psde3d, 256 samples per time, 4
intervals, dt 0.02), timed in this one process on one thread, forward and backward and Adam step.
The paper's speed claim is the first ratio; the issue's target is NLSB ≤ 2.5 × neural SDE.

    python benchmarks/nlsb_step_time.py                    # ou1d, 10 timed steps per variant
    python benchmarks/nlsb_step_time.py --dataset psde3d --steps 5
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from zoo.nlsb import NLSBModule, SnapshotDataModule
from zoo.nlsb.potential import OTFlowPotential, PotentialDerivatives


class AutogradHessianPotential(OTFlowPotential):
    """The same Φ; ∇Φ and diag ∇²Φ by autograd (one grad pass, then one per dimension)."""

    def derivatives(self, x, t, *, hessian=True):
        with torch.enable_grad():
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0]).clone().requires_grad_(True)
            value = self(x, t)
            grad_x, grad_t = torch.autograd.grad(value.sum(), (x, t), create_graph=True)
            diagonal = None
            if hessian:
                columns = [
                    torch.autograd.grad(grad_x[:, i].sum(), x, create_graph=True)[0][:, i]
                    for i in range(x.shape[1])
                ]
                diagonal = torch.stack(columns, dim=-1)
        return PotentialDerivatives(value, grad_x, grad_t, diagonal)


def time_steps(model: NLSBModule, batch: dict, steps: int) -> float:
    """Median seconds of one optimisation step (after one warm-up step)."""
    model.log = model.log_dict = lambda *args, **kwargs: None
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = model.training_step(batch, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ou1d", choices=["ou1d", "psde3d", "branch2d"])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = SnapshotDataModule(dataset=args.dataset, batch_size=256)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    common = {"dim": data.dim, "times": list(data.times), "dataset": None, "dt": 0.02}
    regularised = {"alpha_L": 0.1, "alpha_R": 0.1}

    torch.manual_seed(0)
    nlsb = NLSBModule(**common, **regularised)
    autograd = NLSBModule(**common, **regularised)
    reference = AutogradHessianPotential(data.dim)
    reference.load_state_dict(nlsb.sde.potential.state_dict())
    autograd.sde.potential = reference
    autograd.sde.diffusion.load_state_dict(nlsb.sde.diffusion.state_dict())
    nsde = NLSBModule(**common)
    for model in (nlsb, autograd):
        model.log = model.log_dict = lambda *args, **kwargs: None
    torch.manual_seed(1)
    closed_loss = nlsb.training_step(batch, 0)
    torch.manual_seed(1)
    autograd_loss = autograd.training_step(batch, 0)
    torch.testing.assert_close(closed_loss, autograd_loss, rtol=1e-5, atol=1e-6)  # same work

    seconds = {
        "NLSB, closed-form Hessian": time_steps(nlsb, batch, args.steps),
        "NLSB, autograd Hessian": time_steps(autograd, batch, args.steps),
        "neural SDE (no regulariser)": time_steps(nsde, batch, args.steps),
    }
    for name, value in seconds.items():
        print(f"{name:30s} {value:.3f} s/step")
    closed, auto, plain = seconds.values()
    result = {
        "dataset": args.dataset,
        "seconds_per_step": seconds,
        "autograd_over_closed_form": auto / closed,
        "nlsb_over_neural_sde": closed / plain,
    }
    print(
        f"autograd / closed form: {auto / closed:.2f}x; NLSB / neural SDE: {closed / plain:.2f}x"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
