"""A small in-process event bus: immutable events fanned out to async subscribers.

Producers (service host, download manager, discovery) call :meth:`EventBus.publish` from the
event loop; each subscriber gets its own bounded queue. A slow subscriber loses its oldest
events rather than blocking producers or growing memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
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
        self._subscribers: set[asyncio.Queue[Any]] = set()
        self._closed = False

    def publish(self, event: object) -> None:
        """Deliver ``event`` to every subscriber. Never blocks; must run on the loop thread."""
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[Any]:
        """Yield events published after this call until the bus closes."""
        queue: asyncio.Queue[Any] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            while not self._closed:
                event = await queue.get()
                if event is _CLOSE:
                    break
                yield event
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        self._closed = True
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(_CLOSE)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


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
