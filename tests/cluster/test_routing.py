"""Routing between real nodes on loopback: a task this node cannot serve is answered by a peer
(through this node), load spreads, failover, the hop marker, forwarding off, deadlines.

Every node hosts a FakeHost whose results carry its tag (``result["node"]``), so a test sees
which node answered; the nodes find each other with real zeroconf on a random service type.
"""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import pytest
from google.protobuf import empty_pb2

from app.core.cluster.router import HOP_KEY, ORIGIN_KEY, SERVED_BY_KEY
from app.core.node import Node
from services.api import InferenceRequest, ServiceState
from tests.cluster.conftest import wait_for
from tests.cluster.routing_support import (
    TEXT_TASK,
    LazyHost,
    RefusingHost,
    client,
    host,
    routable,
    start_node,
)
from tests.support.fake_host import FakeHost

pytestmark = pytest.mark.timeout(60)

IMAGE_TASK = "semantic_image_embed"


async def test_a_task_only_b_hosts_is_answered_through_a(nodes: list[Node], mdns_type: str) -> None:
    a = await start_node(nodes, mdns_type, "a", ["ocr"])
    b = await start_node(nodes, mdns_type, "b", ["clip"])
    host(b).services["clip"].partials = 2  # partial results are relayed too
    await routable(a)
    async with client(a) as sdk:
        assert sdk.services_for(TEXT_TASK) == []  # a does not advertise b's services by default
        reply = await sdk.infer(TEXT_TASK, b"a red fox", "text/plain")
    b_id, a_id = b.snapshot().node_id, a.snapshot().node_id
    assert reply.result["node"] == "B" and reply.result["model_id"] == "clip-fake-B"
    assert [m.is_final for m in reply.messages] == [False, False, True]
    assert [m.result_mime for m in reply.messages] == ["application/json;schema=embedding_v1"] * 3
    for message in reply.messages:  # b's meta unchanged, plus who served it
        assert message.meta["node_id"] == b_id and message.meta[SERVED_BY_KEY] == b_id
        assert message.meta["service"] == "clip" and message.meta["task"] == TEXT_TASK
    (call,) = host(b).services["clip"].calls
    assert call.payload == b"a red fox" and call.mime == "text/plain"
    assert call.meta[HOP_KEY] == "1" and call.meta[ORIGIN_KEY] == a_id
    # the counters and the peer table's in-flight count are back to rest
    counters = a.counters.node
    await wait_for(lambda: counters.in_flight == 0, what="a's handler done")
    assert (counters.total, counters.ok, counters.failed) == (1, 1, 0)
    assert a.cluster.table.get(b_id).in_flight == 0
    assert a.cluster.router.forwarded == 1
    assert host(a).services["ocr"].calls == []


async def a_with_two_clip_peers(
    nodes: list[Node], mdns_type: str, *, delay_s: float
) -> tuple[Node, Node, Node]:
    """Node a hosting nothing, b and c hosting clip with ``delay_s`` per request, a routing to both."""
    a = await start_node(nodes, mdns_type, "a")
    b = await start_node(nodes, mdns_type, "b", ["clip"])
    c = await start_node(nodes, mdns_type, "c", ["clip"])
    for node in (b, c):
        host(node).services["clip"].delay_s = delay_s
    await routable(a, peers=2)
    return a, b, c


async def test_load_spreads_over_the_peers_offering_the_task(nodes: list[Node], mdns_type: str) -> None:
    a, b, c = await a_with_two_clip_peers(nodes, mdns_type, delay_s=1.0)
    async with client(a) as sdk:
        replies = await asyncio.gather(
            *(sdk.infer(TEXT_TASK, f"q{i}".encode(), "text/plain") for i in range(6))
        )
    answered = [r.result["node"] for r in replies]
    # in-flight aware: each new request goes to the peer with fewer outstanding requests
    assert sorted(answered) == ["B", "B", "B", "C", "C", "C"], answered
    assert all(p.in_flight == 0 for p in a.cluster.table.peers())


async def test_stopping_the_serving_peer_mid_request_fails_over(nodes: list[Node], mdns_type: str) -> None:
    a, b, c = await a_with_two_clip_peers(nodes, mdns_type, delay_s=1.5)
    async with client(a) as sdk:
        pending = asyncio.ensure_future(sdk.infer(TEXT_TASK, b"failover", "text/plain"))
        serving = await wait_for(
            lambda: next((n for n in (b, c) if host(n).services["clip"].in_flight), None),
            what="the request at b or c",
        )
        other = c if serving is b else b
        gone_at = f"127.0.0.1:{serving.snapshot().port}"
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        await serving.stop(grace=0)  # mid-request: its calls are cut, no time for a goodbye
        reply = await pending
    assert reply.result["node"] == host(other).tag  # the client's request still succeeded
    assert host(serving).services["clip"].cancelled == 1
    assert a.cluster.router.failovers == 1
    gone = serving.snapshot().node_id
    # cooling down until it leaves the table (then its cooldown goes with it)
    assert a.cluster.router.cooling(gone) or a.cluster.table.get(gone) is None
    expiry = a.config.node.cluster.expiry_s
    other_at = f"127.0.0.1:{other.snapshot().port}"
    await wait_for(lambda: a.cluster.table.get(gone) is None, timeout=expiry + 2.0, what="the peer leaves")
    assert loop.time() - stopped_at <= expiry + 2.0
    # the pooled channel to the peer that left is closed; the one to the other is kept
    await wait_for(lambda: gone_at not in a.cluster.router.channels.targets(), what="its channel closed")
    assert a.cluster.router.channels.targets() == [other_at]


async def test_a_peer_answering_unavailable_is_skipped_then_cooled_down(
    nodes: list[Node], mdns_type: str
) -> None:
    cluster = {"forward_cooldown_s": 0.6}
    a = await start_node(nodes, mdns_type, "a", cluster=cluster)
    b = await start_node(nodes, mdns_type, "b", host=RefusingHost(["clip"], tag="B"))
    c = await start_node(nodes, mdns_type, "c", host=LazyHost(["clip"], tag="C"))
    await routable(a, peers=2)
    # b says READY, c NOT_LOADED: b is preferred, refuses, c answers
    assert [p.peer.node_id for p in a.cluster.router.candidates(TEXT_TASK)][0] == b.snapshot().node_id
    refusing = b.host
    assert isinstance(refusing, RefusingHost)
    async with client(a) as sdk:
        for i in range(3):
            reply = await sdk.infer(TEXT_TASK, f"q{i}".encode(), "text/plain")
            assert reply.result["node"] == "C"
        assert refusing.refused == 1  # cooling down: not asked again
        await asyncio.sleep(0.7)
        reply = await sdk.infer(TEXT_TASK, b"after the cooldown", "text/plain")
        assert reply.result["node"] == "C"
    assert refusing.refused == 2  # asked again once the cooldown passed, then cooled longer
    assert a.cluster.router.failovers == 2
    assert len(host(c).services["clip"].calls) == 4


async def test_every_peer_failing_is_unavailable_naming_them(nodes: list[Node], mdns_type: str) -> None:
    a = await start_node(nodes, mdns_type, "a", ["ocr"])
    b = await start_node(nodes, mdns_type, "b", host=RefusingHost(["clip"], tag="B"))
    await routable(a)
    async with client(a) as sdk:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await sdk.infer(TEXT_TASK, b"nobody", "text/plain")
    assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
    peer = a.cluster.table.get(b.snapshot().node_id)
    assert (
        peer.name in failure.value.details() and "this node cannot serve right now" in failure.value.details()
    )


async def test_a_forwarding_loop_is_impossible(
    nodes: list[Node], mdns_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both tables are stale: each node believes the other hosts clip. The hop marker stops the
    first peer from sending the request back."""
    from dataclasses import replace

    from app.core.cluster import cluster as cluster_module
    from app.core.cluster.info_prober import NodeInfoProber
    from app.core.events import PeerService

    class StaleProber(NodeInfoProber):
        async def probe(self, target, timeout):  # type: ignore[no-untyped-def]
            result = await super().probe(target, timeout)
            clip = PeerService(name="clip", state="ready", tasks=(TEXT_TASK,))
            return replace(result, services=(clip,))

    monkeypatch.setattr(cluster_module, "NodeInfoProber", StaleProber)
    a = await start_node(nodes, mdns_type, "a", ["ocr"])
    b = await start_node(nodes, mdns_type, "b", ["face"])
    await routable(a)
    await routable(b)  # without the marker b would send it straight back to a
    async with client(a) as sdk:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await sdk.infer(TEXT_TASK, b"loop?", "text/plain")
    assert failure.value.code() is grpc.StatusCode.NOT_FOUND  # b's answer, passed through
    assert "semantic_text_embed" in failure.value.details()
    # exactly one stream each: the client's at a, the forwarded one at b, nothing bounced back
    assert (a.counters.node.total, b.counters.node.total) == (1, 1)
    assert b.counters.node.by_code["NOT_FOUND"] == 1
    assert a.cluster.router.forwarded == 0 and b.cluster.router.forwarded == 0


async def test_forwarding_off_answers_not_found(nodes: list[Node], mdns_type: str) -> None:
    a = await start_node(nodes, mdns_type, "a", ["ocr"], node={"forwarding": False})
    b = await start_node(nodes, mdns_type, "b", ["clip"])
    await routable(a)  # a knows that b could serve it
    async with client(a) as sdk:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await sdk.infer(TEXT_TASK, b"no forwarding", "text/plain")
        assert failure.value.code() is grpc.StatusCode.NOT_FOUND
        assert "tasks offered: ocr" in failure.value.details()
        assert host(b).services["clip"].calls == []
        # the switch is read per request: a reloaded config turns forwarding on at once
        a.config = a.config.replace_at("node.forwarding", True)
        reply = await sdk.infer(TEXT_TASK, b"forwarding on", "text/plain")
    assert reply.result["node"] == "B"


async def test_a_service_downloading_here_is_served_by_a_peer(nodes: list[Node], mdns_type: str) -> None:
    a = await start_node(nodes, mdns_type, "a", ["clip"])
    b = await start_node(nodes, mdns_type, "b", ["clip"])
    host(a).hold("clip", ServiceState.DOWNLOADING, "model MobileCLIP2-S2")
    await routable(a)
    async with client(a) as sdk:
        reply = await sdk.infer(TEXT_TASK, b"while downloading", "text/plain")
        assert reply.result["node"] == "B"
        host(a).hold("clip", None)  # ready here again: served here
        reply = await sdk.infer(TEXT_TASK, b"ready again", "text/plain")
        assert reply.result["node"] == "A"
    assert [c.payload for c in host(b).services["clip"].calls] == [b"while downloading"]


async def test_advertise_cluster_lists_peer_services_once(nodes: list[Node], mdns_type: str) -> None:
    a = await start_node(nodes, mdns_type, "a", ["ocr"], node={"advertise_cluster": True})
    b = await start_node(nodes, mdns_type, "b", ["clip", "ocr"], node={"advertise_cluster": True})
    c = await start_node(nodes, mdns_type, "c", ["clip", "bioclip"])
    await routable(a, peers=2)
    await routable(a, "bioclip_classify")
    async with client(a) as sdk:
        caps = {cap.service_name: cap for cap in sdk.capabilities}
        assert list(caps) == ["ocr", "clip", "bioclip"]  # ours first, then the peers'
        tasks = [t.name for cap in sdk.capabilities for t in cap.tasks]
        assert len(tasks) == len(set(tasks))  # each task in exactly one capability
        assert {"semantic_text_embed", "clip_text_embed", "bioclip_classify", "ocr"} <= set(tasks)
        assert "lumen.served_by" not in caps["ocr"].extra
        assert caps["clip"].extra["lumen.served_by"] in {b.snapshot().node_id, c.snapshot().node_id}
        assert caps["bioclip"].extra["lumen.served_by"] == c.snapshot().node_id
        assert all(cap.extra["node_id"] == a.snapshot().node_id for cap in sdk.capabilities)
        merged = await sdk.stub.GetCapabilities(empty_pb2.Empty())
        assert {t.name for t in merged.tasks} == set(tasks)
        # an SDK client pointed at a now uses the cluster's tasks (meta.service filled: unique)
        reply = await sdk.infer("bioclip_classify", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")
        assert reply.result["model_id"] == "bioclip-fake-C"
    # b advertises a's services too, but a's prober keeps only b's own capabilities
    own = [cap.service_name for cap in a.cluster.table.capabilities(b.snapshot().node_id)]
    assert own == ["clip", "ocr"]
    await routable(b, "ocr")
    from_a = [cap.service_name for cap in b.cluster.table.capabilities(a.snapshot().node_id)]
    assert from_a == ["ocr"]


async def test_a_chunked_image_is_forwarded_intact(
    nodes: list[Node], mdns_type: str, big_webp: bytes
) -> None:
    a = await start_node(nodes, mdns_type, "a", ["ocr"])
    b = await start_node(nodes, mdns_type, "b", host=FakeHost(["clip"], tag="B", check_images=True))
    await routable(a, IMAGE_TASK)
    async with client(a) as sdk:
        assert len(sdk.messages(IMAGE_TASK, big_webp, "image/webp")) > 4  # the client chunks it
        reply = await sdk.infer(IMAGE_TASK, big_webp, "image/webp")
    (call,) = host(b).services["clip"].calls
    assert len(call.payload) == len(big_webp)
    assert hashlib.sha256(call.payload).digest() == hashlib.sha256(big_webp).digest()
    expected = await FakeHost(["clip"], tag="B").infer(InferenceRequest(IMAGE_TASK, big_webp, "image/webp"))
    assert reply.result == expected.data  # b's digest-derived vector of the very same bytes


async def test_the_deadline_propagates_to_the_peer(nodes: list[Node], mdns_type: str) -> None:
    a = await start_node(nodes, mdns_type, "a")
    b = await start_node(nodes, mdns_type, "b", ["clip"])
    clip = host(b).services["clip"]
    clip.delay_s = 5.0
    await routable(a)
    loop = asyncio.get_running_loop()
    async with client(a) as sdk:
        started = loop.time()
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await sdk.infer(TEXT_TASK, b"too slow", "text/plain", timeout=0.6)
        assert failure.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert loop.time() - started < 3.0
        # b's work was cancelled by the forwarded call's deadline, long before its 5 s
        await wait_for(lambda: clip.cancelled == 1 and clip.in_flight == 0, timeout=3, what="b cancelled")
        # and a client cancel reaches b the same way
        pending = asyncio.ensure_future(sdk.infer(TEXT_TASK, b"never mind", "text/plain", timeout=30))
        await wait_for(lambda: clip.in_flight == 1, what="the second request at b")
        pending.cancel()
        await wait_for(
            lambda: clip.cancelled == 2 and clip.in_flight == 0, timeout=3, what="b cancelled again"
        )
    assert a.cluster.table.get(b.snapshot().node_id).in_flight == 0
    assert a.cluster.router.failovers == 0


async def test_node_info_lists_the_peer_table(nodes: list[Node], mdns_type: str) -> None:
    from proto.gen.lumen.node.v1 import node_pb2, node_pb2_grpc

    a = await start_node(nodes, mdns_type, "a")
    b = await start_node(nodes, mdns_type, "b", ["clip", "face"])
    await routable(a)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{a.snapshot().port}")
    try:
        info = await node_pb2_grpc.NodeStub(channel).GetNodeInfo(node_pb2.GetNodeInfoRequest(), timeout=5)
    finally:
        await channel.close()
    (peer,) = info.peers
    assert peer.node_id == b.snapshot().node_id and peer.port == b.snapshot().port
    assert [(s.name, s.state) for s in peer.services] == [("clip", "ready"), ("face", "ready")]
    assert "semantic_text_embed" in peer.services[0].tasks and "face_recognition" in peer.services[1].tasks
    assert list(peer.services[0].model_ids) == ["clip-fake-B"] and peer.os == "linux"
    assert peer.HasField("rtt_ms") and peer.rtt_ms > 0
