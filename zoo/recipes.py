"""Reading the recipe that trained a model: its data section becomes the datamodule that
``evaluate()`` and ``zoo export`` measure on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.checkpoint import import_class
from zoo.errors import ExportFolderError

__all__ = ["datamodule_from_recipe", "recipe_of"]


def recipe_of(model: Any) -> str:
    """The ``recipe.yaml`` text of the export folder a model was loaded from."""
    origin = getattr(model, "zoo_origin", None)
    if origin is None or origin.path is None:
        raise ExportFolderError(
            f"{type(model).__name__} was not loaded from an export folder, so its recipe is "
            "unknown; pass the datamodule explicitly"
        )
    return (Path(origin.path) / "recipe.yaml").read_text()


def datamodule_from_recipe(recipe: str | os.PathLike[str], **overrides: Any) -> Any:
    """Builds the datamodule a recipe's ``data:`` section describes.

    Args:
        recipe: YAML text of a resolved recipe, or the path of a recipe file.
        overrides: Init args to change (such as a smaller ``n_test``).
    """
    import yaml

    text = Path(recipe).read_text() if isinstance(recipe, os.PathLike) else recipe
    config = yaml.safe_load(text) or {}
    data = config.get("data")
    if not isinstance(data, dict) or "class_path" not in data:
        raise ExportFolderError("the recipe has no `data:` section with a class_path")
    cls = import_class(data["class_path"])
    return cls(**{**(data.get("init_args") or {}), **overrides})
