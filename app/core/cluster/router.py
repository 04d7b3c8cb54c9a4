"""Routing: a request this node cannot serve goes to a capable peer, with failover.

When: the task is not hosted here (this listener's view), or its service here is DOWNLOADING,
LOADING, FAILED or DISABLED, and the request does not carry the hop marker. A service that is
READY or NOT_LOADED (loads on first use) is always served here. A LOADING service is served here
(after its load) when no peer can take the request.

Where: peers listed in the table with a service that offers the task (by task name or alias,
from GetNodeInfo/StreamCapabilities) in state ``ready`` (preferred) or ``not_loaded``, not in
cooldown; ordered by that state, then by our outstanding requests at the peer
(``PeerTable.in_flight``), then by RTT. The request's ``meta.service`` only breaks ties between
services of one peer.

How: the WHOLE reassembled payload is sent as the SDK would (one message up to 1 MiB, else
256 KiB chunks with seq/total/offset; same task, mime and meta, plus ``lumen.hop=1`` and
``lumen.origin=<our node id>``), on one pooled channel per peer address, with the client's
remaining deadline; a client cancel cancels the forwarded call. The peer's partial and final
results are relayed unchanged, with ``meta["lumen.served_by"]`` = the peer's node id. A peer
that answers UNAVAILABLE (or whose connection fails) before anything was relayed is put into
cooldown (``node.cluster.forward_cooldown_s``, doubling on repeated failures up to a minute) and
the next peer is tried; any other status passes through unchanged. When every peer failed, the
request fails with UNAVAILABLE naming the peers tried.

A request carrying ``lumen.hop`` is never forwarded again: it is served here or fails here, so
a forwarding loop cannot happen even when two peer tables are stale.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import grpc

from app.core.cluster.channels import PeerChannels
from app.core.cluster.info_prober import SERVED_BY_EXTRA
from app.core.cluster.peers import PeerTable
from app.core.events import EventBus, PeerChange, PeerChanged, PeerInfo
from app.core.grpc.chunks import request_messages
from app.core.grpc.host_view import HostView
from app.core.grpc.status_map import RelayedStatus
from app.core.tasks import TaskTracker
from services.api import (
    CapabilityInfo,
    InferenceFailed,
    InferenceRequest,
    ServiceState,
    ServiceUnavailable,
    TaskNotFound,
)

log = logging.getLogger(__name__)

HOP_KEY = "lumen.hop"  # set on forwarded requests; such a request is never forwarded again
ORIGIN_KEY = "lumen.origin"  # the node id of the node that forwarded it
SERVED_BY_KEY = "lumen.served_by"  # response meta: the node id of the peer that answered

MAX_COOLDOWN_S = 60.0
FINISH_GRACE_S = 5.0  # after the final result, the peer's status may take this long

# Peer service states worth sending a request to, best first.
USABLE_RANK = {ServiceState.READY.value: 0, ServiceState.NOT_LOADED.value: 1}
# Status codes after which the next peer is tried (the peer cannot serve now, or is gone).
FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})


class Local(Enum):
    SERVE = "serve"  # this node serves it
    WAIT = "wait"  # loading here: a ready peer is better, else serve after the load
    CANNOT = "cannot"  # not hosted (on this listener), downloading, failed or disabled


def local_verdict(view: HostView, request: InferenceRequest) -> Local:
    try:
        service, _ = view.resolve(request.task, request.meta.get("service") or None)
    except TaskNotFound:
        return Local.CANNOT
    status = view.status(service)
    if status is None or status.state in (ServiceState.READY, ServiceState.NOT_LOADED):
        return Local.SERVE
    if status.state is ServiceState.LOADING:
        return Local.WAIT
    return Local.CANNOT


@dataclass(frozen=True)
class Candidate:
    peer: PeerInfo
    service: str
    rank: int  # USABLE_RANK of the service's state


@dataclass
class _Cooldown:
    until: float  # monotonic
    span: float


class _PeerDown(Exception):
    """The peer could not take the request (nothing was relayed): try the next one."""


class Router:
    def __init__(
        self,
        table: PeerTable,
        *,
        node_id: str,
        tasks: TaskTracker,
        bus: EventBus | None = None,
        cooldown_s: float = 5.0,
        channels: PeerChannels | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.node_id = node_id
        self._tasks = tasks
        self._bus = bus
        self.cooldown_s = cooldown_s
        self.channels = channels or PeerChannels()
        self._clock = clock
        self._cooldowns: dict[str, _Cooldown] = {}
        self._finishing: set[Any] = set()  # calls relayed in full, waiting for the peer's status
        self.forwarded = 0  # requests a peer answered
        self.failovers = 0  # peers given up on for one request

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._bus is not None:
            self._tasks.spawn("router:peer-changes", self._watch_peers())

    async def close(self, timeout: float = 1.0) -> None:
        for call in list(self._finishing):
            call.cancel()
        await self.channels.close(timeout=timeout)

    async def _watch_peers(self) -> None:
        assert self._bus is not None
        async for event in self._bus.subscribe():
            if not isinstance(event, PeerChanged) or event.peer is None:
                continue
            node_id = event.peer.node_id
            if event.change is PeerChange.REMOVED:
                self.channels.forget(node_id)
                self._cooldowns.pop(node_id, None)
            elif event.change is PeerChange.ADDED:
                self._cooldowns.pop(node_id, None)  # back (restarted): a fresh start
            else:  # a new address: channels to the old one go
                self.channels.forget(node_id, keep=event.peer.address)

    # ---------------------------------------------------------------- policy

    def cooling(self, node_id: str) -> bool:
        cooldown = self._cooldowns.get(node_id)
        return cooldown is not None and cooldown.until > self._clock()

    def candidates(self, task: str, service_hint: str | None = None) -> list[Candidate]:
        """The peers that could serve ``task``, best first."""
        found: list[Candidate] = []
        for peer in self.table.peers():
            if peer.node_id == self.node_id or self.cooling(peer.node_id):
                continue
            best: tuple[int, bool, str] | None = None
            for service in peer.services:
                rank = USABLE_RANK.get(str(service.state))
                if rank is None:
                    continue
                offers = task in service.tasks or (not service.tasks and service.name == service_hint)
                if offers:
                    key = (rank, service.name != service_hint, service.name)
                    best = key if best is None or key < best else best
            if best is not None:
                found.append(Candidate(peer=peer, service=best[2], rank=best[0]))
        outstanding = self.table.in_flight
        found.sort(
            key=lambda c: (
                c.rank,
                outstanding(c.peer.node_id),
                c.peer.rtt_ms if c.peer.rtt_ms is not None else math.inf,
                c.peer.name,
            )
        )
        return found

    def stands_in(self, service: str) -> bool:
        """A peer not cooling down has ``service`` in a usable state."""
        return any(
            peer.node_id != self.node_id
            and not self.cooling(peer.node_id)
            and any(s.name == service and str(s.state) in USABLE_RANK for s in peer.services)
            for peer in self.table.peers()
        )

    def _cool(self, node_id: str) -> float:
        """Put a peer into cooldown; a peer failing again soon after its last cooldown waits twice
        as long (at most a minute), one failing again much later starts over."""
        now = self._clock()
        previous = self._cooldowns.get(node_id)
        if previous is not None and now - previous.until <= MAX_COOLDOWN_S:
            span = min(previous.span * 2, MAX_COOLDOWN_S)
        else:
            span = self.cooldown_s
        self._cooldowns[node_id] = _Cooldown(until=now + span, span=span)
        return span

    # ---------------------------------------------------------------- Forwarder

    async def forward(
        self, request: InferenceRequest, correlation_id: str, view: HostView, context: Any
    ) -> bool:
        if HOP_KEY in request.meta or not self.table.has_peers():
            return False
        local = local_verdict(view, request)
        if local is Local.SERVE:
            return False
        candidates = self.candidates(request.task, request.meta.get("service") or None)
        if not candidates:
            return False  # the local answer stands (NOT_FOUND naming the tasks, UNAVAILABLE, ...)
        tried: list[str] = []
        for candidate in candidates:
            peer = candidate.peer
            try:
                await self._forward_to(candidate, request, correlation_id, context)
            except _PeerDown as exc:
                span = self._cool(peer.node_id)
                self.failovers += 1
                tried.append(f"{peer.name} at {peer.address} ({exc})")
                log.info(
                    "forwarding %s to %s failed (%s); cooling it down for %.1fs",
                    request.task,
                    peer.name,
                    exc,
                    span,
                )
                continue
            self._cooldowns.pop(peer.node_id, None)
            self.forwarded += 1
            return True
        if local is Local.WAIT:
            return False  # our own service is loading: it serves once loaded
        raise ServiceUnavailable(
            f"task {request.task!r} cannot be served on this node and every peer offering it failed: "
            + "; ".join(tried)
        )

    async def _forward_to(
        self, candidate: Candidate, request: InferenceRequest, correlation_id: str, context: Any
    ) -> None:
        peer = candidate.peer
        target = peer.address
        stub = self.channels.stub(peer.node_id, target)
        meta = {**request.meta, HOP_KEY: "1", ORIGIN_KEY: self.node_id}
        timeout = context.time_remaining()
        call = stub.Infer(timeout=max(timeout, 0.0) if timeout is not None else None)
        self.table.add_in_flight(peer.node_id, 1)
        relayed = 0
        final = False
        try:
            try:
                messages = request_messages(request.task, request.payload, request.mime, meta, correlation_id)
                for message in messages:
                    await call.write(message)
                await call.done_writing()
            except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                pass  # the call ended early; its status is read below
            try:
                async for response in call:
                    response.meta[SERVED_BY_KEY] = peer.node_id
                    await context.write(response)
                    relayed += 1
                    if response.is_final:
                        final = True
                        break
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                details = exc.details() or code.name
                if relayed == 0 and code in FAILOVER_CODES:
                    self.channels.discard_if_broken(target)
                    raise _PeerDown(f"{code.name}: {details}") from None
                raise RelayedStatus(code, details) from None
        finally:
            self.table.add_in_flight(peer.node_id, -1)
            if final and not call.done():
                self._let_finish(call)  # the client has its answer; the peer's status follows
            else:
                call.cancel()  # no-op when it ended; cancels the peer's work when we were cancelled
        if not final:
            raise InferenceFailed(f"peer {peer.name} ended task {request.task!r} without a final result")

    def _let_finish(self, call: Any) -> None:
        """Keep a call whose final result was relayed until the peer's status arrives (a dropped
        call object would be cancelled, and the peer would count a cancellation)."""
        self._finishing.add(call)
        timer = asyncio.get_running_loop().call_later(FINISH_GRACE_S, call.cancel)

        def done(_: object) -> None:
            timer.cancel()
            self._finishing.discard(call)

        call.add_done_callback(done)

    def capabilities(self, local: Sequence[CapabilityInfo]) -> list[CapabilityInfo]:
        """``local``, then the tasks usable peers offer that are not in it, each task once. Peer
        services become capabilities of their own, marked ``extra["lumen.served_by"]`` (the
        peers' node ids; a service several peers offer is listed once, its tasks joined). A
        peer service named like one of ours adds nothing: our own capability stays unmarked
        (peers' probers skip marked capabilities) and is the one place its name appears."""
        listed = list(local)
        local_names = {cap.service_name for cap in local}
        index: dict[str, int] = {}
        seen = {name for cap in listed for spec in cap.tasks for name in (spec.name, *spec.aliases)}
        for peer in self.table.peers():
            if peer.node_id == self.node_id or self.cooling(peer.node_id):
                continue
            usable = {str(s.name) for s in peer.services if str(s.state) in USABLE_RANK}
            for cap in self.table.capabilities(peer.node_id):
                if cap.service_name not in usable or cap.service_name in local_names:
                    continue
                tasks = tuple(t for t in cap.tasks if t.name not in seen)
                if not tasks:
                    continue
                seen.update(t.name for t in tasks)
                if cap.service_name in index:
                    i = index[cap.service_name]
                    before = listed[i]
                    served_by = _join(before.extra[SERVED_BY_EXTRA], peer.node_id)
                    listed[i] = replace(
                        before, tasks=before.tasks + tasks, extra={**before.extra, SERVED_BY_EXTRA: served_by}
                    )
                else:
                    index[cap.service_name] = len(listed)
                    listed.append(
                        replace(cap, tasks=tasks, extra={**cap.extra, SERVED_BY_EXTRA: peer.node_id})
                    )
        return listed


def _join(existing: str, node_id: str) -> str:
    ids = [i for i in existing.split(",") if i]
    return ",".join(ids if node_id in ids else [*ids, node_id])
