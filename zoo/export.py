"""``zoo export``: a Lightning training checkpoint becomes an export folder.

The checkpoint is read with ``torch.load(weights_only=True)``; the module is rebuilt from its
class path and JSON hyperparameters, loaded strictly, written, then reloaded from the new folder
and checked against its own probe before the command reports success.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.checkpoint import (
    class_path_of,
    import_class,
    load_folder,
    save_pretrained,
    verify_probe,
)
from zoo.errors import ConfigMismatchError, ExportFolderError
from zoo.recipes import datamodule_from_recipe

__all__ = ["export_checkpoint", "load_checkpoint"]


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    metrics: list[Mapping[str, Any]] | None = None,
    evaluate: bool = True,
    overwrite: bool = False,
) -> Path:
    """Exports a ``.ckpt`` written by ``zoo fit``.

    Args:
        checkpoint: The Lightning checkpoint.
        out: The export folder to create; its name is the default ``name``.
        name: ``name.tag`` it is published as.
        metrics: Measured metrics to record. By default, what the module's ``evaluate()``
            measures on the data of its recipe, or else the run's last logged metrics.
        evaluate: Run ``evaluate()`` when the module defines it and no metrics are given.
        overwrite: Replace an existing folder.

    Returns:
        The export folder.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    model, record = load_checkpoint(checkpoint)
    class_path = class_path_of(model)

    recipe = record.get("recipe")
    if metrics is None and evaluate and recipe and callable(getattr(model, "evaluate", None)):
        model.eval()
        metrics = model.evaluate(datamodule=datamodule_from_recipe(recipe))
    if metrics is None:
        metrics = [{"name": k, "value": v} for k, v in sorted(record.get("metrics", {}).items())]
    provenance = {
        key: record[key]
        for key in ("seed", "data_fingerprint", "code_commit", "global_step", "epoch")
        if record.get(key) is not None
    }
    provenance["checkpoint"] = checkpoint.name
    save_pretrained(
        model,
        out,
        name=name or out.name,
        recipe=recipe,
        provenance=provenance,
        metrics=list(metrics),
        overwrite=overwrite,
    )
    reloaded = load_folder(out, expected_class=class_path)
    verify_probe(reloaded, out)
    return out


def load_checkpoint(checkpoint: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """Rebuilds the module of a ``.ckpt`` written by ``zoo fit``, without unpickling.

    Returns:
        The module with its weights loaded strictly, and the checkpoint's ``zoo`` record
        (recipe, seed, data fingerprint, logged metrics).
    """
    import torch

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ExportFolderError(f"{checkpoint}: no such checkpoint file")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ExportFolderError(
            f"{checkpoint} cannot be read as a checkpoint with weights_only=True: "
            f"{str(error).splitlines()[0]}"
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ExportFolderError(f"{checkpoint} is not a Lightning checkpoint (no state_dict)")

    record = state.get("zoo", {})
    hparams = dict(state.get("hyper_parameters", {}))
    class_path = record.get("class_path") or hparams.get("_class_path")
    if class_path is None:
        raise ExportFolderError(
            f"{checkpoint} does not say which class it belongs to; train it with `zoo fit`"
        )
    init_args = {k: v for k, v in hparams.items() if not k.startswith("_")}
    model = import_class(class_path)(**init_args)
    try:
        model.load_state_dict(state["state_dict"], strict=True)
    except RuntimeError as error:
        raise ConfigMismatchError(f"{checkpoint} does not fit {class_path}: {error}") from None
    return model, record
