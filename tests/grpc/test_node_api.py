"""lumen.node.v1: node info, the event stream, control calls and who may make them."""

from __future__ import annotations

import asyncio
import ipaddress

import grpc
import psutil
import pytest
import yaml

from app.core.config import load_config
from proto.gen.lumen.node.v1 import node_pb2 as pb
from proto.gen.lumen.node.v1 import node_pb2_grpc as pb_grpc
from services.api import ServiceState
from tests.grpc.conftest import target
from tests.support.fake_host import FakeHost
from tests.support.sdk_like_client import SdkLikeClient


async def _call(address: str, method: str, request: object, metadata: tuple = ()) -> object:
    async with grpc.aio.insecure_channel(address) as channel:
        return await getattr(pb_grpc.NodeStub(channel), method)(request, timeout=10, metadata=metadata)


async def _error(address: str, method: str, request: object, metadata: tuple = ()) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _call(address, method, request, metadata)
    return info.value


async def test_node_info_describes_node_machine_services_and_counters(make_node) -> None:
    host = FakeHost(("clip", "ocr"))
    host.set_state("ocr", ServiceState.DOWNLOADING, "fetching PP-OCRv5")
    node = await make_node(host, services=("clip", "ocr"))
    async with SdkLikeClient(target(node)) as client:
        await client.infer("semantic_text_embed", b"x", "text/plain")
    info = await _call(target(node), "GetNodeInfo", pb.GetNodeInfoRequest())
    assert info.node_id == node.snapshot().node_id and info.state == "running" and info.api_version == "1"
    assert (
        info.os
        and info.arch
        and info.cpu_count >= 1
        and info.memory_total_bytes > info.memory_available_bytes > 0
    )
    assert any(r.startswith("onnxruntime ") for r in info.runtimes)
    services = {s.name: s for s in info.services}
    assert services["clip"].state == "ready" and "semantic_text_embed" in services["clip"].tasks
    assert services["clip"].counters.ok == 1 and list(services["clip"].model_ids) == ["clip-fake-fake"]
    assert services["ocr"].state == "downloading" and services["ocr"].reason == "fetching PP-OCRv5"
    assert [(li.port, li.main) for li in info.listeners] == [(node.snapshot().port, True)]
    assert info.counters.total == 1 and info.uptime_s >= 0 and info.started_at > 0


async def test_watch_events_replays_a_snapshot_then_streams_changes(make_node) -> None:
    host = FakeHost(("clip", "face"))
    node = await make_node(host, services=("clip", "face"))
    async with grpc.aio.insecure_channel(target(node)) as channel:
        stream = pb_grpc.NodeStub(channel).WatchEvents(
            pb.WatchEventsRequest(initial_snapshot=True), timeout=10
        )
        snapshot = [await stream.read()]
        while snapshot[-1].WhichOneof("kind") != "snapshot_end":
            snapshot.append(await stream.read())
        host.set_state("face", ServiceState.LOADING)
        live = await asyncio.wait_for(stream.read(), 5)
        stream.cancel()
    kinds = [e.WhichOneof("kind") for e in snapshot]
    assert kinds == ["node_state", "service_status", "service_status", "snapshot_end"]
    assert all(e.from_snapshot for e in snapshot) and snapshot[0].node_state.state == "running"
    assert [e.service_status.status.name for e in snapshot[1:3]] == ["clip", "face"]
    assert live.topic == "service" and not live.from_snapshot
    assert (live.service_status.status.name, live.service_status.status.state) == ("face", "loading")


async def test_watch_events_filters_topics(make_node) -> None:
    host = FakeHost(("clip",))
    node = await make_node(host)
    async with grpc.aio.insecure_channel(target(node)) as channel:
        stream = pb_grpc.NodeStub(channel).WatchEvents(pb.WatchEventsRequest(topics=["service"]), timeout=10)
        await asyncio.sleep(0.2)
        from app.core.node import NodeState, NodeStateChanged

        node.bus.publish(NodeStateChanged(state=NodeState.RUNNING))  # filtered out
        host.set_state("clip", ServiceState.NOT_LOADED)
        event = await asyncio.wait_for(stream.read(), 5)
        stream.cancel()
    assert event.topic == "service" and event.service_status.status.state == "not_loaded"


async def test_enabling_a_service_saves_the_config_and_reconfigures_the_host(make_node) -> None:
    host = FakeHost(("clip",))
    node = await make_node(host, services=("clip",))
    reply = await _call(
        target(node), "SetServiceEnabled", pb.SetServiceEnabledRequest(service="ocr", enabled=True)
    )
    assert "ocr enabled" in reply.message
    saved = load_config(node.config_path)
    assert saved.services["ocr"].enabled and saved.services["ocr"].models["default"].model == "PP-OCRv5"
    async with SdkLikeClient(target(node)) as client:
        assert [c.service_name for c in client.capabilities] == ["clip", "ocr"]
        assert (await client.infer("ocr", b"img", "image/webp")).response.meta["service"] == "ocr"
    await _call(target(node), "SetServiceEnabled", pb.SetServiceEnabledRequest(service="clip", enabled=False))
    assert yaml.safe_load(node.config_path.read_text())["services"]["clip"]["enabled"] is False
    assert [s.name for s in host.statuses()] == ["ocr"]
    info = await _call(target(node), "GetNodeInfo", pb.GetNodeInfoRequest())
    assert {s.name: s.state for s in info.services} == {"ocr": "ready", "clip": "disabled"}


async def test_a_toggle_saves_only_the_change_and_concurrent_toggles_all_land(
    make_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMEN_NODE__QUEUE_SIZE", "7")  # an environment override of this run only
    node = await make_node(FakeHost(("clip",)), services=("clip",))
    node.port_override = node.snapshot().port  # as `lumen-hub start --port N` sets it
    before = yaml.safe_load(node.config_path.read_text())
    await asyncio.gather(node.set_service_enabled("ocr", True), node.set_service_enabled("face", True))
    saved = yaml.safe_load(node.config_path.read_text())
    assert saved["services"]["ocr"]["enabled"] and saved["services"]["face"]["enabled"]  # neither lost
    assert saved["node"]["queue_size"] == 64  # the default the file implies, not the override's 7
    assert saved["node"]["port"] == before["node"]["port"] == 0  # not the --port of this run
    assert node.config.node.queue_size == 7 and node.config.node.port == node.port_override  # still applied


async def test_bad_control_arguments_are_clear_errors(make_node) -> None:
    node = await make_node(FakeHost(("clip",)))
    error = await _error(
        target(node), "SetServiceEnabled", pb.SetServiceEnabledRequest(service="clipp", enabled=True)
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "built-in services: clip" in error.details()
    error = await _error(target(node), "StartDownload", pb.StartDownloadRequest(model="NoSuchModel"))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "'NoSuchModel' is not a model of an enabled service; configured: MobileCLIP2-S2" in error.details()
    error = await _error(target(node), "PauseDownload", pb.DownloadRequest(model="MobileCLIP2-S2"))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "no download of 'MobileCLIP2-S2' is queued or running" in error.details()


async def test_reload_refuses_an_invalid_file_and_keeps_the_old_config(make_node) -> None:
    node = await make_node(FakeHost(("clip",)))
    good = node.config_path.read_text()
    node.config_path.write_text(good.replace("runtime: onnx", "runtime: tensorflow"))
    error = await _error(target(node), "ReloadConfig", pb.ReloadConfigRequest())
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and "runtime" in error.details()
    assert node.config.services["clip"].models["default"].runtime == "onnx"
    node.config_path.write_text(good.replace("MobileCLIP2-S2", "MobileCLIP2-S4"))
    await _call(target(node), "ReloadConfig", pb.ReloadConfigRequest())
    assert node.config.services["clip"].models["default"].model == "MobileCLIP2-S4"


def _lan_address() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family.name == "AF_INET":
                ip = ipaddress.ip_address(address.address)
                if not ip.is_loopback and not ip.is_link_local:
                    return address.address
    return None


async def test_control_from_a_non_loopback_peer_needs_the_admin_token(make_node) -> None:
    lan = _lan_address()
    if lan is None:
        pytest.skip("this machine has no non-loopback IPv4 address to call the node through")
    node = await make_node(FakeHost(("clip",)), host=lan, admin_token="s3cret-token")
    address = f"{lan}:{node.snapshot().port}"
    request = pb.SetServiceEnabledRequest(service="ocr", enabled=True)
    denied = await _error(address, "SetServiceEnabled", request)
    assert denied.code() is grpc.StatusCode.PERMISSION_DENIED and "only from this machine" in denied.details()
    wrong = await _error(
        address, "ReloadConfig", pb.ReloadConfigRequest(), (("authorization", "Bearer nope"),)
    )
    assert wrong.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "ocr" not in load_config(node.config_path).services  # nothing changed
    reply = await _call(address, "SetServiceEnabled", request, (("authorization", "Bearer s3cret-token"),))
    assert "ocr enabled" in reply.message and load_config(node.config_path).services["ocr"].enabled
    info = await _call(address, "GetNodeInfo", pb.GetNodeInfoRequest())  # reading is open on the LAN
    assert info.node_id == node.snapshot().node_id
