"""Shared pieces of the download tests: generated repositories, fake hubs, configs, a runner."""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.core.config import NodeConfig, build_config
from app.core.downloads import DownloadManager, DownloadResult, ModelRequest, requests_from_config
from app.core.events import DownloadProgress, FileProgress
from tests.support.fake_hubs import FakeHuggingFace, FakeModelScope

MODEL = "TestCLIP"
HF_REPO = f"Lumilio-Photos/{MODEL}"
MS_REPO = f"LumilioPhotos/{MODEL}"

ONNX_FP16 = ["onnx/text.fp16.onnx", "onnx/vision.fp16.onnx"]
ONNX_FP32 = ["onnx/text.fp32.onnx", "onnx/vision.fp32.onnx"]
RK3588 = ["rknn/rk3588/text.fp16.rknn", "rknn/rk3588/vision.fp16.rknn"]
RK3566 = ["rknn/rk3566/text.fp16.rknn", "rknn/rk3566/vision.fp16.rknn"]
SUPPORT = ["open_clip_config.json", "tokenizer.json"]
DATASET = "ImageNet_1k.npz"


def npz_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    np.savez(buffer, labels=np.array([f"class {i}" for i in range(50)]), embeddings=rng.random((50, 16)))
    return buffer.getvalue()


def clip_repo(
    name: str = MODEL, *, version: str = "1.0.0", seed: int = 1, big: int = 600_000
) -> dict[str, bytes]:
    """A CLIP-like repository: ONNX at two precisions, RKNN for two SoCs, torch, a dataset."""
    rng = random.Random(seed)

    def blob(size: int) -> bytes:
        return rng.randbytes(size)

    info = {
        "name": name,
        "version": version,
        "description": "a generated test model",
        "model_type": "clip",
        "embedding_dim": 16,
        "runtimes": {
            "torch": {"available": True, "files": ["torch/model.pt"]},
            "onnx": {"available": True, "files": ONNX_FP32 + ONNX_FP16},
            "rknn": {
                "available": True,
                "devices": ["rk3566", "rk3588"],
                "files": {"rk3566": RK3566, "rk3588": RK3588},
            },
        },
        "datasets": {"ImageNet_1k": DATASET},
        "metadata": {"license": "MIT", "author": "tests"},
    }
    return {
        "model_info.json": json.dumps(info, indent=1).encode(),
        "README.md": b"# generated\n",
        ".gitattributes": b"*.onnx filter=lfs diff=lfs merge=lfs -text\n",
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"vocab": {"a": 1, "b": 2}}}).encode(),
        "open_clip_config.json": json.dumps({"model_cfg": {"embed_dim": 16}}).encode(),
        "onnx/vision.fp32.onnx": blob(big),
        "onnx/vision.fp16.onnx": blob(big // 2),
        "onnx/text.fp32.onnx": blob(big * 2 // 3),
        "onnx/text.fp16.onnx": blob(big // 3),
        "rknn/rk3588/vision.fp16.rknn": blob(big // 3),
        "rknn/rk3588/text.fp16.rknn": blob(big // 4),
        "rknn/rk3566/vision.fp16.rknn": blob(big // 3),
        "rknn/rk3566/text.fp16.rknn": blob(big // 4),
        "torch/model.pt": blob(big),
        DATASET: npz_bytes(seed),
    }


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hf() -> Iterator[FakeHuggingFace]:
    with FakeHuggingFace() as hub:
        yield hub  # type: ignore[misc]


@pytest.fixture
def ms() -> Iterator[FakeModelScope]:
    with FakeModelScope() as hub:
        yield hub  # type: ignore[misc]


CLIP_FP16 = {"default": {"model": MODEL, "runtime": "onnx", "precision": "fp16", "dataset": "ImageNet_1k"}}


def config_data(
    tmp_path: Path,
    *,
    hf: FakeHuggingFace | None = None,
    ms: FakeModelScope | None = None,
    region: str = "other",
    models: Mapping[str, Any] | None = None,
    services: Mapping[str, Any] | None = None,
    **downloads: Any,
) -> dict[str, Any]:
    """Config data whose hubs are the fakes; a hub not given points at a closed port."""
    dead = "http://127.0.0.1:9"  # discard port: connection refused
    return {
        "metadata": {"region": region, "cache_dir": str(tmp_path / "cache")},
        "node": {"host": "127.0.0.1", "port": 0, "http_port": 0, "mdns": {"enabled": False}},
        "downloads": {
            "endpoints": {"huggingface": hf.url if hf else dead, "modelscope": ms.url if ms else dead},
            "retries": 2,
            "retry_backoff_s": 0.01,
            "max_retry_wait_s": 5,
            "connect_timeout_s": 2,
            "read_timeout_s": 5,
            "keep_free_mb": 0,
            **downloads,
        },
        "services": dict(services)
        if services is not None
        else {"clip": {"models": dict(models or CLIP_FP16)}},
    }


def make_config(tmp_path: Path, **kwargs: Any) -> NodeConfig:
    return build_config(config_data(tmp_path, **kwargs))


def write_config(tmp_path: Path, **kwargs: Any) -> Path:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config_data(tmp_path, **kwargs)), encoding="utf-8")
    return path


@dataclass
class Run:
    results: list[DownloadResult]
    events: list[object] = field(default_factory=list)

    @property
    def result(self) -> DownloadResult:
        assert len(self.results) == 1
        return self.results[0]

    def progress(self, model: str = MODEL) -> list[DownloadProgress]:
        return [e for e in self.events if isinstance(e, DownloadProgress) and e.model == model]

    def files(self, model: str = MODEL) -> list[FileProgress]:
        return [e for e in self.events if isinstance(e, FileProgress) and e.model == model]


async def run_download(
    config: NodeConfig, requests: list[ModelRequest] | None = None, *, force: bool = False
) -> Run:
    manager = DownloadManager(config, progress_interval_s=0.02)
    run = Run([])
    manager.add_listener(run.events.append)
    try:
        run.results = await manager.download(requests or requests_from_config(config), force=force)
    finally:
        await manager.close()
    return run


def cached(config: NodeConfig, model: str = MODEL) -> dict[str, bytes]:
    """Every file of the model's cache folder."""
    root = config.model_dir(model)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class Watcher:
    """Collects a manager's events; ``await until(pred)`` waits for one that matches."""

    def __init__(self, manager: DownloadManager) -> None:
        import asyncio

        self.events: list[object] = []
        self._changed = asyncio.Event()
        manager.add_listener(self._on_event)

    def _on_event(self, event: object) -> None:
        self.events.append(event)
        self._changed.set()

    async def until(self, predicate: Any, timeout: float = 10.0) -> object:
        import asyncio

        async def wait() -> object:
            seen = 0
            while True:
                for event in self.events[seen:]:
                    if predicate(event):
                        return event
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)


def repo_state(event: object, state: Any, model: str = MODEL) -> bool:
    return isinstance(event, DownloadProgress) and event.model == model and event.state is state


def file_bytes_at_least(path: str, count: int) -> Any:
    def check(event: object) -> bool:
        return isinstance(event, FileProgress) and event.path == path and event.bytes_done >= count

    return check
