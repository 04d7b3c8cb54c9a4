"""The Node composes the parts; start/stop are idempotent and observable through events."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.core.config import load_config
from app.core.grpc.server import PortInUseError
from app.core.node import Node, NodeState, NodeStateChanged
from tests.core.conftest import free_port, write_config


def _node(tmp_path: Path, port: int) -> Node:
    cfg = load_config(write_config(tmp_path / "config.yaml", port, tmp_path / "cache"))
    return Node(cfg, node_id="0" * 32)


async def _health(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        return reply.status


async def test_start_binds_at_once_and_serves_health(tmp_path: Path) -> None:
    port = free_port()
    node = _node(tmp_path, port)
    await node.start()
    try:
        snap = node.snapshot()
        assert snap.state is NodeState.RUNNING and snap.port == port
        assert await _health(port) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await node.stop()
    assert node.snapshot().state is NodeState.STOPPED


async def test_start_and_stop_are_idempotent_and_emit_state_events(tmp_path: Path) -> None:
    node = _node(tmp_path, free_port())
    seen: list[NodeState] = []

    async def watch() -> None:
        async for event in node.events():
            if isinstance(event, NodeStateChanged):
                seen.append(event.state)
                if event.state is NodeState.STOPPED:
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    await node.start()
    await node.start()
    await node.stop()
    await node.stop()
    await asyncio.wait_for(watcher, 5)
    assert seen == [NodeState.STARTING, NodeState.RUNNING, NodeState.STOPPING, NodeState.STOPPED]


async def test_a_failing_stop_step_still_stops_everything_else(tmp_path: Path) -> None:
    from tests.support.fake_host import FakeHost

    class BrokenStopHost(FakeHost):
        async def stop(self, grace_s: float = 10.0) -> None:
            raise RuntimeError("the host failed to stop")

    port = free_port()
    cfg = load_config(write_config(tmp_path / "config.yaml", port, tmp_path / "cache"))
    node = Node(cfg, node_id="0" * 32, host=BrokenStopHost(("clip",)))
    await node.start()
    await node.stop()
    assert node.snapshot().state is NodeState.STOPPED
    with pytest.raises(grpc.aio.AioRpcError):  # the listener was closed before the host step
        await _health(port)
    await node.start()  # and it can start again
    assert await _health(port) == health_pb2.HealthCheckResponse.SERVING
    await node.stop()


async def test_snapshot_is_immutable(tmp_path: Path) -> None:
    node = _node(tmp_path, free_port())
    snap = node.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.state = NodeState.RUNNING  # type: ignore[misc]


async def test_occupied_port_raises_a_clear_error_and_leaves_node_stopped(tmp_path: Path) -> None:
    port = free_port()
    first = _node(tmp_path / "a", port) if (tmp_path / "a").mkdir() is None else None
    second = _node(tmp_path / "b", port) if (tmp_path / "b").mkdir() is None else None
    assert first and second
    await first.start()
    try:
        with pytest.raises(PortInUseError) as info:
            await second.start()
        assert f"port {port}" in str(info.value)
        assert second.snapshot().state is NodeState.STOPPED
        assert await _health(port) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await first.stop()
