"""Training through LightningCLI: ``zoo fit --config recipes/<entry>/<task>.yaml``.

Scale-out is Lightning's own: a recipe sets ``trainer.devices``, ``trainer.num_nodes`` and
``trainer.strategy: ddp``, and the same command runs under ``torchrun`` or SLURM ``srun``.

Every run gets a :class:`Provenance` callback, which stores what ``zoo export`` needs in each
checkpoint: the class path, the resolved recipe, the seed, a data fingerprint, the code commit
and the last logged metrics.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI

from zoo.checkpoint import class_path_of, git_commit

__all__ = [
    "Provenance",
    "TorchThreads",
    "ZooCLI",
    "data_fingerprint",
    "fit_in_subprocess",
    "run_cli",
]


def data_fingerprint(datamodule: pl.LightningDataModule | None) -> str | None:
    """A fingerprint of the training data.

    A datamodule that generates or converts its data defines ``fingerprint()`` (a hash of the
    arrays it trains on); otherwise the hash of its JSON hyperparameters stands in.
    """
    if datamodule is None:
        return None
    fingerprint = getattr(datamodule, "fingerprint", None)
    if callable(fingerprint):
        return str(fingerprint())
    hparams = json.dumps(dict(datamodule.hparams), sort_keys=True, default=repr)
    text = f"{class_path_of(datamodule)}:{hparams}"
    return "hparams-sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


class Provenance(pl.Callback):
    """Writes ``checkpoint["zoo"]``: what an export folder's ``zoo.json`` records.

    Args:
        recipe: The resolved config (YAML text) of the run, set by :class:`ZooCLI`.
        seed: The run's seed.
    """

    def __init__(self, recipe: str | None = None, seed: int | None = None) -> None:
        self.recipe = recipe
        self.seed = seed
        self._commit: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._commit = git_commit()

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        metrics = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if getattr(value, "numel", lambda: 1)() == 1
        }
        checkpoint["zoo"] = {
            "class_path": class_path_of(pl_module),
            "recipe": self.recipe,
            "seed": self.seed,
            "data_fingerprint": data_fingerprint(trainer.datamodule),
            "code_commit": self._commit,
            "global_step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "metrics": metrics,
        }


class TorchThreads(pl.Callback):
    """Sets torch's intra-op thread count when a run starts (``trainer.callbacks`` in a recipe).

    Small models on a few shared CPU cores train faster with one thread per process than with
    many oversubscribed ones; under DDP every process gets ``threads``.

    Args:
        threads: Threads per process.
    """

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"TorchThreads needs threads >= 1, got {threads}")
        self.threads = threads

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        import torch

        torch.set_num_threads(self.threads)


class ZooCLI(LightningCLI):
    """LightningCLI for any of the zoo's modules and datamodules (given by ``class_path``)."""

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        self.provenance = Provenance()
        super().__init__(
            model_class=None,
            datamodule_class=None,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults={"callbacks": [self.provenance]},
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"prog": "zoo", "exit_on_error": False},
            args=args,
            **kwargs,
        )

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        parser = self._parser(self.subcommand)
        self.provenance.recipe = parser.dump(config, skip_none=False)
        seed = config.get("seed_everything")
        self.provenance.seed = None if isinstance(seed, bool) else seed


def run_cli(args: list[str] | None = None) -> None:
    """Runs ``fit``, ``validate``, ``test`` or ``predict`` with LightningCLI's own parser.

    Args:
        args: The command line after ``zoo``; ``None`` reads ``sys.argv``.
    """
    ZooCLI(args=args)


def fit_in_subprocess(
    recipe: str | os.PathLike[str],
    out: str | os.PathLike[str],
    name: str,
    overrides: Sequence[str] = (),
    *,
    callbacks: Sequence[Mapping[str, Any]] = (),
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[Path, float]:
    """``zoo fit --config RECIPE`` in a subprocess on one thread: one run of a comparison.

    The run writes only its final checkpoint, ``OUT/NAME/NAME.ckpt`` (the given callbacks,
    then a ``ModelCheckpoint``, replace the recipe's), with no logger and no progress bar;
    ``overrides`` come last, so they win.

    Returns:
        The checkpoint and the run's wall time in seconds.

    Raises:
        RuntimeError: The run failed; the message ends with its stderr.
    """
    folder = Path(out) / name
    checkpoint = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        "init_args": {"dirpath": str(folder), "filename": name},
    }
    command = [
        sys.executable, "-m", "zoo", "fit", "--config", str(recipe),
        "--trainer.default_root_dir", str(folder),
        "--trainer.callbacks", json.dumps([*callbacks, checkpoint]),
        "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false",
        *overrides,
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    run = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{run.stderr[-3000:]}")
    return folder / f"{name}.ckpt", time.perf_counter() - start
