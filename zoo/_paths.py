"""Where the files that travel with the package live.

In a source checkout (or an editable install) they are the repository's own ``checkpoints/``,
``recipes/`` and ``model_cards/``; in an installed wheel they are copies under ``zoo/_data/``.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO = _PACKAGE.parent


def _data_dir(name: str) -> Path:
    in_repo = _REPO / name
    if (_REPO / "pyproject.toml").is_file() and in_repo.is_dir():
        return in_repo
    return _PACKAGE / "_data" / name


def checkpoints_root() -> Path:
    """The bundled weights; ``ZOO_CHECKPOINTS`` overrides it (read at every call)."""
    override = os.environ.get("ZOO_CHECKPOINTS")
    return Path(override).expanduser() if override else _data_dir("checkpoints")


def recipes_root() -> Path:
    return _data_dir("recipes")


def model_cards_root() -> Path:
    return _data_dir("model_cards")
