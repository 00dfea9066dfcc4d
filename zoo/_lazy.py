"""Lazy exports for the entry sub-packages, so that ``import zoo`` imports no heavy library."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` that import each public name on first use.

    Args:
        package: The package's ``__name__``.
        where: ``{public name: module that defines it}``.

    Example:
        ``__getattr__, __dir__ = lazy_exports(__name__, {"KernelOperator": "zoo.x.model"})``
    """

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(where)

    return __getattr__, __dir__
