"""The peer table's rules, driven with records and a scripted prober (the prober is our own
pluggable interface; the mDNS side is covered with real zeroconf in test_discovery)."""

from __future__ import annotations

import asyncio

from app.core.cluster.discovery import PeerRecord
from app.core.cluster.peers import MAX_PEERS, PeerTable
from app.core.cluster.prober import ProbeFailed, ProbeResult, ProbeTarget
from app.core.cluster.txt import NodeTxt
from app.core.events import EventBus, PeerChange, PeerChanged, PeerService
from app.core.tasks import TaskTracker
from tests.cluster.conftest import wait_for

T1, T2 = "_lumen._tcp.local.", "_homenative-node._tcp.local."


class ScriptedProber:
    def __init__(self) -> None:
        self.answering: dict[str, bool] = {}
        self.rtt = 1.0
        self.targets: list[ProbeTarget] = []
        self.forgotten: list[str] = []

    async def probe(self, target: ProbeTarget, timeout: float) -> ProbeResult:
        self.targets.append(target)
        if not self.answering.get(target.node_id, True):
            raise ProbeFailed("connection refused")
        return ProbeResult(
            rtt_ms=self.rtt,
            address="10.0.0.3",  # the second address answers (the first is unreachable)
            services=tuple(PeerService(name, "ready") for name in target.services),
        )

    async def forget(self, node_id: str) -> None:
        self.forgotten.append(node_id)

    async def close(self) -> None:
        pass


def record(
    node: str,
    *,
    type_: str = T1,
    name: str = "",
    port: int = 50051,
    svc: tuple[str, ...] = ("clip",),
    addresses: tuple[str, ...] = ("10.0.0.2", "10.0.0.3"),
    state: str = "ready",
    server: str = "",
) -> PeerRecord:
    instance = name or f"lumen-{node}"
    return PeerRecord(
        service_type=type_,
        name=f"{instance}.{type_}",
        instance=instance,
        server=server or f"{instance}.local.",
        port=port,
        addresses=addresses,
        txt=NodeTxt(node_id=node, version="0.1.0", runtime="onnxrt", api="1", services=svc, state=state),
    )


def _table(prober: ScriptedProber, bus: EventBus, **kwargs: float) -> tuple[PeerTable, TaskTracker]:
    tasks = TaskTracker("test")
    settings = {"probe_interval_s": 0.05, "probe_timeout_s": 0.5, "expiry_s": 0.3, **kwargs}
    table = PeerTable(prober=prober, tasks=tasks, bus=bus, type_order=(T1, T2), **settings)
    return table, tasks


async def _collect(bus: EventBus, into: list[PeerChanged]) -> None:
    async for event in bus.subscribe():
        if isinstance(event, PeerChanged):
            into.append(event)


async def test_events_expiry_recovery_and_goodbye() -> None:
    bus, prober, events = EventBus(), ScriptedProber(), []
    collector = asyncio.create_task(_collect(bus, events))
    await asyncio.sleep(0)
    table, tasks = _table(prober, bus)
    table.start()
    try:
        table.upsert(record("n1"))
        await wait_for(lambda: table.get("n1") and table.get("n1").rtt_ms == 1.0, what="probed")
        peer = table.get("n1")
        assert peer.address == "10.0.0.3:50051"  # the address that answered comes first
        prober.rtt = 2.0
        await wait_for(lambda: table.get("n1").rtt_ms == 2.0, what="new RTT")
        table.upsert(record("n1", state="starting"))  # a TXT change is an update
        await wait_for(lambda: any(e.change is PeerChange.UPDATED for e in events), what="UPDATED")
        assert table.get("n1").state == "starting"

        prober.answering["n1"] = False
        await wait_for(lambda: table.get("n1") is None, timeout=3, what="expiry")
        assert table.unanswering() == ("n1",)
        prober.answering["n1"] = True
        await wait_for(lambda: table.get("n1") is not None, timeout=3, what="recovery")

        table.remove(T1, "lumen-n1." + T1)  # goodbye
        await wait_for(lambda: prober.forgotten == ["n1"], what="channels dropped")
        assert table.peers() == () and table.unanswering() == ()
        await asyncio.sleep(0.05)
    finally:
        await tasks.close()
        collector.cancel()
    changes = [e.change for e in events]
    assert changes == [
        PeerChange.ADDED,  # listed at once
        PeerChange.UPDATED,  # the probe found the address that answers
        PeerChange.UPDATED,  # TXT state starting (RTT changes published nothing)
        PeerChange.REMOVED,  # not answering
        PeerChange.ADDED,  # answering again
        PeerChange.REMOVED,  # goodbye
    ]


async def test_two_types_and_two_listeners_merge_into_one_peer() -> None:
    bus, prober = EventBus(), ScriptedProber()
    table, tasks = _table(prober, bus, probe_interval_s=10)
    try:
        table.upsert(record("n2", type_=T2, name="lumen-n2", svc=("clip", "ocr")))
        table.upsert(record("n2", type_=T1, name="clip-only", port=50061, svc=("clip",)))
        table.upsert(record("n2", type_=T1, name="lumen-n2", svc=("clip", "ocr")))
        (peer,) = table.peers()
        assert peer.name == "lumen-n2" and peer.port == 50051  # most services, then the SDK's type
        assert len(peer.endpoints) == 3
        await wait_for(lambda: prober.targets, what="a probe")
        assert [t.port for t in prober.targets] and all(t.port == 50051 for t in prober.targets)
        table.add_in_flight("n2", 2)
        assert table.get("n2").in_flight == 2
        table.add_in_flight("n2", -5)
        assert table.get("n2").in_flight == 0
        table.remove(T2, "lumen-n2." + T2)
        table.remove(T1, "lumen-n2." + T1)
        assert table.get("n2").port == 50061  # only the extra listener is left
    finally:
        await tasks.close()


async def test_a_name_taken_over_by_another_node_and_a_bounded_table() -> None:
    bus, prober = EventBus(), ScriptedProber()
    table, tasks = _table(prober, bus, probe_interval_s=10)
    try:
        table.upsert(record("old", name="shared"))
        table.upsert(record("new", name="shared"))
        assert [p.node_id for p in table.peers()] == ["new"]
        for i in range(MAX_PEERS + 10):
            table.upsert(record(f"flood{i}"))
        assert len(table.peers()) == MAX_PEERS
    finally:
        await tasks.close()


async def test_an_unexpected_prober_error_is_one_failed_probe_not_the_end_of_probing() -> None:
    class CrashingOnce(ScriptedProber):
        crashed = False
        calls = 0

        async def probe(self, target: ProbeTarget, timeout: float) -> ProbeResult:
            self.calls += target.node_id == "n1"
            if self.calls == 3 and not self.crashed:  # a periodic probe, in the probe loop
                self.crashed = True
                raise RuntimeError("channel closed mid-probe")  # not a ProbeFailed
            return await super().probe(target, timeout)

    bus, prober = EventBus(), CrashingOnce()
    table, tasks = _table(prober, bus, expiry_s=5.0)
    table.start()
    try:
        table.upsert(record("n1"))
        table.upsert(record("n2"))
        await wait_for(lambda: prober.crashed, what="the crash")
        prober.rtt = 3.0  # later periodic probes still run, for every peer
        await wait_for(
            lambda: all(table.get(n) and table.get(n).rtt_ms == 3.0 for n in ("n1", "n2")),
            timeout=3,
            what="probing goes on",
        )
    finally:
        await tasks.close()
