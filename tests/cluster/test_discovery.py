"""Real nodes with real zeroconf on this machine find each other, validate what they hear, and
keep their names. Every test browses its own random service type (see conftest)."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from zeroconf import DNSIncoming, DNSOutgoing, DNSQuestion, IPVersion, const
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from app import __version__
from app.core.cluster.naming import auto_instance_name
from app.core.events import PeerChange, PeerChanged, ServiceStatusChanged
from app.core.node import Node
from services.api import ServiceState, ServiceStatus
from tests.cluster.conftest import CLIP_AND_FACE, node_config, node_id, peer_ids, wait_for

pytestmark = pytest.mark.timeout(60)


async def _start(nodes: list[Node], mdns_type: str, tag: str, **kwargs: object) -> Node:
    node = Node(node_config(mdns_type, **kwargs), node_id=node_id(tag))  # type: ignore[arg-type]
    nodes.append(node)
    await node.start()
    return node


async def test_three_nodes_find_each_other_never_themselves(nodes: list[Node], mdns_type: str) -> None:
    a, b, c = [await _start(nodes, mdns_type, tag, services=CLIP_AND_FACE) for tag in "abc"]
    ids = {n.snapshot().node_id for n in (a, b, c)}
    for node in (a, b, c):
        others = ids - {node.snapshot().node_id}
        await wait_for(lambda node=node, others=others: peer_ids(node) == others, what="both other nodes")
    # the prober has health-checked them: RTT, reachable address, services from TXT svc
    await wait_for(lambda: all(p.rtt_ms is not None for p in a.snapshot().peers), what="RTT")
    peer = next(p for p in a.snapshot().peers if p.node_id == b.snapshot().node_id)
    assert peer.address == f"127.0.0.1:{b.snapshot().port}"
    assert peer.name == auto_instance_name(b.snapshot().node_id)
    assert peer.version == __version__ and peer.runtime == "onnxrt" and peer.api_version == "1"
    assert [s.name for s in peer.services] == ["clip", "face"]
    assert peer.state == "ready" and peer.os == "linux"
    assert peer.first_seen <= peer.last_seen
    assert [(e.service_type, e.port) for e in peer.endpoints] == [(mdns_type, b.snapshot().port)]


async def test_goodbye_removes_the_peer_and_publishes_events(nodes: list[Node], mdns_type: str) -> None:
    a = await _start(nodes, mdns_type, "a")
    events: list[PeerChanged] = []

    async def watch() -> None:
        async for event in a.events():
            if isinstance(event, PeerChanged):
                events.append(event)

    watcher = asyncio.create_task(watch())
    try:
        b = await _start(nodes, mdns_type, "b")
        b_id = b.snapshot().node_id
        await wait_for(lambda: peer_ids(a) == {b_id}, what="a lists b")
        await b.stop()  # sends mDNS goodbye first
        await wait_for(lambda: not a.snapshot().peers, timeout=3, what="b gone after goodbye")
        await wait_for(lambda: any(e.change is PeerChange.REMOVED for e in events), what="REMOVED event")
    finally:
        watcher.cancel()
    changes = [e.change for e in events if e.peer and e.peer.node_id == b_id]
    assert changes[0] is PeerChange.ADDED and changes[-1] is PeerChange.REMOVED
    assert a.cluster.table.unanswering() == ()  # gone for good, not merely silent


async def test_restart_keeps_the_instance_name(nodes: list[Node], mdns_type: str) -> None:
    a = await _start(nodes, mdns_type, "a")
    config = node_config(mdns_type)
    b = Node(config, node_id=node_id("b"))
    nodes.append(b)
    await b.start()
    await wait_for(lambda: a.snapshot().peers, what="a lists b")
    first_name = a.snapshot().peers[0].name
    await b.stop()
    await wait_for(lambda: not a.snapshot().peers, what="b gone")
    b2 = Node(config, node_id=node_id("b"))
    nodes.append(b2)
    await b2.start()
    await wait_for(lambda: a.snapshot().peers, what="a lists b again")
    assert a.snapshot().peers[0].name == first_name == auto_instance_name(node_id("b"))


async def test_name_conflict_renames_and_keeps_advertising(
    nodes: list[Node], mdns_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.core.cluster.advertiser")
    taken = "lumen-conflict-test"
    squatter = AsyncZeroconf(interfaces=["127.0.0.1"])
    try:
        info = AsyncServiceInfo(
            mdns_type,
            f"{taken}.{mdns_type}",
            port=9,
            properties={"id": "f" * 32},
            server="squatter.local.",
            parsed_addresses=["127.0.0.1"],
        )
        await (await squatter.async_register_service(info))
        # a responder multicasts a record at most once a second (RFC 6762 §6): let the squatter's
        # own announcements age, as they would have on a real network
        await asyncio.sleep(1.2)
        a = await _start(nodes, mdns_type, "a", mdns={"instance_name": taken})
        await wait_for(
            lambda: a.cluster.advertiser and a.cluster.advertiser.registered_event.is_set(),
            what="a registered",
        )
        assert list(a.cluster.advertiser.instance_names().values()) == [f"{taken}-2"]
        assert any(f"advertising as '{taken}-2'" in r.getMessage() for r in caplog.records)
        # a peer sees both, each under its own name (the squatter never answers a probe: a long
        # expiry keeps it listed while the observer also finds a, however busy the machine is)
        observer = await _start(nodes, mdns_type, "c", cluster={"expiry_s": 30})
        a_id = a.snapshot().node_id
        await wait_for(lambda: {a_id, "f" * 32} <= peer_ids(observer), what="both holders of the name")
        names = {p.node_id: (p.name, p.port) for p in observer.snapshot().peers}
        assert names[a_id] == (f"{taken}-2", a.snapshot().port)
        assert names["f" * 32] == (taken, 9)
    finally:
        await squatter.async_close()


async def test_malformed_txt_is_ignored_and_logged_once(
    nodes: list[Node], mdns_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.core.cluster.discovery")
    observer = await _start(nodes, mdns_type, "a")
    raw = AsyncZeroconf(interfaces=["127.0.0.1"])
    bad_name = f"bad-node.{mdns_type}"

    def bad_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if "bad-node" in r.getMessage()]

    try:
        bad = AsyncServiceInfo(
            mdns_type,
            bad_name,
            port=7,
            properties={"id": "not a valid id!", "svc": "clip"},
            server="bad.local.",
            parsed_addresses=["127.0.0.1"],
        )
        await (await raw.async_register_service(bad, cooperating_responders=True))
        await wait_for(bad_lines, what="the warning about the bad record")
        # it re-announces (a changed port makes every browser resolve it again): no second warning
        again = AsyncServiceInfo(
            mdns_type,
            bad_name,
            port=8,
            properties={"id": "not a valid id!", "svc": "clip"},
            server="bad.local.",
            parsed_addresses=["127.0.0.1"],
        )
        await (await raw.async_update_service(again))
        good = AsyncServiceInfo(
            mdns_type,
            f"good-node.{mdns_type}",
            port=9,
            properties={"id": "1" * 32, "svc": "ocr"},
            server="good.local.",
            parsed_addresses=["127.0.0.1"],
        )
        await (await raw.async_register_service(good, cooperating_responders=True))
        await wait_for(lambda: peer_ids(observer) == {"1" * 32}, what="the good record")
        await asyncio.sleep(0.5)
        assert peer_ids(observer) == {"1" * 32}
        lines = bad_lines()
        assert len(lines) == 1, lines
        assert "TXT id='not a valid id!'" in lines[0]
    finally:
        await raw.async_close()


async def test_txt_state_goes_from_starting_to_ready_with_the_services(
    nodes: list[Node], mdns_type: str
) -> None:
    observer = await _start(nodes, mdns_type, "a")
    b = await _start(nodes, mdns_type, "b", services=CLIP_AND_FACE)
    b_id = b.snapshot().node_id

    def b_state() -> str | None:
        peer = observer.cluster.table.get(b_id)
        return peer.state if peer else None

    await wait_for(lambda: b_state() == "ready", what="b ready")
    # the service host reports a model download: the node is starting again until it is done
    b.bus.publish(ServiceStatusChanged(status=ServiceStatus("clip", ServiceState.DOWNLOADING)))
    await wait_for(lambda: b_state() == "starting", what="b starting while downloading")
    b.bus.publish(
        ServiceStatusChanged(status=ServiceStatus("clip", ServiceState.READY, runtime="onnxrt-cpu"))
    )
    await wait_for(lambda: b_state() == "ready", what="b ready again")
    await wait_for(lambda: observer.cluster.table.get(b_id).runtime == "onnxrt-cpu", what="runtime")


async def test_ptr_answer_carries_srv_txt_and_a_in_the_additional_section(
    nodes: list[Node], mdns_type: str
) -> None:
    a = await _start(nodes, mdns_type, "a")
    await wait_for(
        lambda: a.cluster.advertiser and a.cluster.advertiser.registered_event.is_set(), what="registration"
    )
    instance = f"{auto_instance_name(a.snapshot().node_id)}.{mdns_type}"
    query = DNSOutgoing(const._FLAGS_QR_QUERY)
    query.add_question(DNSQuestion(mdns_type, const._TYPE_PTR, const._CLASS_IN))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))  # not port 5353: a "legacy unicast" query, answered to us directly
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 6
        while True:  # right after announcing, zeroconf holds answers back for ~1 s: ask again
            assert loop.time() < deadline, "no answer to the PTR query"
            sock.sendto(query.packets()[0], ("224.0.0.251", 5353))
            try:
                data, _ = await asyncio.wait_for(loop.sock_recvfrom(sock, 9000), 0.5)
            except asyncio.TimeoutError:
                continue
            message = DNSIncoming(data)
            records = message.answers()
            if any(r.name == instance for r in records):
                break
    finally:
        sock.close()
    answers, additionals = records[: message.num_answers], records[message.num_answers :]
    assert [(r.type, r.alias) for r in answers] == [(const._TYPE_PTR, instance)]  # type: ignore[attr-defined]
    by_type = {r.type: r for r in additionals}
    assert by_type[const._TYPE_SRV].port == a.snapshot().port  # type: ignore[attr-defined]
    assert b"id=" + a.snapshot().node_id.encode() in by_type[const._TYPE_TXT].text  # type: ignore[attr-defined]
    assert socket.inet_ntoa(by_type[const._TYPE_A].address) == "127.0.0.1"  # type: ignore[attr-defined]


async def test_address_changes_are_re_announced(mdns_type: str) -> None:
    """A new interface address shows up in the published A records (interfaces polled)."""
    from app.core.cluster import Cluster
    from app.core.events import EventBus
    from app.core.node import ListenerInfo, NodeSnapshot, NodeState

    found = ["10.250.0.1"]
    config = node_config(mdns_type, host="0.0.0.0", mdns={"interface_poll_s": 0.2})
    snapshot = NodeSnapshot(
        node_id=node_id("d"),
        name="d",
        version="x",
        state=NodeState.RUNNING,
        listeners=(ListenerInfo("0.0.0.0", 50123, None),),
    )
    cluster = Cluster(
        config,
        node_id=node_id("d"),
        snapshot=lambda: snapshot,
        bus=EventBus(),
        address_source=lambda: list(found),
    )
    observer = AsyncZeroconf(interfaces=["127.0.0.1"])
    name = f"{auto_instance_name(node_id('d'))}.{mdns_type}"

    async def addresses() -> list[str]:
        info = AsyncServiceInfo(mdns_type, name)
        await info.async_request(observer.zeroconf, 1500)
        return info.parsed_addresses(IPVersion.All)

    await cluster.start()
    try:
        await wait_for(
            lambda: cluster.advertiser and cluster.advertiser.registered_event.is_set(), what="registration"
        )
        assert await addresses() == ["10.250.0.1"]
        found.append("10.250.0.2")
        deadline = asyncio.get_running_loop().time() + 5
        while "10.250.0.2" not in await addresses():
            assert asyncio.get_running_loop().time() < deadline, "new address never announced"
            await asyncio.sleep(0.1)
    finally:
        await cluster.stop()
        await observer.async_close()


async def test_an_extra_listener_is_its_own_advertisement_of_the_same_peer(
    nodes: list[Node], mdns_type: str
) -> None:
    from tests.core.conftest import free_port

    clip_port = free_port()
    services = {
        "clip": {
            "models": {"default": {"model": "MobileCLIP2-S2", "runtime": "onnx"}},
            "server": {"port": clip_port, "mdns": {"enabled": True, "name": "Clip-Only"}},
        },
        "face": {"models": {"default": {"model": "antelopev2", "runtime": "onnx"}}},
    }
    observer = await _start(nodes, mdns_type, "a")
    b = await _start(nodes, mdns_type, "b", services=services)
    b_id = b.snapshot().node_id
    await wait_for(
        lambda: (p := observer.cluster.table.get(b_id)) and len(p.endpoints) == 2,
        what="both advertisements of b",
    )
    peer = observer.cluster.table.get(b_id)
    assert peer.port == b.snapshot().port and peer.name == auto_instance_name(b_id)  # the main listener
    assert {(e.instance, e.port, e.services) for e in peer.endpoints} == {
        (auto_instance_name(b_id), b.snapshot().port, ("clip", "face")),
        ("Clip-Only", clip_port, ("clip",)),
    }
    assert [s.name for s in peer.services] == ["clip", "face"]
    broker = {n["node_id"]: n["address"] for n in observer.cluster.broker_nodes("127.0.0.1")}
    assert broker["Clip-Only"] == f"127.0.0.1:{clip_port}"
    assert broker[auto_instance_name(b_id)] == f"127.0.0.1:{b.snapshot().port}"


async def test_main_listener_with_mdns_off_is_not_advertised(nodes: list[Node], mdns_type: str) -> None:
    observer = await _start(nodes, mdns_type, "a")
    from tests.core.conftest import free_port

    hub = {"enabled": True, "server": {"port": free_port(), "mdns": {"enabled": False}}}
    b = Node(node_config(mdns_type).replace_at("hub", hub), node_id=node_id("b"))
    nodes.append(b)
    await b.start()
    await wait_for(
        lambda: b.cluster.advertiser and b.cluster.advertiser.registered_event.is_set(),
        what="b's advertiser settled",
    )
    assert b.cluster.advertiser.registered_infos() == []
    await asyncio.sleep(1.5)  # what b would need to be seen
    assert peer_ids(observer) == set()
