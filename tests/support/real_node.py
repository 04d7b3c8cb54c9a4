"""A Lumen node built exactly as ``lumen-hub start`` builds it (``Node.from_config``: the real
ServiceHost, real onnxruntime) on tiny generated CLIP / BioCLIP model folders and the real face
(YuNet + MobileFaceNet) and OCR (PP-OCRv4) weights of ``../shared/testdata``.

Each real service is one entry of :data:`REAL_SERVICES`: a function that writes (or points at)
its model folder under ``<cache>/models`` and returns the service's config block;
:func:`write_real_config` and the interop plans pick it up by name.

    models = RealModels.write(tmp_path / "cache")
    config = write_real_config(tmp_path / "config.yaml", tmp_path / "cache", ("clip", "bioclip"))
    node = Node.from_config(load_config(config), node_id=..., config_path=config)
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from app.core.config import load_config
from app.core.config.model import NodeConfig
from app.core.node import Node
from tests.support.tiny_models import TinyClip, write_bioclip_model, write_clip_model

CLIP_LABELS = ("cat", "dog", "car", "tree", "beach")


@dataclass
class RealModels:
    """The tiny model folders written under ``<cache>/models`` (by service name)."""

    cache: Path
    folders: dict[str, TinyClip] = field(default_factory=dict)

    @property
    def models_dir(self) -> Path:
        return self.cache / "models"


def write_clip_folder(models_dir: Path, name: str = "tiny-clip") -> TinyClip:
    """The CLIP folder :data:`REAL_SERVICES` configures (with its ``ImageNet_tiny`` labels)."""
    return write_clip_model(models_dir, name=name, dataset="ImageNet_tiny", labels=CLIP_LABELS)


def _clip(models: RealModels, **overrides: object) -> dict[str, object]:
    name = str(overrides.pop("model", "tiny-clip"))
    if overrides.pop("write", True):
        models.folders["clip"] = write_clip_folder(models.models_dir, name)
    return {"model": name, "runtime": "onnx", "dataset": "ImageNet_tiny"}


def _bioclip(models: RealModels, **overrides: object) -> dict[str, object]:
    name = str(overrides.pop("model", "tiny-bioclip"))
    if overrides.pop("write", True):
        models.folders["bioclip"] = write_bioclip_model(models.models_dir, name=name)
    return {"model": name, "runtime": "onnx"}


def _face(models: RealModels, **overrides: object) -> dict[str, object]:
    """YuNet + MobileFaceNet from ../shared/testdata (the test skips when it is absent)."""
    from tests.support.model_dirs import build_yunet_mobilefacenet_dir

    name = str(overrides.pop("model", "yunet-mobilefacenet"))
    if overrides.pop("write", True):
        build_yunet_mobilefacenet_dir(models.models_dir / name)
    return {"model": name, "runtime": "onnx"}


def _ocr(models: RealModels, **overrides: object) -> dict[str, object]:
    """PP-OCRv4 det/cls/rec + its dictionary from ../shared/testdata."""
    from tests.support.model_dirs import build_ppocr_dir

    name = str(overrides.pop("model", "pp-ocrv4"))
    if overrides.pop("write", True):
        build_ppocr_dir(models.models_dir / name)
    return {"model": name, "runtime": "onnx"}


# service name -> writer of its model folder returning the config of its default model
REAL_SERVICES: dict[str, Callable[..., dict[str, object]]] = {
    "clip": _clip,
    "bioclip": _bioclip,
    "face": _face,
    "ocr": _ocr,
}


def write_real_config(
    path: Path,
    models: RealModels,
    services: Sequence[str],
    *,
    port: int = 0,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
    preload: Sequence[str] = (),
) -> Path:
    """A node config serving ``services`` on 127.0.0.1:``port`` (mDNS off, no automatic model
    downloads where the config has them: a missing folder stays missing). ``overrides[name]``
    goes to the service's writer (``model=`` another folder name, ``write=False`` leaves the
    folder missing)."""
    lines = [
        "metadata:",
        '  version: "1.0"',
        "  region: other",
        f"  cache_dir: {models.cache}",
        "node:",
        "  host: 127.0.0.1",
        f"  port: {port}",
        "  http_port: 0",
        "  mdns:",
        "    enabled: false",
    ]
    if "downloads" in NodeConfig.model_fields:  # the download manager's section (issue 5)
        lines += ["downloads:", "  auto_download: false"]
    lines.append("services:" if services else "services: {}")
    for name in services:
        block = REAL_SERVICES[name](models, **dict((overrides or {}).get(name, {})))
        inline = ", ".join(f"{k}: {v}" for k, v in block.items())
        lines += [f"  {name}:", "    enabled: true"]
        if name in preload:
            lines.append("    preload: true")
        lines += ["    models:", f"      default: {{{inline}}}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def started_real_nodes(
    root: Path, *, id_base: int = 0
) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """``start(services, **config)`` writes the real tiny models into a cache of their own and a
    config under ``root``, starts a Node on it and returns it; every node is stopped at exit."""
    nodes: list[Node] = []

    async def start(services: tuple[str, ...], **config: object) -> Node:
        n = len(nodes)
        path = write_real_config(root / f"config{n}.yaml", RealModels(root / f"cache{n}"), services, **config)  # type: ignore[arg-type]
        node = Node.from_config(load_config(path), node_id=f"{n + id_base:032x}", config_path=path)
        nodes.append(node)
        await node.start()
        return node

    try:
        yield start
    finally:
        for node in nodes:
            await node.stop(grace=0.5)
