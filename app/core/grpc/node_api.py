"""The ``lumen.node.v1.Node`` servicer: node info, the event stream and control calls.

Control calls go through the node's :class:`~app.core.node.NodeController` commands; they are
accepted only from this machine or with the admin token (auth.py). Commands the node does not
have (downloads, until the download manager is wired in) answer FAILED_PRECONDITION.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import grpc

from app.core.events import PeerChange, PeerChanged, ServiceStatusChanged
from app.core.grpc.auth import authorize_control
from app.core.grpc.counters import CounterSet, RequestCounters
from app.core.grpc.events_proto import event_message, peer_message
from app.core.grpc.host_view import HostView
from app.core.grpc.status_map import NotSupported, control_failure_for
from app.core.sysinfo import MachineInfo, machine_info, memory_bytes
from proto.gen.lumen.node.v1 import node_pb2 as pb
from proto.gen.lumen.node.v1 import node_pb2_grpc as pb_grpc
from services.api import ServiceState, ServiceStatus

log = logging.getLogger(__name__)

API_VERSION = "1"


class NodeApiBackend(Protocol):
    """What the servicer needs from the node (``app.core.node.Node`` provides it)."""

    config: Any
    bus: Any
    counters: RequestCounters

    def snapshot(self) -> Any: ...

    def hub_view(self) -> HostView: ...


def counters_message(counters: CounterSet | None) -> pb.RequestCounters:
    if counters is None:
        return pb.RequestCounters()
    return pb.RequestCounters(
        total=counters.total,
        ok=counters.ok,
        failed=counters.failed,
        in_flight=max(0, counters.in_flight),
        by_code=dict(counters.by_code),
    )


def node_info_message(node: NodeApiBackend, machine: MachineInfo | None = None) -> pb.NodeInfo:
    snap = node.snapshot()
    view = node.hub_view()
    machine = machine or machine_info()
    total, available = memory_bytes()
    tasks_by_service = {
        cap.service_name: [n for spec in cap.tasks for n in (spec.name, *spec.aliases)]
        for cap in view.capabilities()
    }
    services: list[pb.ServiceInfo] = []
    for status in view.statuses():
        services.append(
            pb.ServiceInfo(
                name=status.name,
                state=status.state.value,
                reason=status.reason,
                model_ids=list(status.model_ids),
                runtime=status.runtime,
                tasks=tasks_by_service.get(status.name, []),
                counters=counters_message(node.counters.services.get(status.name)),
            )
        )
    hosted = {s.name for s in services}
    for name, section in getattr(node.config, "services", {}).items():
        if name not in hosted and not section.enabled:
            services.append(
                pb.ServiceInfo(
                    name=name,
                    state=ServiceState.DISABLED.value,
                    reason="disabled in the config",
                    model_ids=[m.model for m in section.models.values()],
                )
            )
    started = snap.started_at or 0.0
    return pb.NodeInfo(
        node_id=snap.node_id,
        name=snap.name,
        version=snap.version,
        state=snap.state.value,
        os=machine.os,
        os_release=machine.os_release,
        arch=machine.arch,
        cpu_model=machine.cpu_model,
        cpu_count=machine.cpu_count,
        memory_total_bytes=total,
        memory_available_bytes=available,
        accelerators=list(machine.accelerators),
        runtimes=list(machine.runtimes),
        services=services,
        listeners=[
            pb.Listener(
                host=li.host, port=li.port, services=list(li.services or ()), main=li.services is None
            )
            for li in snap.listeners
        ],
        started_at=started,
        uptime_s=max(0.0, time.time() - started) if started else 0.0,
        counters=counters_message(node.counters.node),
        api_version=API_VERSION,
        python=machine.python,
        peers=[peer_message(peer) for peer in snap.peers],
    )


def snapshot_events(node: NodeApiBackend) -> list[object]:
    """The current state as events: node state, service statuses, downloads, peers."""
    from app.core.node import NodeStateChanged  # node.py imports this module

    snap = node.snapshot()
    events: list[object] = [NodeStateChanged(state=snap.state)]
    statuses = list(snap.services) or node.hub_view().statuses()
    events += [ServiceStatusChanged(status=s) for s in statuses if isinstance(s, ServiceStatus)]
    events += list(snap.downloads)
    events += [PeerChanged(change=PeerChange.ADDED, peer=p) for p in snap.peers]
    return events


class NodeApiServicer(pb_grpc.NodeServicer):
    def __init__(self, node: NodeApiBackend) -> None:
        self.node = node

    async def GetNodeInfo(self, request: pb.GetNodeInfoRequest, context: Any) -> pb.NodeInfo:
        machine = await asyncio.to_thread(machine_info)  # first call imports onnxruntime: off the loop
        return node_info_message(self.node, machine)

    async def WatchEvents(self, request: pb.WatchEventsRequest, context: Any) -> AsyncIterator[pb.Event]:
        topics = set(request.topics)
        events = self.node.bus.subscribe()  # subscribed before the snapshot: nothing is missed
        try:
            if request.initial_snapshot:
                for event in snapshot_events(self.node):
                    message = event_message(event, from_snapshot=True)
                    if message is not None and (not topics or message.topic in topics):
                        yield message
                yield pb.Event(topic="snapshot", from_snapshot=True, snapshot_end=pb.SnapshotEnd())
            async for event in events:  # bounded: a slow client loses the oldest events
                message = event_message(event)
                if message is not None and (not topics or message.topic in topics):
                    yield message
        finally:
            events.close()

    # ------------------------------------------------------------------ control

    async def _control(self, context: Any, action: Callable[[], Any], done: str) -> pb.ControlReply:
        try:
            authorize_control(context.peer(), context.invocation_metadata(), self._admin_token())
            await action()
        except Exception as exc:
            failure = control_failure_for(exc)
            await context.abort(failure.code, failure.message)
        return pb.ControlReply(message=done)

    def _admin_token(self) -> str | None:
        settings = getattr(self.node.config, "node", None)
        return getattr(settings, "admin_token", None)

    def _command(self, name: str) -> Callable[..., Any]:
        command = getattr(self.node, name, None)
        if command is None:
            raise NotSupported(
                f"this node cannot {name.replace('_', ' ')}: it has no download manager "
                "(downloads are managed by `lumen-hub download` or the tray app once that part is installed)"
            )
        return command

    async def SetServiceEnabled(self, request: pb.SetServiceEnabledRequest, context: Any) -> pb.ControlReply:
        verb = "enabled" if request.enabled else "disabled"
        return await self._control(
            context,
            lambda: self.node.set_service_enabled(request.service, request.enabled),  # type: ignore[attr-defined]
            f"service {request.service} {verb}; the config file was saved",
        )

    async def ReloadConfig(self, request: pb.ReloadConfigRequest, context: Any) -> pb.ControlReply:
        return await self._control(context, lambda: self.node.reload_config(), "config reloaded")  # type: ignore[attr-defined]

    async def StartDownload(self, request: pb.StartDownloadRequest, context: Any) -> pb.ControlReply:
        model = request.model or None
        what = f"download of {model}" if model else "download of every missing model"
        return await self._control(
            context, lambda: self._command("start_download")(model, force=request.force), f"{what} queued"
        )

    async def CancelDownload(self, request: pb.DownloadRequest, context: Any) -> pb.ControlReply:
        return await self._control(
            context,
            lambda: self._command("cancel_download")(request.model),
            f"download of {request.model} cancelled",
        )

    async def PauseDownload(self, request: pb.DownloadRequest, context: Any) -> pb.ControlReply:
        return await self._control(
            context,
            lambda: self._command("pause_download")(request.model),
            f"download of {request.model} paused",
        )

    async def ResumeDownload(self, request: pb.DownloadRequest, context: Any) -> pb.ControlReply:
        return await self._control(
            context,
            lambda: self._command("resume_download")(request.model),
            f"download of {request.model} resumed",
        )


def install_node_api(servicer: NodeApiServicer) -> Callable[[grpc.aio.Server], None]:
    def install(server: grpc.aio.Server) -> None:
        pb_grpc.add_NodeServicer_to_server(servicer, server)

    return install
