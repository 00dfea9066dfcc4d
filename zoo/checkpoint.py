"""The export folder: one trained module as a directory that is also a Hugging Face Hub repo.

An export folder holds exactly:

- ``config.json``: format version, name, class path, JSON-only init args, library versions;
- ``model.safetensors``: the weights, written with :func:`safetensors.torch.save_model`;
- ``README.md``: the model card, with a ``model-index`` of the measured metrics;
- ``recipe.yaml``: the resolved LightningCLI config that trained it;
- ``zoo.json``: provenance (seed, data fingerprint, code commit), metrics, the sha256 of the
  weight and config files, and a probe (a fixed input and its expected output).

Folders are written into a temporary sibling first and renamed into place, so a failure leaves
nothing half-written. Loading is strict: every file hash is checked, the class path must match,
and every tensor must be present with the expected shape.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ChecksumError, ConfigMismatchError, ExportFolderError

if TYPE_CHECKING:
    import torch

__all__ = [
    "EXPORT_FILES",
    "FORMAT_VERSION",
    "PINNED_FILES",
    "Origin",
    "call_module",
    "class_path_of",
    "has_loaded_weights",
    "import_class",
    "load_folder",
    "read_config",
    "save_pretrained",
    "sha256",
    "verify_probe",
]


FORMAT_VERSION = 1
EXPORT_FILES = ("config.json", "model.safetensors", "README.md", "recipe.yaml", "zoo.json")
#: The files whose content decides behaviour: required to load, hashed in zoo.json, pinned by
#: the registry.
PINNED_FILES = ("config.json", "model.safetensors")
_PROBE_MAX_CHARS = 65536
_PROBE_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
_REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Origin:
    """Where a loaded module came from.

    Args:
        name: ``name.tag`` for registered weights, else the folder's recorded name.
        source: ``folder``, ``bundled``, ``cache``, ``hub`` or ``init`` (``pretrained=False``).
        revision: The Hub revision, when it came through the Hub cache.
        path: The export folder it was read from.
    """

    name: str
    source: str
    revision: str | None = None
    path: str | None = None


def has_loaded_weights(module: object) -> bool:
    """Whether ``module`` holds weights read by :func:`zoo.load` or :func:`load_folder` (not
    built with ``pretrained=False``): a ``fit`` on it continues training them, so its
    ``setup`` must not re-initialise them from an ``init_from`` source."""
    origin = getattr(module, "zoo_origin", None)
    return origin is not None and origin.source != "init"


def sha256(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def class_path_of(obj: object) -> str:
    """``module.QualName`` of an object's class (or of a class)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def import_class(path: str) -> type:
    """Imports a class from its dotted path, with an error that says what failed."""
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ConfigMismatchError(f"{path!r} is not a dotted class path such as 'zoo.lamp.LAMP'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigMismatchError(
            f"cannot import {module_name!r} for class {path!r}: {error}; is the package that "
            "defines it installed?"
        ) from error
    try:
        cls = getattr(module, attr)
    except AttributeError:
        raise ConfigMismatchError(f"module {module_name!r} defines no class {attr!r}") from None
    if not isinstance(cls, type):
        raise ConfigMismatchError(f"{path!r} is not a class")
    return cls


def read_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Reads and checks an export folder's ``config.json``."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExportFolderError(f"{folder} is not an export folder: no config.json") from None
    except json.JSONDecodeError as error:
        raise ExportFolderError(f"{path} is not valid JSON: {error}") from None
    for key in ("format", "class_path", "init_args"):
        if key not in config:
            raise ExportFolderError(f"{path} lacks {key!r}; re-export it with `zoo export`")
    if config["format"] > FORMAT_VERSION:
        raise ExportFolderError(
            f"{path} has format {config['format']}, newer than this zoo's {FORMAT_VERSION}; "
            "upgrade zoo"
        )
    return config


def save_pretrained(
    model: torch.nn.Module,
    out: str | os.PathLike[str],
    *,
    name: str,
    recipe: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    metrics: list[Mapping[str, Any]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes a module as an export folder.

    The module's init args are its Lightning ``hparams`` (or an ``init_args`` attribute for a
    plain ``nn.Module``); they must be JSON, so that loading rebuilds exactly this module.

    Args:
        model: The module to export.
        out: The folder to create.
        name: ``name.tag`` it is published as.
        recipe: The resolved LightningCLI config (YAML text) that trained it.
        provenance: Seed, data fingerprint and anything else worth keeping; the code commit and
            library versions are added here.
        metrics: Measured metrics, each a mapping with at least ``name`` and ``value``.
        overwrite: Replace an existing folder (it is removed only once the new one is complete).

    Returns:
        The export folder.
    """
    from safetensors.torch import save_model

    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportFolderError(f"{out} already exists; choose another folder or pass overwrite")
    init_args = _init_args(model)
    config = {
        "format": FORMAT_VERSION,
        "name": name,
        "class_path": class_path_of(model),
        "init_args": init_args,
        "versions": _versions(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_json(tmp / "config.json", config)
        # One metadata key: safetensors writes a map's keys in no fixed order, and the file
        # must be byte-identical for the same weights (the registry pins its sha256).
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "recipe.yaml").write_text(recipe or "# exported from Python, not from a recipe\n")
        record = {
            "name": name,
            "provenance": {**_code_provenance(), **dict(provenance or {})},
            "metrics": [dict(m) for m in metrics or []],
            "files": {f: sha256(tmp / f) for f in PINNED_FILES},
            "probe": make_probe(model),
        }
        _write_json(tmp / "zoo.json", record)
        from zoo.cards import render_card

        (tmp / "README.md").write_text(render_card(config, record))
        _make_readable(tmp)
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_folder(
    folder: str | os.PathLike[str],
    *,
    expected_class: str | None = None,
    expected_files: Mapping[str, str] | None = None,
    map_location: str | torch.device = "cpu",
    origin: Origin | None = None,
) -> torch.nn.Module:
    """Builds the module an export folder describes and loads its weights strictly.

    Args:
        folder: The export folder.
        expected_class: The class path the registry gives for it; a different one is an error.
        expected_files: ``{filename: sha256}`` pinned by the registry.
        map_location: Device the module is moved to.
        origin: What to record as the module's ``zoo_origin``.

    Returns:
        The module in ``eval()`` mode, with ``zoo_origin`` telling where it came from.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    folder = Path(folder)
    missing = [f for f in PINNED_FILES if not (folder / f).is_file()]
    if missing:
        raise ExportFolderError(f"{folder} is not an export folder: it lacks {', '.join(missing)}")
    _check_hashes(folder, expected_files)
    config = read_config(folder)
    if expected_class is not None and config["class_path"] != expected_class:
        raise ConfigMismatchError(
            f"{folder / 'config.json'} describes {config['class_path']!r}, but the registry "
            f"expects {expected_class!r}; the folder holds another model's weights"
        )
    cls = import_class(config["class_path"])
    try:
        model = cls(**config["init_args"])
    except TypeError as error:
        raise ConfigMismatchError(
            f"{config['class_path']} does not accept the init args in {folder / 'config.json'}: "
            f"{error}"
        ) from None
    try:
        load_model(model, str(folder / "model.safetensors"), strict=True)
    except (RuntimeError, SafetensorError) as error:
        raise ConfigMismatchError(
            f"the weights in {folder / 'model.safetensors'} do not fit {config['class_path']}: "
            f"{error}"
        ) from None
    model = model.to(map_location).eval()
    name = config.get("name", folder.name)
    model.zoo_origin = origin or Origin(name, "folder", path=str(folder))
    return model


def make_probe(model: torch.nn.Module) -> dict[str, Any] | None:
    """Runs the module on its ``example_input_array`` and records input and output.

    Returns ``None`` when the module defines no example input.
    """
    inputs = getattr(model, "example_input_array", None)
    if inputs is None:
        return None
    outputs = _run_probe(model, inputs)
    probe = {"input": _to_json(inputs), "output": _to_json(outputs), **_PROBE_TOLERANCE}
    size = len(json.dumps(probe))
    if size > _PROBE_MAX_CHARS:
        raise ExportFolderError(
            f"{class_path_of(model)}.example_input_array gives a probe of {size} characters; "
            "make the example input smaller (a few samples suffice)"
        )
    return probe


def verify_probe(model: torch.nn.Module, folder: str | os.PathLike[str] | None = None) -> bool:
    """Checks that a module reproduces the probe output recorded in ``zoo.json``.

    Args:
        model: A loaded module.
        folder: The export folder; defaults to the one the module was loaded from.

    Returns:
        ``True`` if it matches, ``False`` if the folder records no probe.

    Raises:
        ChecksumError: If the outputs differ beyond the recorded tolerance.
    """
    import torch

    if folder is None:
        origin = getattr(model, "zoo_origin", None)
        if origin is None or origin.path is None:
            raise ExportFolderError("this module was not loaded from a folder; pass `folder`")
        folder = origin.path
    record = json.loads((Path(folder) / "zoo.json").read_text())
    probe = record.get("probe")
    if probe is None:
        return False
    device = next(iter(model.parameters()), torch.empty(0)).device
    inputs = _from_json(probe["input"], device)
    outputs = _run_probe(model, inputs)
    expected = _from_json(probe["output"], device)
    try:
        torch.testing.assert_close(outputs, expected, rtol=probe["rtol"], atol=probe["atol"])
    except AssertionError as error:
        raise ChecksumError(
            f"{class_path_of(model)} does not reproduce the probe recorded in {folder}: {error}"
        ) from None
    return True


def _run_probe(model: torch.nn.Module, inputs: Any) -> Any:
    import torch

    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        outputs = call_module(model, inputs)
    model.train(was_training)
    return outputs


def call_module(model: torch.nn.Module, inputs: Any) -> Any:
    """Calls a module on an example input as Lightning does: a tuple is unpacked into
    positional arguments, a mapping into keyword arguments."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def _to_json(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return {
            "dtype": str(value.dtype).removeprefix("torch."),
            "shape": list(value.shape),
            "data": value.flatten().tolist(),
        }
    if isinstance(value, Mapping):
        return {"mapping": {str(k): _to_json(v) for k, v in value.items()}}
    if isinstance(value, (tuple, list)):
        return {"sequence": [_to_json(v) for v in value]}
    if isinstance(value, (int, float, bool)) or value is None:
        return {"value": value}
    raise ExportFolderError(
        f"the probe cannot record a {type(value).__name__}; example_input_array and the "
        "module's output must be tensors, or tuples and dicts of tensors"
    )


def _from_json(value: dict[str, Any], device: torch.device) -> Any:
    import torch

    if "data" in value:
        dtype = getattr(torch, value["dtype"])
        return torch.tensor(value["data"], dtype=dtype, device=device).reshape(value["shape"])
    if "mapping" in value:
        return {k: _from_json(v, device) for k, v in value["mapping"].items()}
    if "sequence" in value:
        return tuple(_from_json(v, device) for v in value["sequence"])
    return value["value"]


def _check_hashes(folder: Path, expected: Mapping[str, str] | None) -> None:
    """Checks file hashes against the registry's pins and against ``zoo.json``'s record."""
    recorded = {}
    if (folder / "zoo.json").is_file():
        recorded = json.loads((folder / "zoo.json").read_text()).get("files", {})
    for source, hashes in (("the registry", expected or {}), ("zoo.json", recorded)):
        for filename, digest in hashes.items():
            path = folder / filename
            if not path.is_file():
                raise ChecksumError(f"{path} is missing; {source} pins its sha256")
            actual = sha256(path)
            if actual != digest:
                raise ChecksumError(
                    f"{path} is corrupted or was changed: its sha256 is {actual[:12]}..., "
                    f"{source} expects {digest[:12]}...; delete the folder and load it again"
                )


def _init_args(model: torch.nn.Module) -> dict[str, Any]:
    hparams = getattr(model, "hparams", None)
    if hparams is None:
        hparams = getattr(model, "init_args", {})
    args = {k: v for k, v in dict(hparams).items() if not k.startswith("_")}
    for key, value in args.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ExportFolderError(
                f"{class_path_of(model)} init arg {key!r} = {value!r} is not JSON; pass names "
                "and numbers (an activation by name, irreps as a string) so the module can be "
                "rebuilt from config.json"
            ) from None
    return args


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("zoo", "torch", "lightning", "safetensors"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return versions


def _code_provenance() -> dict[str, Any]:
    return {
        "code_commit": git_commit(),
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def git_commit() -> str | None:
    """The repository's commit, with ``-dirty`` when its code has uncommitted changes (the
    bundled ``checkpoints/`` do not count); ``None`` outside a git checkout."""
    if not (_REPO / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)checkpoints",
            ],
            cwd=_REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def _make_readable(folder: Path) -> None:
    """Gives a finished folder the usual permissions (``mkdtemp`` makes it private)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _replace(tmp: Path, out: Path) -> None:
    """Moves a finished folder into place, removing an older one only afterwards."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
