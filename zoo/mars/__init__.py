"""Entry ``mars``: meta-learning as score matching in the function space (Pavasovic et al.,
ICLR 2023). Work in progress: not yet registered, see the issue.

The public classes are imported on first use, so that ``import zoo`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FSVGD", "MARS", "MarsDataModule", "Posterior", "ScoreTransformer"]

_WHERE = {
    "FSVGD": "zoo.mars.svgd",
    "MARS": "zoo.mars.model",
    "MarsDataModule": "zoo.mars.datamodule",
    "Posterior": "zoo.mars.model",
    "ScoreTransformer": "zoo.mars.score",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'zoo.mars' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
