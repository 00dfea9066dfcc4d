"""Entry ``kernel-operator``: multilevel kernel operator learning (Jin et al., ICLR 2023).

>>> import zoo
>>> model = zoo.load("kernel-operator")  # doctest: +SKIP
>>> x, u = model.apply(lambda x: torch.sin(2 * math.pi * x))  # doctest: +SKIP

The public classes are imported on first use, so that ``import zoo`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["KernelOperator", "LinearOperatorDataModule", "OperatorTask", "make_task"]

_WHERE = {
    "KernelOperator": "zoo.kernel_operator.model",
    "LinearOperatorDataModule": "zoo.kernel_operator.data",
    "OperatorTask": "zoo.kernel_operator.data",
    "make_task": "zoo.kernel_operator.data",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'zoo.kernel_operator' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
