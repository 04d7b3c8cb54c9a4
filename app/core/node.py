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
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from app import __version__
from app.core import node_commands
from app.core.downloads import DownloadManager, requests_from_config
from app.core.events import DownloadProgress, DownloadState, EventBus, NodeEvent, ServiceStatusChanged
from app.core.grpc.counters import RequestCounters
from app.core.grpc.health_policy import ServiceHealth
from app.core.grpc.host_view import HostView
from app.core.grpc.inference import InferenceServicer, install_inference
from app.core.grpc.node_api import NodeApiServicer, install_node_api
from app.core.grpc.server import GrpcListener
from app.core.tasks import TaskTracker
from services.api import ServiceHostProtocol, ServiceState, ServiceStatus, TaskNotFound

# --- gRPC hub (issue 6) ------------------------------------------------------------------------
# Service states whose per-service grpc.health.v1 name is SERVING (NOT_LOADED loads on first use).
# --- end gRPC hub ------------------------------------------------------------------------------

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


async def _step(name: str, work: Awaitable[None]) -> None:
    """One step of stopping the node: a failure is logged, and the next step still runs."""
    try:
        await work
    except Exception:
        log.exception("stopping the node: the %s step failed", name)


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
        port: int | None = None,
        bus: EventBus | None = None,
        host: ServiceHostProtocol | None = None,
    ) -> None:
        self.config = config if port is None else config.with_main_port(port)
        self.config_path = config_path
        self.port_override = port  # `start --port`: applied again to every config re-read from the file
        self.config_lock = asyncio.Lock()  # one config change (read, edit, save, apply) at a time
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
        # --- gRPC hub (issue 6)
        self.host = host
        self.counters = RequestCounters()
        self.health_policy = ServiceHealth()  # per-service health (health_policy.py)
        self._views: list[HostView] = []
        if host is not None:
            host.add_status_listener(self._on_service_status)
            self._snapshot = replace(self._snapshot, services=tuple(host.statuses()))
        # --- end gRPC hub
        self.downloads = self._new_download_manager()
        self._download_holds: dict[str, tuple[Any, str] | None] = {}

    @classmethod
    def from_config(
        cls, config: Any, *, node_id: str, config_path: Path | None = None, port: int | None = None
    ) -> Node:
        """A node with its default parts: the service host for the config's services."""
        from services.host import ServiceHost

        host = ServiceHost(config.service_specs(), config.host_settings())
        return cls(config, node_id=node_id, config_path=config_path, port=port, host=host)

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
                await self._start_host()
                await self._start_cluster()  # --- cluster (issue 7): after listeners and services
            except BaseException:
                await self._stop_cluster(timeout=0.5)  # --- cluster (issue 7)
                await self._stop_listeners(grace=0)
                await self._stop_host()
                self._set_state(NodeState.STOPPED)
                raise
            self._snapshot = replace(self._snapshot, started_at=time.time())
            self._set_state(NodeState.RUNNING)
            if self.config.downloads.auto_download:  # missing models, in the background
                self.tasks.spawn("downloads:auto", self.start_download())
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
            try:
                # each step runs even when one before it failed: a node always ends STOPPED
                await _step("cluster", self._stop_cluster(timeout=min(grace, 1.5)))  # goodbye first
                await _step("listeners", self._stop_listeners(grace=grace))
                await _step("downloads", self.downloads.close(timeout=grace))  # partial files stay
                self.downloads = self._new_download_manager()
                await _step("service host", self._stop_host())
                await _step("background tasks", self.tasks.close(timeout=grace))
            finally:
                self._set_state(NodeState.STOPPED)
                self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # ---------------------------------------------------------------- parts

    async def _start_listeners(self) -> None:
        host = self.config.node.host
        infos: list[ListenerInfo] = []
        for listener in self.config.listeners():
            view = HostView(self.host, listener.services)
            inference = InferenceServicer(
                view, node_id=self._snapshot.node_id, gate=self._serving_gate, counters=self.counters
            )
            inference.forwarder = self._forwarder()  # --- cluster (issue 7): routing to peers
            grpc_listener = GrpcListener(
                host,
                listener.port,
                installers=[install_inference(inference), install_node_api(NodeApiServicer(self))],
                health_names=view.service_names(),
            )
            self._listeners.append(grpc_listener)
            self._views.append(view)
            bound = await grpc_listener.start()
            infos.append(ListenerInfo(host=host, port=bound, services=listener.services))
        self._snapshot = replace(self._snapshot, listeners=tuple(infos))

    async def _stop_listeners(self, grace: float) -> None:
        listeners, self._listeners = self._listeners, []
        self._views = []
        await asyncio.gather(*(li.stop(grace) for li in listeners), return_exceptions=True)

    # --- gRPC hub (issue 6): host lifecycle, status → events/health, controller commands -------

    def hub_view(self) -> HostView:
        """Every hosted service (the main listener's view)."""
        return HostView(self.host, None)

    def _serving_gate(self) -> str | None:
        state = self._snapshot.state
        if state is NodeState.RUNNING:
            return None
        if state is NodeState.STARTING:
            return "the node is starting; try again in a moment"
        return "the node is stopping"

    async def _start_host(self) -> None:
        if self.host is not None:
            self.health_policy.warm_up(self.preloaded_services())
            await self.host.start()
            await self.sync_health()

    async def _stop_host(self) -> None:
        if self.host is not None:
            try:
                await self.host.stop()
            except Exception:
                log.exception("the service host failed to stop cleanly")

    def preloaded_services(self) -> list[str]:
        """Names of the configured services that load their model at start (``preload``)."""
        specs = getattr(self.config, "service_specs", None)
        return [spec.name for spec in specs() if spec.preload] if specs is not None else []

    async def sync_health(self) -> None:
        """Set every listener's per-service grpc.health.v1 name from the host's statuses."""
        if self.host is None:
            return
        serving = {s.name: self.health_policy.serving(s) for s in self.host.statuses()}
        for listener, view in zip(list(self._listeners), list(self._views), strict=True):
            if listener.started:
                for status in view.statuses():
                    await listener.set_serving(status.name, serving.get(status.name, False))

    def _on_service_status(self, status: ServiceStatus) -> None:
        if self.host is not None:
            self._snapshot = replace(self._snapshot, services=tuple(self.host.statuses()))
        self.bus.publish(ServiceStatusChanged(status=status))
        serving = self.health_policy.serving(status)  # decided now, in the order of the changes
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.tasks.spawn(f"health:{status.name}", self._set_health(status, serving))

    async def _set_health(self, status: ServiceStatus, serving: bool) -> None:
        for listener, view in zip(list(self._listeners), list(self._views), strict=True):
            if listener.started and view.allows(status.name):
                await listener.set_serving(status.name, serving)

    async def set_service_enabled(self, service: str, enabled: bool) -> None:
        await node_commands.set_service_enabled(self, service, enabled)

    async def reload_config(self) -> None:
        await node_commands.reload_config(self)

    # --- end gRPC hub
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

    def _forwarder(self) -> Any:
        """The Inference servicers' Forwarder: the running cluster's router (app/core/cluster/
        router.py), following ``node.forwarding`` and ``node.advertise_cluster`` live."""
        from app.core.cluster.forwarding import ClusterForwarder

        def router() -> Any:
            return self._cluster.router if self._cluster is not None else None

        return ClusterForwarder(router, settings=lambda: self.config.node)

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

    # ---------------------------------------------------------------- model downloads

    def _new_download_manager(self) -> DownloadManager:
        manager = DownloadManager(self.config, bus=self.bus)
        manager.add_listener(self._on_download_event)
        return manager

    async def start_download(self, model: str | None = None, *, force: bool = False) -> None:
        """Queue the missing models of the enabled services (``model``: only that one; ``force``:
        even when it is already in the cache)."""
        requests = requests_from_config(self.config)
        if model is not None:
            chosen = [r for r in requests if r.model == model]
            if not chosen:
                configured = ", ".join(r.model for r in requests) or "none"
                raise ValueError(f"{model!r} is not a model of an enabled service; configured: {configured}")
            requests = chosen
        manager = self.downloads
        if not force:
            requests = await manager.missing(requests)
        if manager is not self.downloads:
            return  # the node stopped (or the settings changed) while the cache was checked
        for request in requests:
            manager.submit(request, force=force)

    async def downloads_follow_config(self) -> None:
        """After a config change: rebuild the download manager (endpoints, owners, limits) when it
        is idle; a manager busy downloading keeps its settings until its jobs end."""
        if any(p.state.finished is False for p in self.downloads.snapshot()):
            log.info("downloads in progress keep the old download settings")
            return
        old, self.downloads = self.downloads, self._new_download_manager()
        await old.close()

    async def cancel_download(self, model: str) -> None:
        self.downloads.cancel(model)

    async def pause_download(self, model: str) -> None:
        self.downloads.pause(model)

    async def resume_download(self, model: str) -> None:
        self.downloads.resume(model)

    def _on_download_event(self, event: object) -> None:
        """Download-manager listener: keep ``snapshot.downloads`` current (latest progress per model)
        and hold the waiting services DOWNLOADING / FAILED through the service host, if any."""
        if not isinstance(event, DownloadProgress):
            return
        latest = {p.model: p for p in self._snapshot.downloads}
        latest[event.model] = event
        self._snapshot = replace(self._snapshot, downloads=tuple(latest.values()))
        if self._snapshot.state is NodeState.STOPPING:
            return  # cancellations while stopping say nothing about the services
        for service in event.services:
            self._apply_download_hold(service, [p for p in latest.values() if service in p.services])

    def _apply_download_hold(self, service: str, progress: list[DownloadProgress]) -> None:
        hold: tuple[Any, str] | None = None
        active = [p for p in progress if not p.state.finished]
        failed = [p for p in progress if p.state in (DownloadState.FAILED, DownloadState.CANCELLED)]
        if active:
            paused = all(p.state is DownloadState.PAUSED for p in active)
            verb = "download paused" if paused else "downloading"
            hold = (ServiceState.DOWNLOADING, f"{verb}: model {', '.join(p.model for p in active)}")
        elif failed:
            reasons = [f"{p.model}: {p.error or 'download cancelled'}" for p in failed]
            hold = (ServiceState.FAILED, "model download failed: " + "; ".join(reasons))
        if self._download_holds.get(service) == hold:
            return
        self._download_holds[service] = hold
        if self.host is None:
            return
        try:
            self.host.hold(service, *hold) if hold else self.host.hold(service, None)
        except TaskNotFound:
            pass  # disabled while its model downloaded
