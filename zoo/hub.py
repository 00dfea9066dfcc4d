"""Finding, loading and publishing weights: bundled folders, the Hugging Face cache, the Hub.

:func:`load` resolves a name in a fixed order, first hit wins:

1. ``name`` is a folder: load that export folder.
2. Registry lookup (``pretrained=False`` stops here and builds the module from its arguments).
3. Bundled weights, ``checkpoints/<name.tag>/`` (``ZOO_CHECKPOINTS`` overrides the root).
4. The Hugging Face cache, at the registry's pinned revision.
5. The Hub itself, unless offline (``HF_HUB_OFFLINE``, read at call time) or
   ``local_files_only``.
6. Otherwise a :class:`~zoo.errors.WeightsNotFoundError` naming every place looked.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo import registry
from zoo._paths import checkpoints_root
from zoo.checkpoint import EXPORT_FILES, Origin, import_class, load_folder, read_config, sha256
from zoo.errors import ExportFolderError, WeightsNotFoundError

if TYPE_CHECKING:
    import torch

__all__ = ["PublishResult", "cache_import", "download", "load", "publish"]


_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def load(
    name: str | os.PathLike[str],
    pretrained: bool = True,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool | None = None,
    map_location: str | torch.device = "cpu",
) -> torch.nn.Module:
    """Loads a model of the zoo by name, or an export folder by path.

    Args:
        name: ``"name"``, ``"name.tag"`` or the path of an export folder.
        pretrained: Load weights; ``False`` builds the module from its default arguments.
        revision: A Hub branch, tag or commit instead of the registry's pinned revision
            (bundled weights are skipped then, since they are the pinned revision).
        cache_dir: The Hugging Face cache to use instead of the default.
        local_files_only: Never reach the Hub; ``None`` follows ``HF_HUB_OFFLINE``.
        map_location: Device to move the module to.

    Returns:
        The module in ``eval()`` mode; ``module.zoo_origin`` says where it came from.

    Raises:
        UnknownModelError: If the name is neither a folder nor a registered name.
        WeightsNotFoundError: If no place holds the weights; the message lists each place.
        ChecksumError: If a file differs from the hash the registry pins.
        ConfigMismatchError: If the folder describes another class, or its weights do not fit.

    Example:
        >>> import zoo
        >>> model = zoo.load("kernel-operator")  # doctest: +SKIP
    """
    path = Path(name).expanduser()
    looks_like_path = isinstance(name, os.PathLike) or os.sep in str(name)
    if path.is_dir() and (looks_like_path or (path / "config.json").is_file()):
        return load_folder(path, map_location=map_location)
    if looks_like_path:
        raise WeightsNotFoundError(f"{name} looks like a path, but no such folder exists")

    entry, weights = registry.get(str(name))
    full_name = f"{entry.name}.{weights.tag}"
    class_path = entry.module_path(weights)
    if not pretrained:
        model = import_class(class_path)(**weights.init_args)
        model.zoo_origin = Origin(full_name, "init")
        return model

    looked = []
    pinned = revision is None or revision == weights.revision
    expected = dict(weights.files) if pinned else None
    kwargs = {
        "expected_class": class_path,
        "expected_files": expected,
        "map_location": map_location,
    }

    bundled = checkpoints_root() / full_name
    if not pinned:
        looked.append(f"bundled weights: skipped, they are the pinned revision, not {revision!r}")
    elif bundled.is_dir():
        return load_folder(
            bundled, **kwargs, origin=Origin(full_name, "bundled", None, str(bundled))
        )
    else:
        looked.append(f"bundled weights: no folder {bundled}")

    if weights.repo_id is None:
        looked.append(f"Hugging Face Hub: {full_name} is not published there")
        raise _not_found(full_name, looked)

    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    rev = revision or weights.revision
    cache = cache_dir or constants.HF_HUB_CACHE
    options = {
        "repo_id": weights.repo_id,
        "revision": rev,
        "cache_dir": cache_dir,
        "allow_patterns": list(EXPORT_FILES),
    }
    try:
        folder = snapshot_download(**options, local_files_only=True)
    except LocalEntryNotFoundError:
        looked.append(f"Hugging Face cache {cache}: no {weights.repo_id} at revision {rev!r}")
    else:
        return load_folder(folder, **kwargs, origin=Origin(full_name, "cache", rev, folder))

    if local_files_only or constants.HF_HUB_OFFLINE:
        looked.append("Hugging Face Hub: not asked (offline: HF_HUB_OFFLINE or local_files_only)")
        raise _not_found(full_name, looked)
    try:
        folder = snapshot_download(**options)
    except (HfHubHTTPError, LocalEntryNotFoundError) as error:
        looked.append(f"Hugging Face Hub {weights.repo_id}@{rev}: {_first_line(error)}")
        raise _not_found(full_name, looked) from None
    return load_folder(folder, **kwargs, origin=Origin(full_name, "hub", rev, folder))


def download(
    name: str, *, revision: str | None = None, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Fills the Hugging Face cache with a registered weight set, for later offline use.

    Returns:
        The snapshot folder in the cache.
    """
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    entry, weights = registry.get(name)
    full_name = f"{entry.name}.{weights.tag}"
    if weights.repo_id is None:
        raise WeightsNotFoundError(
            f"{full_name} is not published on the Hub; its weights are bundled with the package"
        )
    if constants.HF_HUB_OFFLINE:
        raise WeightsNotFoundError(
            "HF_HUB_OFFLINE is set: unset it to download, or copy an export folder here and "
            "run `zoo cache import`"
        )
    try:
        folder = snapshot_download(
            weights.repo_id,
            revision=revision or weights.revision,
            cache_dir=cache_dir,
            allow_patterns=list(EXPORT_FILES),
        )
    except (HfHubHTTPError, LocalEntryNotFoundError) as error:
        raise WeightsNotFoundError(
            f"could not download {weights.repo_id}: {_first_line(error)}"
        ) from None
    return Path(folder)


def cache_import(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str = "main",
    tags: tuple[str, ...] = (),
    cache_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Writes an export folder into the Hugging Face cache layout, as a download would.

    For air-gapped machines (copy the folder over, import it, then ``zoo.load`` finds it by its
    registered revision) and for tests. The layout is the real one: ``blobs/<sha256>``,
    ``snapshots/<commit>/<file>`` as relative symlinks to the blobs, and ``refs/<branch or
    tag>`` holding the commit.

    Args:
        folder: An export folder.
        repo_id: The Hub repository it belongs to, ``org/name``.
        revision: A branch name (its ref is written) or a 40-digit commit to file it under.
        tags: Further refs pointing at the same commit.
        cache_dir: The cache root; defaults to ``HF_HUB_CACHE``.

    Returns:
        The commit the snapshot is filed under. Unless ``revision`` is a commit, it is derived
        from the file hashes, so the same folder always gets the same commit.
    """
    from huggingface_hub import constants

    folder = Path(folder)
    files = _export_files(folder)
    hashes = {f: sha256(folder / f) for f in files}
    if _COMMIT.match(revision):
        commit, refs = revision, tags
    else:
        listing = "".join(f"{f} {hashes[f]}\n" for f in sorted(files))
        commit, refs = hashlib.sha1(listing.encode()).hexdigest(), (revision, *tags)

    root = Path(cache_dir or constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    for filename, digest in hashes.items():
        blob = root / "blobs" / digest
        if not blob.exists():
            _atomic_copy(folder / filename, blob)

    snapshot = root / "snapshots" / commit
    if not snapshot.exists():
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{commit}.", dir=snapshot.parent))
        for filename, digest in hashes.items():
            (tmp / filename).symlink_to(Path("..", "..", "blobs", digest))
        os.replace(tmp, snapshot)
    for ref in refs:
        ref_path = root / "refs" / ref
        ref_path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(ref_path, commit)
    return commit


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish` did (or, in a dry run, would do)."""

    repo_id: str
    files: tuple[str, ...]
    commit: str | None
    tag: str | None
    url: str | None
    dry_run: bool


def publish(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    tag: str | None = None,
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
) -> PublishResult:
    """Uploads an export folder to the Hub: ``create_repo``, ``upload_folder``, then a tag.

    Only the export's own files are uploaded (``config.json``, ``model.safetensors``,
    ``README.md``, ``recipe.yaml``, ``zoo.json``); anything else in the folder stays local.

    Args:
        folder: An export folder.
        repo_id: ``org/name`` on the Hub.
        tag: A tag to put on the new commit, such as ``v1``.
        private: Create the repository as private.
        dry_run: Check the folder and report what would be uploaded, without any request.
        token: A Hub token; defaults to the logged-in one.

    Returns:
        The commit to pin as the weight set's ``revision`` in the registry.
    """
    folder = Path(folder)
    files = _export_files(folder)
    config = read_config(folder)
    if dry_run:
        return PublishResult(repo_id, files, None, tag, None, True)

    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(
        repo_id=repo_id,
        repo_type="model",
        folder_path=str(folder),
        allow_patterns=list(files),
        commit_message=f"zoo: publish {config.get('name', folder.name)}",
    )
    if tag is not None:
        api.create_tag(repo_id, tag=tag, revision=info.oid, repo_type="model")
    return PublishResult(repo_id, files, info.oid, tag, str(info.commit_url), False)


def _export_files(folder: Path) -> tuple[str, ...]:
    if not folder.is_dir():
        raise ExportFolderError(f"{folder} is not a folder")
    missing = [f for f in EXPORT_FILES if not (folder / f).is_file()]
    if missing:
        raise ExportFolderError(
            f"{folder} is not a complete export folder: it lacks {', '.join(missing)}; "
            "create one with `zoo export`"
        )
    return EXPORT_FILES


def _not_found(name: str, looked: list[str]) -> WeightsNotFoundError:
    places = "\n".join(f"  - {place}" for place in looked)
    return WeightsNotFoundError(
        f"no weights found for {name}; looked in:\n{places}\n"
        f"fix: run `zoo download {name}` on a machine with network and copy its Hugging Face "
        "cache here, or `zoo cache import FOLDER --repo-id ...` an export folder"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _atomic_copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _atomic_write(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
