"""Fixtures for the whole suite: no network, a private Hugging Face cache, a toy entry."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(address: object) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths and the like
        return True
    host = str(address[0])
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sockets may reach loopback only; anything else fails the test loudly."""
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
    getaddrinfo = socket.getaddrinfo

    def guarded(method):
        def wrapper(self, address, *args, **kwargs):
            if not _is_loopback(address):
                raise OSError(f"test tried to reach the network: {address!r}")
            return method(self, address, *args, **kwargs)

        return wrapper

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_loopback((host if isinstance(host, str) else "", 0)):
            raise OSError(f"test tried to resolve a network host: {host!r}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture(autouse=True)
def hf_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private, empty Hugging Face cache, offline. ``huggingface_hub`` reads its environment
    once at import, so its ``constants`` are patched rather than the environment."""
    from huggingface_hub import constants

    cache = tmp_path_factory.mktemp("hf") / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def subprocess_env(hf_cache: Path) -> dict[str, str]:
    """Environment for commands run in a subprocess: offline, the private cache, the repo on
    the path, one thread per process."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HUB_CACHE=str(hf_cache),
        PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        OMP_NUM_THREADS="1",
        PYTHONWARNINGS="ignore",
    )
    return env


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


@pytest.fixture
def toy_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A registered entry ``toy`` whose weights ``toy.demo`` are bundled in a temporary
    ``checkpoints/`` root (``ZOO_CHECKPOINTS``)."""
    import torch

    from zoo.checkpoint import save_pretrained
    from zoo.registry import Entry, Metric, Paper, Weights
    from zoo.testing import ToyRegressor, file_hashes, temporary_entry

    root = tmp_path / "checkpoints"
    torch.manual_seed(0)
    folder = save_pretrained(ToyRegressor(hidden=8), root / "toy.demo", name="toy.demo")
    monkeypatch.setenv("ZOO_CHECKPOINTS", str(root))
    entry = Entry(
        name="toy",
        paper=Paper(title="A toy", authors=("A. Author",), arxiv="0000.00000"),
        module="zoo.testing.ToyRegressor",
        datamodule="zoo.testing.ToyDataModule",
        summary="the core's toy regressor",
        weights=(
            Weights(
                tag="demo",
                description="toy regressor, untrained",
                recipe="toy/demo.yaml",
                files=file_hashes(folder),
                repo_id="zoo-test/toy-demo",
                revision="main",
                init_args={"hidden": 8},
                metrics=(Metric(name="mse", value=0.5, dataset="sin(2x)", paper=0.1),),
            ),
        ),
    )
    with temporary_entry(entry):
        yield entry
