"""zoo: a PyTorch Lightning model zoo of ICLR 2023 papers for machine learning in the sciences.

>>> import zoo
>>> isinstance(zoo.list_models(), list)
True

``import zoo`` is light: it imports the plain-data registry only. torch, Lightning and the
entries' libraries are imported by :func:`load` and by the entry sub-packages when used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from zoo.registry import info, list_models

if TYPE_CHECKING:
    import torch

__all__ = ["__version__", "info", "list_models", "load"]

__version__ = "0.1.0"


def load(
    name: str | os.PathLike[str],
    pretrained: bool = True,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    map_location: str | torch.device = "cpu",
) -> torch.nn.Module:
    """Loads a model of the zoo: ``zoo.load("lamp")``. See :func:`zoo.hub.load`."""
    from zoo.hub import load as _load

    return _load(
        name,
        pretrained,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        map_location=map_location,
    )
