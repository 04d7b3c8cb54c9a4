"""The Node: the one place where the parts of a Lumen node are composed.

The CLI and the tray app drive a node only through :class:`NodeController` (async commands, an
immutable :class:`NodeSnapshot`, a stream of immutable events), so the GUI can be tested against a
fake and the core runs with no display.

Start order: bind the gRPC listeners (health answers at once) → service host → background model
downloads → mDNS. Stop runs in reverse with bounded waits: mDNS goodbye, health NOT_SERVING,
gRPC server with grace, downloads, models. ``start()`` and ``stop()`` are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from app import __version__
from app.core.events import EventBus, NodeEvent
from app.core.grpc.server import GrpcListener
from app.core.tasks import TaskTracker

log = logging.getLogger(__name__)


class NodeState(str, Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


@dataclass(frozen=True)
class ListenerInfo:
    host: str
    port: int
    services: tuple[str, ...] | None  # None = every enabled service


@dataclass(frozen=True)
class NodeSnapshot:
    """Everything a UI shows about the node, as one immutable value."""

    node_id: str
    name: str
    version: str
    state: NodeState
    listeners: tuple[ListenerInfo, ...] = ()
    started_at: float | None = None
    services: tuple[Any, ...] = ()  # services.api.ServiceStatus
    downloads: tuple[Any, ...] = ()  # latest progress per repository
    peers: tuple[Any, ...] = ()

    @property
    def port(self) -> int | None:
        return self.listeners[0].port if self.listeners else None


@dataclass(frozen=True)
class NodeStateChanged(NodeEvent):
    state: NodeState = NodeState.STOPPED
    topic: str = field(default="node", init=False)


class NodeController(Protocol):
    """The narrow interface the CLI, the tray app and the node API's control calls use.

    Commands are async and return once the change is accepted (a download is queued, a service
    is enabled and its config saved); progress arrives as events. Bad arguments raise
    ``ValueError`` naming what was wrong; nothing half-applied is left behind.
    """

    def snapshot(self) -> NodeSnapshot: ...

    def events(self) -> AsyncIterator[object]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def set_service_enabled(self, service: str, enabled: bool) -> None:
        """Enable or disable a built-in service: saved to the config file, applied live."""
        ...

    async def start_download(self, model: str | None = None, *, force: bool = False) -> None:
        """Queue the download of one configured model (None: every missing one)."""
        ...

    async def cancel_download(self, model: str) -> None: ...

    async def pause_download(self, model: str) -> None: ...

    async def resume_download(self, model: str) -> None: ...

    async def reload_config(self) -> None:
        """Re-read the config file and apply it; an invalid file is refused, the old one stays."""
        ...


class Node:
    """A running Lumen node built from a loaded config (passed in, never imported)."""

    def __init__(
        self,
        config: Any,
        *,
        node_id: str,
        config_path: Path | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.bus = bus or EventBus()
        self.tasks = TaskTracker("node")
        self._lock = asyncio.Lock()
        self._listeners: list[GrpcListener] = []
        self._cluster: Any = None  # app.core.cluster.Cluster while running (issue 7)
        self._snapshot = NodeSnapshot(
            node_id=node_id,
            name=config.node.name or socket.gethostname(),
            version=__version__,
            state=NodeState.STOPPED,
        )
        self._stopped = asyncio.Event()

    # ---------------------------------------------------------------- controller interface

    def snapshot(self) -> NodeSnapshot:
        return self._snapshot

    def events(self) -> AsyncIterator[object]:
        return self.bus.subscribe()

    async def start(self) -> None:
        async with self._lock:
            if self._snapshot.state in (NodeState.RUNNING, NodeState.STARTING):
                return
            self._set_state(NodeState.STARTING)
            self._stopped.clear()
            try:
                await self._start_listeners()
                await self._start_cluster()  # --- cluster (issue 7): after listeners and services
            except BaseException:
                await self._stop_cluster(timeout=0.5)  # --- cluster (issue 7)
                await self._stop_listeners(grace=0)
                self._set_state(NodeState.STOPPED)
                raise
            self._snapshot = replace(self._snapshot, started_at=time.time())
            self._set_state(NodeState.RUNNING)
            log.info(
                "Lumen node %s (%s) running on %s",
                self._snapshot.name,
                platform.platform(terse=True),
                ", ".join(f"{li.host}:{li.port}" for li in self._snapshot.listeners),
            )

    async def stop(self, grace: float = 3.0) -> None:
        async with self._lock:
            if self._snapshot.state in (NodeState.STOPPED, NodeState.STOPPING):
                return
            self._set_state(NodeState.STOPPING)
            await self._stop_cluster(timeout=min(grace, 1.5))  # --- cluster (issue 7): goodbye first
            await self._stop_listeners(grace=grace)
            await self.tasks.close(timeout=grace)
            self._set_state(NodeState.STOPPED)
            self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # ---------------------------------------------------------------- parts

    async def _start_listeners(self) -> None:
        host = self.config.node.host
        infos: list[ListenerInfo] = []
        for listener in self.config.listeners():
            grpc_listener = GrpcListener(host, listener.port, health_names=listener.services or ())
            self._listeners.append(grpc_listener)
            bound = await grpc_listener.start()
            infos.append(ListenerInfo(host=host, port=bound, services=listener.services))
        self._snapshot = replace(self._snapshot, listeners=tuple(infos))

    async def _stop_listeners(self, grace: float) -> None:
        listeners, self._listeners = self._listeners, []
        await asyncio.gather(*(li.stop(grace) for li in listeners), return_exceptions=True)

    # --- cluster (issue 7) ------------------------------------------------------------------

    async def _start_cluster(self) -> None:
        """mDNS advertisement + discovery + peer table + broker feed (app/core/cluster)."""
        from app.core.cluster import Cluster

        self._cluster = Cluster(
            self.config,
            node_id=self._snapshot.node_id,
            snapshot=self.snapshot,
            bus=self.bus,
            on_peers=self._set_peers,
        )
        await self._cluster.start()

    async def _stop_cluster(self, timeout: float) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            await cluster.stop(timeout=timeout)
        self._snapshot = replace(self._snapshot, peers=())

    def _set_peers(self, peers: tuple[Any, ...]) -> None:
        self._snapshot = replace(self._snapshot, peers=peers)

    @property
    def cluster(self) -> Any:
        """The running :class:`app.core.cluster.Cluster` (None when stopped)."""
        return self._cluster

    # --- end cluster --------------------------------------------------------------------------

    def _set_state(self, state: NodeState) -> None:
        self._snapshot = replace(self._snapshot, state=state)
        self.bus.publish(NodeStateChanged(state=state))
