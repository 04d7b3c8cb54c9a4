"""Helpers for cluster tests: real nodes on loopback, each test run on its own mDNS type so that
other test runs on this machine (and the real ``_lumen._tcp`` LAN) never leak into a table."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.core.config import NodeConfig, build_config
from app.core.node import Node
from tests.core.conftest import ROOT, free_port, isolated_home  # noqa: F401 (a fixture, shared)
from tests.grpc.conftest import big_webp  # noqa: F401 (a fixture, shared)

FAST_CLUSTER = {"probe_interval_s": 0.3, "probe_timeout_s": 1.0, "expiry_s": 1.5}


def random_type() -> str:
    return f"_lt{secrets.token_hex(4)}._tcp.local."


@pytest.fixture
def mdns_type() -> str:
    return random_type()


def node_config(
    mdns_type: str,
    *,
    port: int | None = None,
    http_port: int = 0,
    host: str = "127.0.0.1",
    mdns: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    services: dict[str, Any] | None = None,
    node: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> NodeConfig:
    """``node``: more ``node.*`` settings (``forwarding``, ``advertise_cluster``); ``extra``: more
    top-level sections (``metadata``, ``downloads``)."""
    data: dict[str, Any] = {
        "node": {
            "host": host,
            "port": port if port is not None else free_port(),
            "http_port": http_port,
            "mdns": {"types": [mdns_type], "interface_poll_s": 1.0, **(mdns or {})},
            "cluster": {**FAST_CLUSTER, **(cluster or {})},
            **(node or {}),
        },
        "services": services or {},
        **(extra or {}),
    }
    return build_config(data)


CLIP_AND_FACE = {
    "clip": {"models": {"default": {"model": "MobileCLIP2-S2", "runtime": "onnx"}}},
    "face": {"models": {"default": {"model": "antelopev2", "runtime": "onnx"}}},
}


def config_yaml(config: NodeConfig, path: Path) -> Path:
    from app.core.config import save_config

    save_config(config, path)
    return path


async def wait_for(predicate: Callable[[], Any], timeout: float = 8.0, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        await asyncio.sleep(0.03)


def peer_ids(node: Node) -> set[str]:
    return {p.node_id for p in node.snapshot().peers}


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    """Nodes a test starts are appended here and stopped afterwards, whatever happens."""
    started: list[Node] = []
    yield started
    await asyncio.gather(*(n.stop(grace=1.0) for n in started), return_exceptions=True)


def node_id(tag: str) -> str:
    """A valid 32-hex node id that shows which test node it is (``"a"`` → ``aaaa...``)."""
    return (tag * 32)[:32] if all(c in "0123456789abcdef" for c in tag) else secrets.token_hex(16)


def subprocess_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
        env[key] = str(home / key.lower())
    env["PYTHONPATH"] = str(ROOT)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("LUMEN_CONFIG", None)
    return env


PYTHON = sys.executable


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "home"
    path.mkdir()
    yield path
