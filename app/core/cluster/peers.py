"""The peer table: mDNS records merged into one row per node, kept alive by a prober.

* Records of one node id (both service types, every listener) merge into one :class:`PeerInfo`;
  its ``port``/``name`` are those of the main listener (the advertisement with the most services).
* A peer is listed as soon as a valid record arrives and probed at once; the prober fills RTT
  and service states. A peer leaves the table when every record is withdrawn (mDNS goodbye or
  TTL expiry) or when it has not answered a probe for ``expiry_s``; an unanswering peer whose
  records still exist is kept aside and listed again when a probe succeeds.
* Changes are published as :class:`PeerChanged` on the bus (``added``/``updated``/``removed``;
  an RTT or last-seen change alone updates the snapshot but publishes nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from app.core.cluster.discovery import PeerRecord
from app.core.cluster.prober import PeerProber, ProbeFailed, ProbeResult, ProbeTarget, services_from_txt
from app.core.events import EventBus, PeerChange, PeerChanged, PeerEndpoint, PeerInfo
from app.core.tasks import TaskTracker
from services.api import CapabilityInfo

log = logging.getLogger(__name__)

MAX_PEERS = 256  # a LAN flooded with fake records cannot grow the table without bound
MAX_PARALLEL_PROBES = 16

PeersCallback = Callable[[tuple[PeerInfo, ...]], None]


@dataclass
class _Peer:
    node_id: str
    records: dict[tuple[str, str], PeerRecord] = field(default_factory=dict)
    first_seen: float = 0.0  # wall clock
    last_seen: float = 0.0  # wall clock: last record update or answered probe
    last_ok: float = 0.0  # monotonic: discovery or last answered probe
    listed: bool = False  # shown in the table (answers, or new and not yet probed)
    announced: bool = False  # ADDED published and not yet followed by REMOVED
    result: ProbeResult | None = None
    probing: bool = False
    in_flight: int = 0
    info: PeerInfo | None = None


class PeerTable:
    def __init__(
        self,
        *,
        prober: PeerProber,
        tasks: TaskTracker,
        bus: EventBus | None = None,
        type_order: Sequence[str] = (),
        probe_interval_s: float = 5.0,
        probe_timeout_s: float = 2.0,
        expiry_s: float = 30.0,
        on_peers: PeersCallback | None = None,
    ) -> None:
        self._prober = prober
        self._tasks = tasks
        self._bus = bus
        self._type_order = list(type_order)
        self._interval = probe_interval_s
        self._timeout = probe_timeout_s
        self._expiry = expiry_s
        self._on_peers = on_peers
        self._peers: dict[str, _Peer] = {}
        self._slots: dict[tuple[str, str], str] = {}  # (type, name) -> node id
        self._listeners: list[Callable[[], None]] = []
        self._probe_limit = asyncio.Semaphore(MAX_PARALLEL_PROBES)
        self._full_warned = False
        self._closed = False

    # ---------------------------------------------------------------- views

    def peers(self) -> tuple[PeerInfo, ...]:
        """The listed peers, sorted by name."""
        infos = [p.info for p in self._peers.values() if p.listed and p.info is not None]
        return tuple(sorted(infos, key=lambda info: (info.name.lower(), info.node_id)))

    def has_peers(self) -> bool:
        """Whether any node is known at all (cheap: the router asks on every request)."""
        return bool(self._peers)

    def unanswering(self) -> tuple[str, ...]:
        """Node ids still advertised on mDNS but dropped for not answering probes."""
        return tuple(sorted(p.node_id for p in self._peers.values() if not p.listed))

    def get(self, node_id: str) -> PeerInfo | None:
        peer = self._peers.get(node_id)
        return peer.info if peer is not None and peer.listed else None

    def capabilities(self, node_id: str) -> tuple[CapabilityInfo, ...]:
        """The listed peer's own capabilities from its last answered probe (empty if unknown)."""
        peer = self._peers.get(node_id)
        if peer is None or not peer.listed or peer.result is None:
            return ()
        return peer.result.capabilities or ()

    def add_listener(self, callback: Callable[[], None]) -> None:
        """``callback()`` after every change that publishes an event (not RTT-only changes)."""
        self._listeners.append(callback)

    def add_in_flight(self, node_id: str, delta: int) -> None:
        """Requests this node has outstanding at a peer (the router counts them). Called twice per
        forwarded request, so it stays cheap: the table's rows (:meth:`get`, :meth:`peers`) are
        exact at once; the node's snapshot (``on_peers``: GUI, node API) gets the count with the
        peer's next refresh (at the latest its next probe)."""
        peer = self._peers.get(node_id)
        if peer is not None:
            peer.in_flight = max(0, peer.in_flight + delta)
            if peer.info is not None:
                peer.info = replace(peer.info, in_flight=peer.in_flight)

    def in_flight(self, node_id: str) -> int:
        peer = self._peers.get(node_id)
        return peer.in_flight if peer is not None else 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._tasks.spawn("peers:probe-loop", self._probe_loop())

    async def stop(self) -> None:
        self._closed = True
        await self._prober.close()

    async def probe_all(self) -> None:
        """Probe every known peer once now (the CLI does this before printing)."""
        await asyncio.gather(*(self._probe(peer) for peer in list(self._peers.values())))

    # ---------------------------------------------------------------- records (RecordSink)

    def upsert(self, record: PeerRecord) -> None:
        if self._closed:
            return
        slot = (record.service_type, record.name)
        node_id = record.node_id
        previous_owner = self._slots.get(slot)
        if previous_owner is not None and previous_owner != node_id:
            self.remove(*slot)  # the name now belongs to another node
        peer = self._peers.get(node_id)
        now = time.time()
        if peer is None:
            if len(self._peers) >= MAX_PEERS:
                if not self._full_warned:
                    log.warning("peer table full (%d nodes); ignoring %s", MAX_PEERS, record.name)
                    self._full_warned = True
                return
            # a new peer is listed at once; the probe fills RTT and service states
            peer = _Peer(node_id=node_id, first_seen=now, last_ok=time.monotonic(), listed=True)
            self._peers[node_id] = peer
        self._check_clone(peer, record)
        peer.records[slot] = record
        peer.last_seen = now
        self._slots[slot] = node_id
        self._refresh(peer)
        self._spawn_probe(peer)

    def remove(self, service_type: str, name: str) -> None:
        slot = (service_type, name)
        node_id = self._slots.pop(slot, None)
        if node_id is None:
            return
        peer = self._peers.get(node_id)
        if peer is None:
            return
        peer.records.pop(slot, None)
        if peer.records:
            self._refresh(peer)
            return
        del self._peers[node_id]
        peer.listed = False
        if peer.announced:
            log.info("peer %s left (mDNS goodbye)", peer.info.name if peer.info else node_id)
            self._emit(PeerChange.REMOVED, peer)
        self._tasks.spawn(f"peers:forget:{node_id}", self._prober.forget(node_id))

    # ---------------------------------------------------------------- probing

    async def _probe_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.probe_all()

    def _spawn_probe(self, peer: _Peer) -> None:
        if not peer.probing and not self._closed:
            peer.probing = True  # claimed here so a burst of records starts one probe
            self._tasks.spawn(f"peers:probe:{peer.node_id}", self._probe(peer, claimed=True))

    async def _probe(self, peer: _Peer, *, claimed: bool = False) -> None:
        if not claimed:
            if peer.probing:
                return
            peer.probing = True
        try:
            target = self._target(peer)
            if target is None:
                return
            async with self._probe_limit:
                try:
                    result = await asyncio.wait_for(
                        self._prober.probe(target, self._timeout), self._timeout + 0.5
                    )
                except (ProbeFailed, asyncio.TimeoutError) as exc:
                    self._probe_failed(peer, str(exc) or "timed out")
                    return
                except Exception as exc:  # e.g. its channel closed by forget(): one failed probe
                    log.debug("probing %s failed", peer.node_id, exc_info=True)
                    self._probe_failed(peer, f"{type(exc).__name__}: {exc}")
                    return
            self._probe_ok(peer, result)
        finally:
            peer.probing = False

    def _probe_ok(self, peer: _Peer, result: ProbeResult) -> None:
        if self._peers.get(peer.node_id) is not peer:
            return  # left while we were probing
        peer.result = result
        peer.last_ok = time.monotonic()
        peer.last_seen = time.time()
        if not peer.listed:
            peer.listed = True
            log.info("peer %s answers again", peer.node_id)
        self._refresh(peer)

    def _probe_failed(self, peer: _Peer, reason: str) -> None:
        if self._peers.get(peer.node_id) is not peer:
            return
        silent_for = time.monotonic() - peer.last_ok
        log.debug("probe of %s failed (%s); silent for %.1fs", peer.node_id, reason, silent_for)
        if peer.listed and silent_for >= self._expiry:
            peer.listed = False
            peer.result = None
            log.info(
                "peer %s left: no answer for %.0fs (%s)",
                peer.info.name if peer.info else peer.node_id,
                silent_for,
                reason,
            )
            self._emit(PeerChange.REMOVED, peer)

    def _target(self, peer: _Peer) -> ProbeTarget | None:
        main = self._main_record(peer)
        if main is None:
            return None
        return ProbeTarget(
            node_id=peer.node_id,
            addresses=self._addresses(peer, main),
            port=main.port,
            services=self._services(peer),
            state=main.txt.state,
        )

    # ---------------------------------------------------------------- building rows

    def _main_record(self, peer: _Peer) -> PeerRecord | None:
        if not peer.records:
            return None

        def rank(record: PeerRecord) -> tuple[int, int, int, str]:
            order = (
                self._type_order.index(record.service_type)
                if record.service_type in self._type_order
                else len(self._type_order)
            )
            return (-len(record.txt.services), order, record.port, record.name)

        return min(peer.records.values(), key=rank)

    def _services(self, peer: _Peer) -> tuple[str, ...]:
        names: dict[str, None] = {}
        main = self._main_record(peer)
        for record in sorted(peer.records.values(), key=lambda r: r is not main):
            names.update(dict.fromkeys(record.txt.services))
        return tuple(names)

    @staticmethod
    def _addresses(peer: _Peer, main: PeerRecord) -> tuple[str, ...]:
        addresses = list(main.addresses)
        answered = peer.result.address if peer.result else None
        if answered in addresses:
            addresses.remove(answered)
            addresses.insert(0, answered)
        return tuple(addresses)

    def _build(self, peer: _Peer) -> PeerInfo | None:
        main = self._main_record(peer)
        if main is None:
            return None
        result = peer.result
        target = ProbeTarget(
            node_id=peer.node_id,
            addresses=(),
            port=main.port,
            services=self._services(peer),
            state=main.txt.state,
        )
        services = services_from_txt(target)
        if result and result.services is not None:
            # the probe's word on each advertised service; a service the prober knows beyond TXT
            # is kept too (a probe made before a record changed is corrected by the next one)
            probed = {service.name: service for service in result.services}
            services = tuple(probed.pop(s.name, s) for s in services) + tuple(probed.values())
        endpoints = tuple(
            PeerEndpoint(
                service_type=record.service_type,
                instance=record.instance,
                port=record.port,
                services=record.txt.services,
            )
            for record in sorted(peer.records.values(), key=lambda r: (r.port, r.service_type, r.name))
        )
        return PeerInfo(
            node_id=peer.node_id,
            name=main.instance,
            addresses=self._addresses(peer, main),
            port=main.port,
            version=(result.version if result and result.version else main.txt.version),
            os=(result.os if result and result.os else main.txt.os),
            runtime=(result.runtime if result and result.runtime else main.txt.runtime),
            accelerators=(result.accelerators or ()) if result else (),
            services=services,
            state=main.txt.state or "starting",
            in_flight=peer.in_flight,
            rtt_ms=result.rtt_ms if result else None,
            first_seen=peer.first_seen,
            last_seen=peer.last_seen,
            api_version=main.txt.api,
            endpoints=endpoints,
        )

    def _refresh(self, peer: _Peer, *, publish: bool = True) -> None:
        before = peer.info
        peer.info = self._build(peer)
        if not peer.listed or peer.info is None:
            return
        if not peer.announced:
            self._emit(PeerChange.ADDED, peer)
        elif publish and before is not None and _significant(before) != _significant(peer.info):
            self._emit(PeerChange.UPDATED, peer)
        else:
            self._snapshot_changed()

    def _emit(self, change: PeerChange, peer: _Peer) -> None:
        info = peer.info
        peer.announced = change is not PeerChange.REMOVED
        if change is PeerChange.ADDED and info is not None:
            log.info("peer %s (%s) at %s", info.name, peer.node_id, info.address)
        self._snapshot_changed()
        if self._bus is not None and info is not None:
            self._bus.publish(PeerChanged(change=change, peer=info))
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                log.exception("peer table listener failed")

    def _snapshot_changed(self) -> None:
        if self._on_peers is not None:
            self._on_peers(self.peers())

    def _check_clone(self, peer: _Peer, record: PeerRecord) -> None:
        servers = {r.server for r in peer.records.values()}
        if (
            servers
            and record.server not in servers
            and not set(record.addresses) & {a for r in peer.records.values() for a in r.addresses}
        ):
            log.warning(
                "two nodes advertise the node id %s (%s and %s): a copied installation? "
                "Delete the node_id file on one of them so it makes a new id",
                peer.node_id,
                ", ".join(sorted(servers)),
                record.server,
            )


def _significant(info: PeerInfo) -> PeerInfo:
    """The fields whose change is worth an event (RTT and last-seen move on every probe)."""
    return replace(info, rtt_ms=None, last_seen=0.0)
