"""Errors the zoo raises on purpose, each naming the problem and the fix.

The CLI prints any :class:`ZooError` as one line and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

__all__ = [
    "ChecksumError",
    "ConfigMismatchError",
    "ExportFolderError",
    "RegistryError",
    "UnknownModelError",
    "WeightsNotFoundError",
    "ZooError",
]


class ZooError(Exception):
    """Base class of the zoo's own errors."""


class RegistryError(ZooError):
    """An entry is malformed or registered twice."""


class UnknownModelError(ZooError, KeyError):
    """A name matches no registered weight set.

    Args:
        name: The name asked for.
        known: Every known name, from which the closest are suggested.
    """

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.suggestions = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        if self.suggestions:
            hint = "did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        elif known:
            hint = "run `zoo list` to see the registered names"
        else:
            hint = "no entries are registered yet"
        super().__init__(f"unknown model {name!r}: {hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class WeightsNotFoundError(ZooError, FileNotFoundError):
    """No place held the weights; the message lists every place looked."""


class ChecksumError(ZooError):
    """A file's sha256 differs from the one recorded for it."""


class ConfigMismatchError(ZooError):
    """An export folder's ``config.json`` does not describe the module it is loaded as."""


class ExportFolderError(ZooError):
    """A folder is not a complete export folder, or cannot be written as one."""
