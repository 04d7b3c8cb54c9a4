"""The Node downloads missing models in the background after its listeners are up, holds the
waiting services DOWNLOADING (then releases them, or marks them FAILED), and stops cleanly."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.core.events import DownloadProgress, DownloadState, FileProgress
from app.core.node import Node, NodeState
from services.api import ServiceState
from tests.downloads.conftest import HF_REPO, MODEL, clip_repo, make_config
from tests.support.fake_host import FakeHost
from tests.support.fake_hubs import Fault

VISION = "onnx/vision.fp16.onnx"


def _node(tmp_path, hf, **downloads) -> tuple[Node, FakeHost, list]:
    config = make_config(tmp_path, hf=hf, **downloads)
    node = Node(config, node_id="1" * 32)
    host = FakeHost(["clip"])
    statuses: list = []
    host.add_status_listener(statuses.append)
    node.host = host  # type: ignore[attr-defined] # the service host a later part of the node adds
    return node, host, statuses


async def _until(node: Node, predicate, timeout: float = 15.0, kind: type = DownloadProgress):
    async def wait():
        async for event in node.events():
            if isinstance(event, kind) and predicate(event):
                return event
        raise AssertionError("the bus closed")

    return await asyncio.wait_for(wait(), timeout)


async def _health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return reply.status


async def test_start_downloads_missing_models_while_serving_health(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    hf.inject(VISION, Fault(rate_bps=600_000))
    node, host, statuses = _node(tmp_path, hf)
    downloading = asyncio.ensure_future(_until(node, lambda e: e.state is DownloadState.DOWNLOADING))
    done = asyncio.ensure_future(_until(node, lambda e: e.state is DownloadState.DONE))
    await asyncio.sleep(0)
    await node.start()
    try:
        event = await downloading
        assert node.snapshot().state is NodeState.RUNNING
        assert await _health(node.snapshot().port) == health_pb2.HealthCheckResponse.SERVING
        assert host.statuses()[0].state is ServiceState.DOWNLOADING
        assert MODEL in host.statuses()[0].reason
        assert event.services == ("clip",)
        final = await done
        assert final.bytes_done == final.bytes_total > 0
        assert [p.state for p in node.snapshot().downloads] == [DownloadState.DONE]
        assert host.statuses()[0].state is ServiceState.READY  # the hold is released
        assert "downloads:auto" not in node.tasks.names
    finally:
        await node.stop()
    states = [s.state for s in statuses]
    assert states == [ServiceState.DOWNLOADING, ServiceState.READY]  # one hold, one release


async def test_a_failed_download_marks_the_service_failed_with_the_reason(tmp_path, hf):
    node, host, _ = _node(tmp_path, hf)  # no repository on the hub
    await node.start()
    try:
        await _until(node, lambda e: e.state is DownloadState.FAILED)
        status = host.statuses()[0]
        assert status.state is ServiceState.FAILED
        assert f"{MODEL}: every source failed" in status.reason and HF_REPO in status.reason
    finally:
        await node.stop()


async def test_no_download_when_auto_download_is_off_or_the_model_is_present(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    node, _, _ = _node(tmp_path, hf, auto_download=False)
    await node.start()
    await asyncio.sleep(0.2)
    await node.stop()
    assert hf.log == [] and node.snapshot().downloads == ()

    await node.start_download()  # the controller command, without a running node
    await _until(node, lambda e: e.state is DownloadState.DONE)
    hf.clear_log()
    again, _, _ = _node(tmp_path, hf)
    await again.start()
    await asyncio.sleep(0.3)
    await again.stop()
    assert hf.log == [], "a complete model is not downloaded again"
    await node.downloads.close()


async def test_controller_commands(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    hf.inject(VISION, Fault(rate_bps=300_000, times=3))
    node, host, _ = _node(tmp_path, hf, auto_download=False)
    with pytest.raises(
        ValueError, match="'Other' is not a model of an enabled service; configured: TestCLIP"
    ):
        await node.start_download("Other")
    with pytest.raises(ValueError, match="no download of 'TestCLIP'"):
        await node.pause_download(MODEL)
    await node.start()
    try:
        await node.start_download(MODEL)
        await _until(node, lambda e: e.path == VISION and e.bytes_done > 50_000, kind=FileProgress)
        await node.pause_download(MODEL)
        await _until(node, lambda e: e.state is DownloadState.PAUSED)
        assert host.statuses()[0].reason.startswith("download paused")
        paused_at = node.downloads.cache.staging(MODEL).partial(VISION).stat().st_size
        await node.resume_download(MODEL)
        await _until(
            node, lambda e: e.path == VISION and e.bytes_done > paused_at + 30_000, kind=FileProgress
        )
        await node.cancel_download(MODEL)
        await _until(node, lambda e: e.state is DownloadState.CANCELLED)
        assert host.statuses()[0].state is ServiceState.FAILED
        await node.start_download(MODEL)
        await _until(node, lambda e: e.state is DownloadState.DONE)
        assert host.statuses()[0].state is ServiceState.READY
        starts = [e.range_start for e in hf.data_requests(VISION)]
        assert starts[0] is None and all(starts[1:]) and len(starts) == 3  # pause and cancel kept the bytes
    finally:
        await node.stop()


async def test_stop_cancels_downloads_within_the_budget_and_keeps_partials(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    hf.inject(VISION, Fault(stall_after=20_000, stall_s=30))
    node, host, _ = _node(tmp_path, hf, read_timeout_s=30)
    await node.start()
    await _until(node, lambda e: e.state is DownloadState.DOWNLOADING and e.bytes_done >= 20_000)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await node.stop(grace=3.0)
    assert loop.time() - started < 3.5
    assert node.snapshot().downloads[-1].state is DownloadState.CANCELLED
    partial = node.config.model_dir(MODEL).parent / ".staging" / MODEL / (VISION + ".partial")
    assert partial.stat().st_size == 20_000
    assert host.statuses()[0].state is ServiceState.DOWNLOADING  # stopping changes no hold
