"""The registry of entries and their weight sets, as plain data.

Importing this module imports no third-party package: `zoo list` and `zoo info` answer from it
alone. Each paper entry describes itself in ``zoo/<entry>/entry.py`` by calling :func:`register`
with an :class:`Entry`; the modules named in ``_ENTRY_MODULES`` are imported on first use.

Names follow timm: an entry is ``name`` (``lamp``), a weight set is ``name.tag``
(``lamp.burgers1d``), and a bare name means the entry's default tag.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from zoo.errors import RegistryError, UnknownModelError

__all__ = [
    "Entry",
    "Metric",
    "Paper",
    "Weights",
    "entries",
    "get",
    "info",
    "list_models",
    "register",
    "split_name",
    "train_command",
    "unregister",
]

Status = Literal["reproduced", "partial", "cpu-scale"]

#: Modules that register the paper entries; each paper issue adds its line.
_ENTRY_MODULES: tuple[str, ...] = (
    "zoo.denoising.entry",
    "zoo.fab.entry",
    "zoo.kernel_operator.entry",
    "zoo.lamp.entry",
    "zoo.mars.entry",
    "zoo.nlsb.entry",
)

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CLASS_PATH = re.compile(r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Paper:
    """The paper an entry implements.

    Args:
        title: Title as published.
        authors: Author list, in order.
        arxiv: arXiv identifier, such as ``"2206.02980"``.
        venue: Where it appeared.
    """

    title: str
    authors: tuple[str, ...]
    arxiv: str
    venue: str = "ICLR 2023"

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


@dataclass(frozen=True)
class Metric:
    """One number a weight set reaches, next to the paper's.

    Args:
        name: Metric name as the paper writes it (``"MAE HOMO"``).
        value: What a command in this repository measured.
        unit: Unit of ``value`` and ``paper``, such as ``"meV"``.
        dataset: The data it was measured on (``"QM9 test split"``).
        paper: The paper's number for the same metric, read from the paper; ``None`` when the
            paper reports none at this scale.
        command: The command that produced ``value``.
        lower_is_better: Direction of improvement.
    """

    name: str
    value: float
    unit: str = ""
    dataset: str = ""
    paper: float | None = None
    command: str = ""
    lower_is_better: bool = True


@dataclass(frozen=True)
class Weights:
    """One pretrained weight set of an entry (``name.tag``).

    Args:
        tag: The tag, unique within the entry.
        description: One line on what these weights are.
        recipe: The recipe that trained them, relative to ``recipes/``.
        files: ``{filename: sha256}`` of the files whose content decides behaviour
            (at least ``config.json`` and ``model.safetensors``).
        repo_id: Hugging Face Hub repository holding the same export folder.
        revision: The Hub commit (or tag) these hashes belong to.
        module: Class path of the module, when it differs from the entry's.
        init_args: Arguments for ``pretrained=False`` when they differ from the defaults.
        metrics: What these weights reach, next to the paper's numbers.
        status: ``reproduced``, ``partial`` or ``cpu-scale``.
    """

    tag: str
    description: str
    recipe: str
    files: Mapping[str, str]
    repo_id: str | None = None
    revision: str | None = None
    module: str | None = None
    init_args: Mapping[str, object] = field(default_factory=dict)
    metrics: tuple[Metric, ...] = ()
    status: Status = "cpu-scale"


@dataclass(frozen=True)
class Entry:
    """A paper entry: its classes, its weight sets and where they live.

    Args:
        name: The name users load, such as ``"kernel-operator"``.
        paper: The paper it implements.
        module: Class path of the ``LightningModule``.
        datamodule: Class path of the ``LightningDataModule``.
        weights: The weight sets, the default first unless ``default_tag`` says otherwise.
        default_tag: Tag loaded by the bare name; defaults to the first weight set.
        license: License of the code and weights.
        summary: One line for ``zoo list``.
    """

    name: str
    paper: Paper
    module: str
    datamodule: str
    weights: tuple[Weights, ...]
    default_tag: str | None = None
    license: str = "apache-2.0"
    summary: str = ""

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def default(self) -> Weights:
        tag = self.default_tag or self.weights[0].tag
        return self.weight(tag)

    @property
    def package(self) -> str:
        """The sub-package of this entry: ``kernel-operator`` lives in ``zoo.kernel_operator``."""
        return "zoo." + self.name.replace("-", "_")

    def weight(self, tag: str) -> Weights:
        for weights in self.weights:
            if weights.tag == tag:
                return weights
        known = [f"{self.name}.{w.tag}" for w in self.weights]
        raise UnknownModelError(f"{self.name}.{tag}", known)

    def module_path(self, weights: Weights) -> str:
        return weights.module or self.module


_REGISTRY: dict[str, Entry] = {}
_loaded = False


def register(entry: Entry) -> Entry:
    """Adds an entry to the registry.

    Raises:
        RegistryError: If an entry of that name is already registered.
    """
    if entry.name in _REGISTRY:
        raise RegistryError(
            f"an entry named {entry.name!r} is already registered "
            f"(by {_REGISTRY[entry.name].module}); entry names must be unique"
        )
    _REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> Entry:
    """Removes an entry and returns it (for plugins and tests)."""
    _load_entries()
    if name not in _REGISTRY:
        raise UnknownModelError(name, sorted(_REGISTRY))
    return _REGISTRY.pop(name)


def entries() -> list[Entry]:
    """All registered entries, sorted by name."""
    _load_entries()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def train_command(name: str, recipe: str) -> str:
    """The command that trains and exports weights ``name.tag`` with a recipe, for
    :attr:`Metric.command`; the recipe writes ``runs/<name>/<tag>/checkpoints/<tag>.ckpt``.

    Args:
        name: ``"name.tag"``, such as ``"mars.sinusoid"``.
        recipe: The recipe, relative to ``recipes/`` (as :attr:`Weights.recipe`).

    Example:
        >>> train_command("lamp.burgers1d", "lamp/burgers.yaml").split(" && ")[0]
        'zoo fit --config recipes/lamp/burgers.yaml'
    """
    entry, tag = split_name(name)
    return (
        f"zoo fit --config recipes/{recipe} && zoo export "
        f"runs/{entry}/{tag}/checkpoints/{tag}.ckpt --out checkpoints/{name} --name {name} --force"
    )


def split_name(name: str) -> tuple[str, str | None]:
    """Splits ``"name.tag"`` into ``("name", "tag")``; a bare name gives ``("name", None)``."""
    entry, _, tag = name.partition(".")
    return entry, (tag or None)


def get(name: str) -> tuple[Entry, Weights]:
    """The entry and weight set a name refers to.

    Args:
        name: ``"name"`` or ``"name.tag"``.

    Raises:
        UnknownModelError: With the closest known names, if nothing matches.
    """
    _load_entries()
    entry_name, tag = split_name(name)
    entry = _REGISTRY.get(entry_name)
    if entry is None:
        raise UnknownModelError(name, _all_names())
    if tag is None:
        return entry, entry.default
    try:
        return entry, entry.weight(tag)
    except UnknownModelError:
        raise UnknownModelError(name, _all_names()) from None


def list_models(pattern: str = "*") -> list[str]:
    """Names of all weight sets matching an ``fnmatch`` pattern.

    Args:
        pattern: Such as ``"lamp*"`` or ``"*.qm9-*"``; a bare entry name lists its tags.

    Example:
        >>> import zoo
        >>> zoo.list_models("no-such-entry*")
        []
    """
    _load_entries()
    names = _all_names()
    if pattern in _REGISTRY:
        pattern = f"{pattern}.*"
    return [name for name in names if fnmatch.fnmatchcase(name, pattern)]


def info(name: str) -> dict[str, object]:
    """Everything the registry holds on a weight set, as plain data."""
    entry, weights = get(name)
    return {
        "name": f"{entry.name}.{weights.tag}",
        "entry": entry.name,
        "tag": weights.tag,
        "default": weights.tag == entry.default.tag,
        "summary": entry.summary,
        "description": weights.description,
        "paper": {
            "title": entry.paper.title,
            "authors": list(entry.paper.authors),
            "arxiv": entry.paper.arxiv,
            "url": entry.paper.url,
            "venue": entry.paper.venue,
        },
        "module": entry.module_path(weights),
        "datamodule": entry.datamodule,
        "recipe": f"recipes/{weights.recipe}",
        "repo_id": weights.repo_id,
        "revision": weights.revision,
        "files": dict(weights.files),
        "status": weights.status,
        "license": entry.license,
        "metrics": [
            {
                "name": m.name,
                "value": m.value,
                "unit": m.unit,
                "dataset": m.dataset,
                "paper": m.paper,
                "command": m.command,
            }
            for m in weights.metrics
        ],
        "tags": [w.tag for w in entry.weights],
    }


def _all_names() -> list[str]:
    return sorted(f"{e.name}.{w.tag}" for e in _REGISTRY.values() for w in e.weights)


def _load_entries() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _ENTRY_MODULES:
        importlib.import_module(module)


def _validate(entry: Entry) -> None:
    where = f"Entry {entry.name!r}"
    if not _NAME.match(entry.name):
        raise RegistryError(f"{where}: names are lower-case words joined by '-'")
    for path in (entry.module, entry.datamodule):
        if not _CLASS_PATH.match(path):
            raise RegistryError(f"{where}: {path!r} is not a dotted class path")
    if not entry.weights:
        raise RegistryError(f"{where}: an entry needs at least one weight set")
    tags = [w.tag for w in entry.weights]
    if len(set(tags)) != len(tags):
        raise RegistryError(f"{where}: duplicate tags in {tags}")
    if entry.default_tag is not None and entry.default_tag not in tags:
        raise RegistryError(f"{where}: default tag {entry.default_tag!r} is not one of {tags}")
    for weights in entry.weights:
        _validate_weights(where, weights)


def _validate_weights(where: str, weights: Weights) -> None:
    where = f"{where}, tag {weights.tag!r}"
    if not _TAG.match(weights.tag):
        raise RegistryError(f"{where}: tags are lower-case letters, digits, '-' and '_'")
    for required in ("config.json", "model.safetensors"):
        if required not in weights.files:
            raise RegistryError(f"{where}: files must give the sha256 of {required}")
    for filename, digest in weights.files.items():
        if not _SHA256.match(digest):
            raise RegistryError(f"{where}: {filename} needs a 64-digit lower-case sha256")
    if weights.module is not None and not _CLASS_PATH.match(weights.module):
        raise RegistryError(f"{where}: {weights.module!r} is not a dotted class path")
    if weights.status not in ("reproduced", "partial", "cpu-scale"):
        raise RegistryError(
            f"{where}: status {weights.status!r} is not one of reproduced, partial, cpu-scale"
        )
    if (weights.repo_id is None) != (weights.revision is None):
        raise RegistryError(f"{where}: give both repo_id and a pinned revision, or neither")
