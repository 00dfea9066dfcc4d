"""Test helpers shared by the entries' test suites, so each test reads as a specification.

- :func:`assert_export_roundtrip`: export, reload strictly, identical weights and outputs.
- :func:`assert_all_parameters_get_gradient`: no parameter is left out of the graph.
- :func:`assert_finite`: every tensor in an output is finite.
- :func:`temporary_entry`: register an entry for the length of a test.
- :class:`ToyRegressor`, :class:`ToyDataModule`: a tiny module and data for exercising the core
  (export, Hub, CLI, DDP). They are fixtures, not entries of the zoo.
- :class:`SaveRankWeights`: each DDP rank writes its final weights, to compare ranks.
- :func:`run_zoo`: the ``zoo`` command in a subprocess (DDP re-launches its own command
  line, so training runs through the CLI never run inside the test process).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from zoo import registry
from zoo.checkpoint import (
    EXPORT_FILES,
    PINNED_FILES,
    call_module,
    load_folder,
    save_pretrained,
    sha256,
)

__all__ = [
    "SaveRankWeights",
    "ToyDataModule",
    "ToyRegressor",
    "assert_all_parameters_get_gradient",
    "assert_export_roundtrip",
    "assert_finite",
    "file_hashes",
    "run_zoo",
    "temporary_entry",
]


def assert_export_roundtrip(
    model: nn.Module, folder: str | os.PathLike[str], *, name: str = "test.roundtrip"
) -> nn.Module:
    """Exports ``model`` to ``folder``, reloads it strictly and checks that nothing changed.

    The reloaded module must have the same class, identical tensors, and give identical outputs
    on the module's ``example_input_array``.

    Returns:
        The reloaded module.
    """
    folder = Path(folder)
    save_pretrained(model, folder, name=name)
    assert sorted(p.name for p in folder.iterdir()) == sorted(EXPORT_FILES), (
        f"{folder} should hold exactly {EXPORT_FILES}"
    )
    loaded = load_folder(folder)
    assert type(loaded) is type(model), f"reloaded a {type(loaded)}, not a {type(model)}"
    expected = model.state_dict()
    actual = loaded.state_dict()
    assert expected.keys() == actual.keys(), "the reloaded module has other tensors"
    for key, tensor in expected.items():
        assert torch.equal(tensor, actual[key]), f"tensor {key!r} changed in the round trip"
    inputs = getattr(model, "example_input_array", None)
    if inputs is not None:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            before = call_module(model, inputs)
            torch.manual_seed(0)
            after = call_module(loaded, inputs)
        torch.testing.assert_close(after, before, rtol=0, atol=0)
    return loaded


def assert_all_parameters_get_gradient(
    model: nn.Module,
    loss: torch.Tensor | None = None,
    *,
    may_be_zero: Iterable[str] = (),
) -> None:
    """Checks that every trainable parameter gets a finite, non-zero gradient.

    Args:
        model: The module.
        loss: A scalar built from the module's outputs; defaults to the sum of the outputs on
            ``example_input_array``.
        may_be_zero: ``fnmatch`` patterns of parameter names whose gradient may be exactly zero
            (zero-initialised output layers, for instance); they must still get one.
    """
    model.zero_grad(set_to_none=True)
    if loss is None:
        loss = sum(t.sum() for t in _tensors(call_module(model, model.example_input_array)))
    loss.backward()
    patterns = list(may_be_zero)
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        assert parameter.grad is not None, f"parameter {name!r} gets no gradient"
        assert torch.isfinite(parameter.grad).all(), f"parameter {name!r} has a non-finite grad"
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            assert parameter.grad.abs().sum() > 0, f"parameter {name!r} has an all-zero gradient"


def assert_finite(outputs: Any) -> None:
    """Checks that every floating tensor in a (nested) output is finite."""
    for index, tensor in enumerate(_tensors(outputs)):
        if tensor.is_floating_point() or tensor.is_complex():
            bad = (~torch.isfinite(tensor)).sum().item()
            assert bad == 0, f"output tensor {index} has {bad} non-finite values"


def file_hashes(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``{filename: sha256}`` of an export folder's pinned files, as the registry holds them."""
    return {name: sha256(Path(folder) / name) for name in PINNED_FILES}


def run_zoo(
    args: list[str],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m zoo ARGS`` in a subprocess and returns the finished process.

    Args:
        args: The command line after ``zoo``.
        cwd: Working directory (relative paths in recipes resolve against it).
        env: Environment; the current one by default.
        timeout: Seconds before the run is killed.
    """
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        cwd=cwd,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextlib.contextmanager
def temporary_entry(entry: registry.Entry) -> Iterator[registry.Entry]:
    """Registers ``entry`` inside a ``with`` block and removes it afterwards."""
    registry.register(entry)
    try:
        yield entry
    finally:
        registry.unregister(entry.name)


class ToyRegressor(pl.LightningModule):
    """A small MLP regressing ``y = sin(2x)`` from ``x``: the core's test subject.

    Args:
        hidden: Width of the hidden layer.
        lr: Adam learning rate.
        activation: Name of a ``torch.nn`` activation.

    Shapes:
        - input: ``(batch, 1)``
        - output: ``(batch, 1)``
    """

    def __init__(self, hidden: int = 16, lr: float = 1e-2, activation: str = "Tanh") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(1, hidden), getattr(nn, activation)(), nn.Linear(hidden, 1)
        )
        self.example_input_array = torch.linspace(-1.0, 1.0, 5).unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log(f"{stage}/mse", loss, prog_bar=True, sync_dist=True)
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        return self(batch[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    def evaluate(self, datamodule: pl.LightningDataModule | None = None) -> list[dict[str, Any]]:
        """MSE on a fixed grid of 101 points in [-1, 1] (the datamodule is not needed)."""
        x = torch.linspace(-1.0, 1.0, 101).unsqueeze(-1)
        with torch.no_grad():
            mse = nn.functional.mse_loss(self(x), torch.sin(2 * x)).item()
        return [{"name": "mse", "value": mse, "dataset": "sin(2x), 101 points in [-1, 1]"}]


class ToyDataModule(pl.LightningDataModule):
    """Noisy samples of ``y = sin(2x)`` on [-1, 1], generated from a seed.

    Args:
        n_train: Training samples.
        n_val: Validation samples.
        batch_size: Batch size.
        noise: Standard deviation of the noise on the training targets.
        seed: Seed of the generator.
    """

    def __init__(
        self,
        n_train: int = 256,
        n_val: int = 64,
        batch_size: int = 32,
        noise: float = 0.05,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        generator = torch.Generator().manual_seed(self.hparams.seed)
        n = self.hparams.n_train + self.hparams.n_val
        x = 2 * torch.rand(n, 1, generator=generator) - 1
        y = torch.sin(2 * x) + self.hparams.noise * torch.randn(n, 1, generator=generator)
        self.train_set = TensorDataset(x[: self.hparams.n_train], y[: self.hparams.n_train])
        self.val_set = TensorDataset(
            x[self.hparams.n_train :], torch.sin(2 * x)[self.hparams.n_train :]
        )

    def fingerprint(self) -> str:
        self.setup()
        tensors = (*self.train_set.tensors, *self.val_set.tensors)
        return "sha256:" + _tensor_digest(tensors)[:16]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()


class SaveRankWeights(pl.Callback):
    """At the end of fitting, each process writes ``rank<k>.safetensors`` into ``folder``.

    Args:
        folder: Where the files go; defaults to the trainer's ``default_root_dir``.
    """

    def __init__(self, folder: str | None = None) -> None:
        self.folder = folder

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from safetensors.torch import save_file

        folder = Path(self.folder or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in pl_module.state_dict().items()}
        save_file(state, folder / f"rank{trainer.global_rank}.safetensors")


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _tensor_digest(tensors: Iterable[torch.Tensor]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
