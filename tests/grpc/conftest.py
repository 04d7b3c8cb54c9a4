from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from PIL import Image

from app.core.config import load_config
from app.core.node import Node
from tests.support.fake_host import FakeHost

ALL = ("clip", "bioclip", "face", "ocr")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_node_config(
    path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    services: tuple[str, ...] = ("clip",),
    admin_token: str | None = None,
    extra_ports: dict[str, int] | None = None,
) -> Path:
    lines = [
        "metadata:",
        '  version: "1.0"',
        "  region: other",
        f"  cache_dir: {path.parent / 'cache'}",
        "node:",
        f"  host: {host}",
        f"  port: {port}",
        "  http_port: 0",
        *([f"  admin_token: {admin_token}"] if admin_token else []),
        "  mdns:",
        "    enabled: false",
        "downloads:",
        "  auto_download: false",  # these nodes serve fake hosts; nothing to fetch
    ]
    lines.append("services:" if services else "services: {}")
    models = {"clip": "MobileCLIP2-S2", "bioclip": "bioclip-2", "face": "antelopev2", "ocr": "PP-OCRv5"}
    for name in services:
        lines += [f"  {name}:", "    enabled: true", "    models:", "      default:"]
        lines += [f"        model: {models[name]}", "        runtime: onnx"]
        if (extra_ports or {}).get(name):
            lines += ["    server:", f"      port: {extra_ports[name]}"]  # type: ignore[index]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


NodeFactory = Callable[..., "AsyncIterator[Node]"]


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """``await make_node(FakeHost(...), services=(...))`` → a started Node (on 127.0.0.1 unless host=)."""
    nodes: list[Node] = []

    async def factory(service_host: FakeHost | None = None, *, start: bool = True, **config: object) -> Node:
        folder = tmp_path / f"node{len(nodes)}"
        folder.mkdir()
        path = write_node_config(folder / "config.yaml", **config)  # type: ignore[arg-type]
        node = Node(load_config(path), node_id=f"{len(nodes):032x}", config_path=path, host=service_host)
        nodes.append(node)
        if start:
            await node.start()
        return node

    yield factory
    for node in nodes:
        await node.stop(grace=0.5)


def target(node: Node, index: int = 0) -> str:
    return f"127.0.0.1:{node.snapshot().listeners[index].port}"


def image_bytes(size: int = 64, fmt: str = "WEBP", noise: bool = False) -> bytes:
    if noise:
        import os

        image = Image.frombytes("RGB", (size, size), os.urandom(size * size * 3))
    else:
        image = Image.new("RGB", (size, size), (200, 30, 90))
    out = io.BytesIO()
    image.save(out, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return out.getvalue()


@pytest.fixture(scope="session")
def big_webp() -> bytes:
    """A real WebP image over 1 MiB (random pixels, lossless), so the SDK would chunk it."""
    data = image_bytes(720, "WEBP", noise=True)
    assert len(data) > 1024 * 1024
    return data
