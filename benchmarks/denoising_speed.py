"""Training-step speed of our equivariant Transformer against torchmd-net's, on QM9.

One step is what denoising pre-training does per batch: noise the coordinates
(``σ = 0.04`` Å), forward through the encoder and the vector noise head, the MSE against the
noise, backward (and with ``--optimizer`` the AdamW step). Ours is
:class:`zoo.denoising.et.ET` + :class:`zoo.denoising.heads.NoiseHead`; theirs is
``torchmdnet.models.torchmd_et.TorchMD_ET`` + ``EquivariantVectorOutput``, the code the
denoising paper built on (``pip install 'zoo[bench]'``: torchmd-net 3.1.0 with warp-lang, whose
CPU neighbour-list kernel is compiled on first use and cached in ``~/.cache/warp``).

Both get the paper's configuration (``examples/ET-PCQM4MV2.yaml`` of the reference code):
width 256, 8 layers, 8 heads, 64 exp-normal radial functions (not trainable), cutoff 0-5 Å,
at most 32 neighbours, neighbour embedding, SiLU, distance influence ``both``. Before timing,
the parameter counts are compared module by module, theirs weights are copied into ours and
the two noise predictions compared, so both time the same function. Steps alternate between
the two models on the same QM9 batches, so a busy machine slows both alike; the median step
time gives molecules per second.

    python benchmarks/denoising_speed.py                      # paper size, 1 thread
    python benchmarks/denoising_speed.py --threads 2
    python benchmarks/denoising_speed.py --width 128 --layers 4
    python benchmarks/denoising_speed.py --width 32 --layers 1 --steps 2   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
import traceback
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version

import torch
import torch.nn.functional as F
from torch import nn

from zoo.denoising.et import ET
from zoo.denoising.heads import NoiseHead

SIGMA = 0.04  # Å, the paper's position noise


def paper_config(width: int, layers: int, heads: int, num_rbf: int) -> dict:
    """The options of our ET; theirs gets the same values under its own names."""
    return dict(
        embedding_dimension=width,
        num_layers=layers,
        num_heads=heads,
        num_rbf=num_rbf,
        rbf_type="expnorm",
        trainable_rbf=False,
        cutoff_lower=0.0,
        cutoff_upper=5.0,
        max_num_neighbors=32,
        max_z=100,
        neighbor_embedding=True,
        activation="silu",
        attn_activation="silu",
        distance_influence="both",
    )


class Ours(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        self.encoder = ET(**config)
        self.head = NoiseHead(config["embedding_dimension"], activation=config["activation"])

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        x, vec = self.encoder(z, pos, batch)
        return self.head(x, vec)


class Theirs(nn.Module):
    """torchmd-net's ET with the vector output head the reference code's noise head is."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        import warp

        if hasattr(warp, "LOG_WARNING"):  # no banner and no per-kernel load lines
            warp.config.log_level = warp.LOG_WARNING
        else:
            warp.config.quiet = True
        from torchmdnet.models.output_modules import EquivariantVectorOutput
        from torchmdnet.models.torchmd_et import TorchMD_ET

        self.encoder = TorchMD_ET(
            hidden_channels=config["embedding_dimension"],
            num_layers=config["num_layers"],
            num_rbf=config["num_rbf"],
            rbf_type=config["rbf_type"],
            trainable_rbf=config["trainable_rbf"],  # torchmd-net's default is True
            activation=config["activation"],
            attn_activation=config["attn_activation"],
            neighbor_embedding=config["neighbor_embedding"],
            num_heads=config["num_heads"],
            distance_influence=config["distance_influence"],
            cutoff_lower=config["cutoff_lower"],
            cutoff_upper=config["cutoff_upper"],
            max_z=config["max_z"],
            max_num_neighbors=config["max_num_neighbors"],
        )
        self.head = EquivariantVectorOutput(
            config["embedding_dimension"], activation=config["activation"]
        )

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        x, vec, z, pos, batch = self.encoder(z, pos, batch)
        return self.head.pre_reduce(x, vec, z, pos, batch)


# --- the comparison ------------------------------------------------------------------------------


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable parameters per module: the encoder's top-level children, then the head."""
    counts: dict[str, int] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        parts = name.split(".")
        key = parts[1] if parts[0] == "encoder" else parts[0]
        counts[key] = counts.get(key, 0) + parameter.numel()
    return counts


def print_parameter_counts(ours: dict[str, int], theirs: dict[str, int] | None) -> bool:
    total_ours = sum(ours.values())
    if theirs is None:
        print(f"parameters: ours {total_ours:,}")
        return True
    total_theirs = sum(theirs.values())
    same = ours == theirs
    verdict = "equal" if same else "DIFFER"
    print(f"parameters: ours {total_ours:,}  theirs {total_theirs:,}  ({verdict})")
    if not same:
        for key in sorted(set(ours) | set(theirs)):
            a, b = ours.get(key, 0), theirs.get(key, 0)
            flag = "" if a == b else f"   <- differs by {a - b:+,}"
            print(f"  {key:<20} ours {a:>10,}  theirs {b:>10,}{flag}")
    return same


@torch.no_grad()
def copy_weights(source: nn.Module, target: nn.Module) -> None:
    """Copies ``source``'s parameters into ``target``'s, in registration order (the two
    implementations register the same layers in the same order)."""
    pairs = list(zip(source.named_parameters(), target.named_parameters(), strict=True))
    for (name_s, p_s), (name_t, p_t) in pairs:
        if p_s.shape != p_t.shape:
            raise ValueError(
                f"copy_weights: {name_s} {tuple(p_s.shape)} vs {name_t} {tuple(p_t.shape)}"
            )
        p_t.copy_(p_s)


def load_batches(args: argparse.Namespace) -> list:
    from zoo.denoising import QM9DataModule

    if args.limit is None:
        sizes = dict(train_size=2000, val_size=500, test_size=2000)
    else:  # a smoke run on the first molecules only
        sizes = dict(
            train_size=8, val_size=2, test_size=2, pretrain_val_size=2, pretrain_test_size=2
        )
    data = QM9DataModule(
        target=None,
        batch_size=args.batch_size,
        cache_dir=args.cache_dir,
        limit=args.limit,
        **sizes,
    )
    data.prepare_data()
    data.setup("fit")
    torch.manual_seed(args.seed)
    batches = []
    for batch in data.train_dataloader():
        if batch.num_graphs < args.batch_size:
            break
        batches.append(batch)
        if len(batches) == args.batches:
            break
    if not batches:
        raise SystemExit(f"denoising_speed: no full batch of {args.batch_size} molecules")
    return batches


def make_step(
    model: nn.Module, optimizer: torch.optim.Optimizer | None
) -> Callable[[tuple], float]:
    def step(inputs: tuple) -> float:
        z, pos, batch, eps = inputs
        start = time.perf_counter()
        loss = F.mse_loss(model(z, pos + SIGMA * eps, batch), eps)
        model.zero_grad(set_to_none=True)
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        return time.perf_counter() - start

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=256, help="embedding dimension F")
    parser.add_argument("--layers", type=int, default=8, help="attention layers")
    parser.add_argument("--heads", type=int, default=8, help="attention heads")
    parser.add_argument("--num-rbf", type=int, default=64, help="radial basis functions")
    parser.add_argument("--batch-size", type=int, default=32, help="molecules per batch")
    parser.add_argument("--batches", type=int, default=4, help="distinct QM9 batches, cycled")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument(
        "--optimizer", action="store_true", help="include the AdamW step (lr 4e-4) in each step"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None, help="QM9 cache (default: zoo's)")
    parser.add_argument(
        "--limit", type=int, default=None, help="only the first LIMIT molecules (smoke runs)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    versions = {"torch": torch.__version__}
    for package in ("torchmd-net", "warp-lang"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"config: width {args.width}, layers {args.layers}, heads {args.heads}, "
        f"rbf {args.num_rbf} expnorm, cutoff 0-5 Å, max 32 neighbours, batch {args.batch_size}, "
        f"threads {torch.get_num_threads()}, optimizer {'AdamW' if args.optimizer else 'none'}"
    )

    batches = load_batches(args)
    generator = torch.Generator().manual_seed(args.seed)
    inputs = [
        (b.z, b.pos, b.batch, torch.randn(b.pos.shape, generator=generator)) for b in batches
    ]
    atoms = [int(b.z.numel()) for b in batches]
    print(f"data: {len(batches)} QM9 batches of {args.batch_size} molecules, {atoms} atoms")

    config = paper_config(args.width, args.layers, args.heads, args.num_rbf)
    torch.manual_seed(args.seed)
    models: dict[str, nn.Module] = {"ours": Ours(config)}
    try:
        models["theirs"] = Theirs(config)
    except Exception as error:  # ImportError, or warp failing to initialise
        print(
            "theirs: torchmd-net unavailable, timing ours only "
            f"({type(error).__name__}: {error}); pip install 'zoo[bench]'"
        )

    counts = {name: parameter_counts(model) for name, model in models.items()}
    print_parameter_counts(counts["ours"], counts.get("theirs"))

    if "theirs" in models:
        start = time.perf_counter()
        z, pos, batch, _ = inputs[0]
        with torch.no_grad():
            reference = models["theirs"](z, pos, batch)  # compiles the warp kernel once
        first_call = time.perf_counter() - start
        try:
            copy_weights(models["theirs"], models["ours"])
            with torch.no_grad():
                ours = models["ours"](z, pos, batch)
            difference = (ours - reference).abs().max().item()
            scale = reference.abs().max().item()
            verdict = "same function" if difference <= 1e-4 * scale + 1e-6 else "MISMATCH"
            print(
                f"parity: theirs weights in ours, max |Δ noise| = {difference:.2e} "
                f"(max |noise| {scale:.2e}): {verdict}"
            )
        except Exception:
            print("parity: could not compare\n" + traceback.format_exc())
        print(f"theirs: first call {first_call:.1f} s (warp kernel compile or cache load)")

    steps = {}
    for name, model in models.items():
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4) if args.optimizer else None
        steps[name] = make_step(model, optimizer)

    for i in range(args.warmup):
        for step in steps.values():
            step(inputs[i % len(inputs)])
    times: dict[str, list[float]] = {name: [] for name in steps}
    for i in range(args.steps):
        for name, step in steps.items():  # alternate, so contention hits both alike
            times[name].append(step(inputs[i % len(inputs)]))

    rate = {}
    for name, seconds in times.items():
        median = statistics.median(seconds)
        rate[name] = args.batch_size / median
        print(
            f"{name:<6}: median step {1e3 * median:8.1f} ms "
            f"(min {1e3 * min(seconds):.1f}, max {1e3 * max(seconds):.1f}) "
            f"-> {rate[name]:8.1f} molecules/s"
        )
    if "theirs" in rate:
        print(f"ratio ours/theirs: {rate['ours'] / rate['theirs']:.3f} (molecules/s)")
    else:
        print("ratio ours/theirs: n/a (torchmd-net unavailable)")


if __name__ == "__main__":
    main()
