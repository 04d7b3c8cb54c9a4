"""A small in-process event bus: immutable events fanned out to async subscribers.

Producers (service host, download manager, discovery) call :meth:`EventBus.publish` from the
event loop; each subscriber gets its own bounded queue. A slow subscriber loses its oldest
events rather than blocking producers or growing memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeEvent:
    """Base class of every event. ``topic`` groups events (``service``, ``download``, ``peer``)."""

    topic: str = field(default="node", init=False)


class EventBus:
    def __init__(self, queue_size: int = 1024) -> None:
        self._queue_size = queue_size
        self._subscribers: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._closed = False

    def publish(self, event: object) -> None:
        """Deliver ``event`` to every subscriber. Never blocks; must run on the loop thread."""
        for subscription in list(self._subscribers):
            subscription.deliver(event)

    def subscribe(self) -> Subscription:
        """An async iterator of the events published from this call on (not from its first
        ``__anext__``), until the bus closes or the subscription is closed or dropped."""
        subscription = Subscription(self, self._queue_size)
        if self._closed:
            subscription.close()
        else:
            self._subscribers.add(subscription)
        return subscription

    def close(self) -> None:
        self._closed = True
        for subscription in list(self._subscribers):
            subscription.deliver(_CLOSE)

    def _forget(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


class Subscription:
    """One subscriber's bounded queue (the oldest event is dropped when it is full)."""

    def __init__(self, bus: EventBus, queue_size: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self._done = False

    def deliver(self, event: object) -> None:
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
        self._queue.put_nowait(event)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is _CLOSE:
            self.close()
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        self._done = True
        self._bus._forget(self)

    async def aclose(self) -> None:
        self.close()


_CLOSE = object()


# --------------------------------------------------------------------------------------------
# The events every part of the node publishes (the shared vocabulary of the bus).
# Producers: the service host adapter (service), the download manager (download, download.file),
# discovery (peer). Consumers: the CLI, the tray app, the node API's WatchEvents.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatusChanged(NodeEvent):
    status: Any = None  # services.api.ServiceStatus
    topic: str = field(default="service", init=False)


class DownloadState(str, Enum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"

    @property
    def finished(self) -> bool:
        return self in (DownloadState.DONE, DownloadState.FAILED, DownloadState.CANCELLED)


@dataclass(frozen=True)
class DownloadProgress(NodeEvent):
    """Progress of one model repository. ``eta_s`` None = unknown."""

    model: str = ""  # "MobileCLIP2-S2": the folder under <cache_dir>/models
    repo_id: str = ""  # "Lumilio-Photos/MobileCLIP2-S2"
    source: str = ""  # "huggingface" | "modelscope" | "local"
    state: DownloadState = DownloadState.QUEUED
    bytes_done: int = 0
    bytes_total: int = 0
    files_done: int = 0
    files_total: int = 0
    current_file: str = ""
    speed_bps: float = 0.0
    eta_s: float | None = None
    error: str = ""  # set when state is FAILED: what went wrong and what to do
    services: tuple[str, ...] = ()  # services waiting for this model
    topic: str = field(default="download", init=False)


@dataclass(frozen=True)
class FileProgress(NodeEvent):
    """Progress of one file of a repository download."""

    model: str = ""
    path: str = ""  # repo-relative, e.g. "onnx/vision.fp32.onnx"
    state: DownloadState = DownloadState.QUEUED
    bytes_done: int = 0
    bytes_total: int = 0
    topic: str = field(default="download.file", init=False)


@dataclass(frozen=True)
class PeerService:
    name: str
    state: str  # services.api.ServiceState value
    tasks: tuple[str, ...] = ()
    model_ids: tuple[str, ...] = ()
    runtime: str = ""


@dataclass(frozen=True)
class PeerEndpoint:
    """One mDNS advertisement of a peer: a listener (``port``) under one service type."""

    service_type: str  # "_lumen._tcp.local."
    instance: str  # the instance name, "lumen-kitchen-1a2b3c4d"
    port: int
    services: tuple[str, ...] = ()  # TXT ``svc`` of that listener


@dataclass(frozen=True)
class PeerInfo:
    """What this node knows of another node on the LAN (one row of the cluster map)."""

    node_id: str
    name: str
    addresses: tuple[str, ...]
    port: int
    version: str = ""
    os: str = ""
    runtime: str = ""  # the TXT ``runtime`` (what the Go SDK displays)
    accelerators: tuple[str, ...] = ()  # e.g. "cuda", "coreml", "rknn-rk3588"
    services: tuple[PeerService, ...] = ()
    state: str = "starting"  # TXT ``state``: starting | ready
    in_flight: int = 0  # requests this node has outstanding at the peer
    rtt_ms: float | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    api_version: str = ""  # TXT ``api``: the peer's node API version
    endpoints: tuple[PeerEndpoint, ...] = ()  # every advertisement of the peer (all types, listeners)

    @property
    def address(self) -> str:
        host = self.addresses[0] if self.addresses else ""
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


class PeerChange(str, Enum):
    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


@dataclass(frozen=True)
class PeerChanged(NodeEvent):
    change: PeerChange = PeerChange.ADDED
    peer: PeerInfo | None = None
    topic: str = field(default="peer", init=False)
