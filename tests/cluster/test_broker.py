"""The broker feed ``/v1/nodes/watch`` with a real WebSocket client, checked against the rules of
the Go SDK's parser (pkg/discovery/broker_wire.go in lumen-sdk v1.4)."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from app import __version__
from app.core.cluster.broker import BrokerPortInUseError
from app.core.cluster.naming import auto_instance_name
from app.core.node import Node, NodeState
from tests.cluster.conftest import node_config, node_id, wait_for
from tests.core.conftest import free_port

pytestmark = pytest.mark.timeout(60)


def sdk_parse(raw: str) -> dict[str, tuple[str, int, dict[str, str]]]:
    """What the Go SDK accepts: type snapshot, non-empty unique node_id, host:port, txt v/runtime."""
    message = json.loads(raw)
    assert message["type"] == "snapshot"
    nodes: dict[str, tuple[str, int, dict[str, str]]] = {}
    for entry in message["nodes"]:
        assert set(entry) <= {"node_id", "address", "txt"}
        node = entry["node_id"].strip()
        assert node and node not in nodes
        host, _, port = entry["address"].rpartition(":")
        assert host.strip("[]") and 0 < int(port) <= 65535
        nodes[node] = (host.strip("[]"), int(port), entry.get("txt", {}))
    return nodes


async def _next(ws: Any, timeout: float = 8.0) -> dict[str, tuple[str, int, dict[str, str]]]:
    return sdk_parse(await asyncio.wait_for(ws.recv(), timeout))


async def test_watch_sends_a_snapshot_and_updates_when_peers_come_and_go(
    nodes: list[Node], mdns_type: str
) -> None:
    http_port = free_port()
    a = Node(node_config(mdns_type, http_port=http_port), node_id=node_id("a"))
    nodes.append(a)
    await a.start()
    a_name = auto_instance_name(node_id("a"))
    async with connect(f"ws://127.0.0.1:{http_port}/v1/nodes/watch") as ws:
        first = await _next(ws)
        assert first == {a_name: ("127.0.0.1", a.snapshot().port, {"v": __version__, "runtime": "onnxrt"})}

        b = Node(node_config(mdns_type), node_id=node_id("b"))
        nodes.append(b)
        await b.start()
        b_name = auto_instance_name(node_id("b"))
        seen = await _next(ws)
        while b_name not in seen:
            seen = await _next(ws)
        assert seen[b_name][:2] == ("127.0.0.1", b.snapshot().port)
        assert seen[b_name][2]["v"] == __version__
        assert a_name in seen

        await b.stop()
        while b_name in seen:
            seen = await _next(ws)
        assert set(seen) == {a_name}


async def test_other_paths_are_404_and_a_second_client_gets_the_same_snapshot(
    nodes: list[Node], mdns_type: str
) -> None:
    http_port = free_port()
    a = Node(node_config(mdns_type, http_port=http_port, mdns={"enabled": False}), node_id=node_id("a"))
    nodes.append(a)
    await a.start()
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"ws://127.0.0.1:{http_port}/v1/other"):
            pass
    assert info.value.response.status_code == 404
    assert b"/v1/nodes/watch" in info.value.response.body
    async with (
        connect(f"ws://127.0.0.1:{http_port}/v1/nodes/watch") as one,
        connect(f"ws://127.0.0.1:{http_port}/v1/nodes/watch/?x=1") as two,
    ):
        first, second = await _next(one), await _next(two)
        assert first == second and list(first) == [auto_instance_name(node_id("a"))]
        await wait_for(lambda: a.cluster.broker.connection_count == 2, what="two watchers")
    await wait_for(lambda: a.cluster.broker.connection_count == 0, what="watchers gone")


async def test_busy_http_port_is_a_clear_error_and_nothing_is_left_running(
    mdns_type: str,
) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    grpc_port = free_port()
    node = Node(node_config(mdns_type, port=grpc_port, http_port=port), node_id=node_id("a"))
    try:
        with pytest.raises(BrokerPortInUseError) as info:
            await node.start()
        message = str(info.value)
        assert f"port {port}" in message and "node.http_port" in message and "0 to turn" in message
        assert node.snapshot().state is NodeState.STOPPED and node.cluster is None
        # the gRPC port was released too
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", grpc_port))
    finally:
        blocker.close()
        await node.stop()


@pytest.fixture
def restore_logging():
    """``lumen-hub start`` configures the root logger (console + file): undo it afterwards."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def test_start_command_reports_the_busy_broker_port(
    isolated_home: dict[str, str],
    tmp_path,
    mdns_type: str,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    from app.main import main
    from tests.cluster.conftest import config_yaml

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        path = config_yaml(node_config(mdns_type, http_port=port), tmp_path / "config.yaml")
        assert main(["start", "--headless", "--config", str(path)]) == 1
        err = capsys.readouterr().err
        assert f"the broker feed port {port} on 127.0.0.1 (node.http_port) is not available" in err
    finally:
        blocker.close()
