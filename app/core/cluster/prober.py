"""Peer probers: given a discovered peer's addresses, say whether it answers and what it serves.

The peer table calls :meth:`PeerProber.probe` for every peer every ``node.cluster.probe_interval_s``
seconds; a peer that fails probes for ``node.cluster.expiry_s`` leaves the table. The interface is
the place to enrich peers: :class:`HealthProber` (``grpc.health.v1`` Check, which every node
serves) says whether a peer answers and which services are serving; the default,
:class:`~app.core.cluster.info_prober.NodeInfoProber`, adds the node API's GetNodeInfo and the
hub's StreamCapabilities (accelerators, OS, per-service states, tasks and models).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.core.events import PeerService
from services.api import CapabilityInfo

log = logging.getLogger(__name__)

# What phase 1 can say about a service: health SERVING → ready, NOT_SERVING → loading.
STATE_READY = "ready"
STATE_LOADING = "loading"


@dataclass(frozen=True)
class ProbeTarget:
    node_id: str
    addresses: tuple[str, ...]  # in the order worth trying; the last one that answered first
    port: int
    services: tuple[str, ...] = ()  # from TXT ``svc``
    state: str = ""  # TXT ``state``


@dataclass(frozen=True)
class ProbeResult:
    """What a probe learned. ``None`` fields mean "nothing new; keep what TXT says"."""

    rtt_ms: float
    address: str  # the address that answered
    services: tuple[PeerService, ...] | None = None
    accelerators: tuple[str, ...] | None = None
    os: str | None = None
    version: str | None = None
    runtime: str | None = None
    # the peer's own capabilities (StreamCapabilities, without what it offers on behalf of peers)
    capabilities: tuple[CapabilityInfo, ...] | None = None


class ProbeFailed(Exception):
    """The peer did not answer (or said it is shutting down)."""


@runtime_checkable
class PeerProber(Protocol):
    async def probe(self, target: ProbeTarget, timeout: float) -> ProbeResult:
        """Probe one peer within ``timeout`` seconds. Raises :class:`ProbeFailed`."""
        ...

    async def forget(self, node_id: str) -> None:
        """The peer left: drop whatever is kept for it (connections)."""
        ...

    async def close(self) -> None: ...


def grpc_target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HealthProber:
    """RTT from a ``grpc.health.v1`` Check on a kept-open channel; service states from the
    per-service health names (``clip``, ``face``...) the node sets as services become ready."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._by_node: dict[str, set[str]] = {}

    async def probe(self, target: ProbeTarget, timeout: float) -> ProbeResult:
        if not target.addresses:
            raise ProbeFailed("no address")
        deadline = time.monotonic() + timeout
        errors: list[str] = []
        for address in target.addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            key = grpc_target(address, target.port)
            try:
                rtt_ms, stub = await self._check(target.node_id, key, remaining)
            except ProbeFailed as exc:
                errors.append(f"{key}: {exc}")
                continue
            return await self._answered(target, address, key, rtt_ms, stub, deadline)
        raise ProbeFailed("; ".join(errors) or "timed out")

    async def _answered(
        self,
        target: ProbeTarget,
        address: str,
        key: str,
        rtt_ms: float,
        stub: health_pb2_grpc.HealthStub,
        deadline: float,
    ) -> ProbeResult:
        """The result once ``address`` answered the health check (``deadline``: monotonic)."""
        services = await self._service_states(stub, target, max(deadline - time.monotonic(), 0.05))
        return ProbeResult(rtt_ms=rtt_ms, address=address, services=services)

    async def _check(
        self, node_id: str, key: str, timeout: float
    ) -> tuple[float, health_pb2_grpc.HealthStub]:
        fresh = key not in self._channels
        channel = self._channels.get(key)
        if channel is None:
            channel = grpc.aio.insecure_channel(key, options=[("grpc.enable_retries", 0)])
            self._channels[key] = channel
            self._by_node.setdefault(node_id, set()).add(key)
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="")
        try:
            if fresh:  # the first call pays for TCP + HTTP/2 setup; measure the second
                await stub.Check(request, timeout=timeout)
            start = time.perf_counter()
            reply = await stub.Check(request, timeout=timeout)
            rtt_ms = (time.perf_counter() - start) * 1000.0
        except grpc.aio.AioRpcError as exc:
            await self._drop(key)  # a broken channel would sit in reconnect backoff
            raise ProbeFailed(f"{exc.code().name}: {exc.details()}") from None
        except asyncio.TimeoutError:
            await self._drop(key)
            raise ProbeFailed("timed out") from None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise ProbeFailed("the node reports NOT_SERVING (shutting down)")
        return rtt_ms, stub

    async def _service_states(
        self, stub: health_pb2_grpc.HealthStub, target: ProbeTarget, timeout: float
    ) -> tuple[PeerService, ...] | None:
        if not target.services:
            return None

        async def one(name: str) -> PeerService:
            try:
                request = health_pb2.HealthCheckRequest(service=name)
                reply = await stub.Check(request, timeout=timeout)
            except grpc.aio.AioRpcError:
                return PeerService(name=name, state=_state_from_txt(target.state))
            serving = reply.status == health_pb2.HealthCheckResponse.SERVING
            return PeerService(name=name, state=STATE_READY if serving else STATE_LOADING)

        return tuple(await asyncio.gather(*(one(name) for name in target.services)))

    async def _drop(self, key: str) -> None:
        channel = self._channels.pop(key, None)
        if channel is not None:
            with contextlib.suppress(Exception):
                await channel.close(grace=None)

    async def forget(self, node_id: str) -> None:
        for key in self._by_node.pop(node_id, set()):
            await self._drop(key)

    async def close(self) -> None:
        self._by_node.clear()
        for key in list(self._channels):
            await self._drop(key)


def _state_from_txt(node_state: str) -> str:
    return STATE_READY if node_state == "ready" else STATE_LOADING


def services_from_txt(target: ProbeTarget) -> tuple[PeerService, ...]:
    """Before (or without) a probe: the TXT service list with the node's state."""
    return tuple(PeerService(name=name, state=_state_from_txt(target.state)) for name in target.services)
