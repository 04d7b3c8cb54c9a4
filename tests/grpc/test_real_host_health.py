"""Per-service grpc.health.v1 names and status codes with the real ServiceHost (tiny models,
real onnxruntime), on a node built as ``lumen-hub start`` builds it (``Node.from_config``).

The rule is app/core/grpc/health_policy.py: NOT_LOADED/READY (and a LOADING caused by demand)
are SERVING; DOWNLOADING, FAILED, DISABLED and a preload still warming up are NOT_SERVING.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.core.grpc.server import GrpcListener
from app.core.node import Node
from services.api import ServiceState
from tests.support.real_node import started_real_nodes, write_clip_folder
from tests.support.sdk_like_client import SdkLikeClient
from tests.support.tiny_models import image_bytes

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def real_node(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    async with started_real_nodes(tmp_path) as start:
        yield start


def _target(node: Node) -> str:
    return f"127.0.0.1:{node.snapshot().port}"


async def _health(node: Node, name: str) -> int:
    async with grpc.aio.insecure_channel(_target(node)) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=5
        )
    return reply.status


async def _eventually(node: Node, name: str, status: int, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (seen := await _health(node, name)) != status:
        assert asyncio.get_running_loop().time() < deadline, f"{name}: health {seen}, wanted {status}"
        await asyncio.sleep(0.02)


def _state(node: Node, name: str) -> ServiceState:
    assert node.host is not None
    return next(s.state for s in node.host.statuses() if s.name == name)


async def _code(coro) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await coro
    return info.value


async def test_a_service_with_files_is_serving_before_and_while_its_model_loads_on_demand(
    real_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    decisions: list[tuple[str, bool, ServiceState]] = []
    original = GrpcListener.set_serving
    node_box: list[Node] = []

    async def spy(self: GrpcListener, name: str, serving: bool) -> None:
        if node_box:
            decisions.append((name, serving, _state(node_box[0], name)))
        await original(self, name, serving)

    monkeypatch.setattr(GrpcListener, "set_serving", spy)
    node = await real_node(("clip",))
    node_box.append(node)
    assert _state(node, "clip") is ServiceState.NOT_LOADED
    assert await _health(node, "") == SERVING and await _health(node, "clip") == SERVING
    async with SdkLikeClient(_target(node)) as client:
        reply = await client.infer("semantic_text_embed", b"a photo of a cat", "text/plain")
    assert reply.result["dim"] == 8 and _state(node, "clip") is ServiceState.READY
    await asyncio.sleep(0.05)  # let the spawned health updates run
    clip = [(serving, state) for name, serving, state in decisions if name == "clip"]
    assert {state for _, state in clip} >= {ServiceState.LOADING, ServiceState.READY}
    assert all(serving for serving, _ in clip), clip  # never NOT_SERVING on a demand load


async def test_a_preloaded_service_is_not_serving_until_its_model_is_ready(
    real_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    decisions: list[tuple[bool, ServiceState]] = []
    original = GrpcListener.set_serving

    async def spy(self: GrpcListener, name: str, serving: bool) -> None:
        if name == "clip" and node_box:
            decisions.append((serving, _state(node_box[0], name)))
        await original(self, name, serving)

    node_box: list[Node] = []
    monkeypatch.setattr(GrpcListener, "set_serving", spy)
    node = await real_node(("clip",), preload=("clip",))
    node_box.append(node)
    await _eventually(node, "clip", SERVING)
    assert _state(node, "clip") is ServiceState.READY
    await asyncio.sleep(0.05)
    assert decisions and decisions[-1] == (True, ServiceState.READY)
    assert all(state is ServiceState.READY for serving, state in decisions if serving), decisions


async def test_a_missing_model_folder_is_failed_not_serving_then_serving_once_the_files_arrive(
    real_node,
) -> None:
    node = await real_node(("clip", "bioclip"), overrides={"clip": {"model": "later-clip", "write": False}})
    assert _state(node, "clip") is ServiceState.FAILED
    assert await _health(node, "clip") == NOT_SERVING and await _health(node, "bioclip") == SERVING
    async with SdkLikeClient(_target(node)) as client:
        assert [c.service_name for c in client.capabilities] == ["clip", "bioclip"]
        error = await _code(client.infer("semantic_text_embed", b"a cat", "text/plain"))
        # FAILED_PRECONDITION, never UNAVAILABLE: the SDK counts UNAVAILABLE against the whole node
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and "clip failed" in error.details()
        ok = await client.infer("bioclip_classify", image_bytes(fmt="WEBP"), "image/webp", {"top_k": "2"})
        assert len(ok.result["labels"]) == 2
        assert node.host is not None
        write_clip_folder(node.config.model_dir("later-clip").parent, "later-clip")
        node.host.hold("clip", None)  # what the download manager does when the files are in place
        await _eventually(node, "clip", SERVING)
        assert _state(node, "clip") is ServiceState.NOT_LOADED
        reply = await client.infer("semantic_text_embed", b"a cat", "text/plain")
    assert reply.result["model_id"] == "later-clip"


async def test_a_failed_service_rechecks_its_files_on_the_next_request(real_node) -> None:
    node = await real_node(("clip",), overrides={"clip": {"model": "copied-clip", "write": False}})
    async with SdkLikeClient(_target(node)) as client:
        error = await _code(client.infer("semantic_text_embed", b"a dog", "text/plain"))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        write_clip_folder(node.config.model_dir("copied-clip").parent, "copied-clip")  # copied by hand
        reply = await client.infer("semantic_text_embed", b"a dog", "text/plain")
    assert reply.result["model_id"] == "copied-clip"
    await _eventually(node, "clip", SERVING)


async def test_downloading_is_unavailable_and_not_serving_then_serving(real_node) -> None:
    node = await real_node(("clip", "bioclip"))
    assert node.host is not None
    node.host.hold("clip", ServiceState.DOWNLOADING, "fetching tiny-clip")
    await _eventually(node, "clip", NOT_SERVING)
    async with SdkLikeClient(_target(node)) as client:
        error = await _code(client.infer("semantic_text_embed", b"a car", "text/plain"))
        assert error.code() is grpc.StatusCode.UNAVAILABLE and "downloading" in error.details()
        node.host.hold("clip", None)
        await _eventually(node, "clip", SERVING)
        assert (await client.infer("semantic_text_embed", b"a car", "text/plain")).result["dim"] == 8


async def test_a_disabled_service_is_not_serving_and_not_found(real_node) -> None:
    node = await real_node(("clip", "bioclip"))
    await node.set_service_enabled("bioclip", False)
    await _eventually(node, "bioclip", NOT_SERVING)
    assert await _health(node, "clip") == SERVING
    async with SdkLikeClient(_target(node)) as client:
        assert [c.service_name for c in client.capabilities] == ["clip"]
        error = await _code(client.infer("bioclip_classify", image_bytes(fmt="WEBP"), "image/webp"))
    assert error.code() is grpc.StatusCode.NOT_FOUND
