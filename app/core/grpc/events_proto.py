"""app/core/events.py dataclasses → lumen.node.v1 messages, field for field."""

from __future__ import annotations

from enum import Enum
from typing import Any

from app.core.events import DownloadProgress, FileProgress, PeerChanged, PeerInfo, ServiceStatusChanged
from proto.gen.lumen.node.v1 import node_pb2 as pb


def _value(item: Any) -> str:
    return str(item.value) if isinstance(item, Enum) else str(item)


def service_status_message(status: Any) -> pb.ServiceStatus:
    return pb.ServiceStatus(
        name=status.name,
        state=_value(status.state),
        reason=status.reason,
        model_ids=list(status.model_ids),
        runtime=status.runtime,
    )


def download_message(event: DownloadProgress) -> pb.DownloadProgress:
    message = pb.DownloadProgress(
        model=event.model,
        repo_id=event.repo_id,
        source=event.source,
        state=_value(event.state),
        bytes_done=max(0, int(event.bytes_done)),
        bytes_total=max(0, int(event.bytes_total)),
        files_done=max(0, int(event.files_done)),
        files_total=max(0, int(event.files_total)),
        current_file=event.current_file,
        speed_bps=float(event.speed_bps),
        error=event.error,
        services=list(event.services),
    )
    if event.eta_s is not None:
        message.eta_s = float(event.eta_s)
    return message


def file_message(event: FileProgress) -> pb.FileProgress:
    return pb.FileProgress(
        model=event.model,
        path=event.path,
        state=_value(event.state),
        bytes_done=max(0, int(event.bytes_done)),
        bytes_total=max(0, int(event.bytes_total)),
    )


def peer_message(peer: PeerInfo) -> pb.PeerInfo:
    message = pb.PeerInfo(
        node_id=peer.node_id,
        name=peer.name,
        addresses=list(peer.addresses),
        port=int(peer.port),
        version=peer.version,
        os=peer.os,
        runtime=peer.runtime,
        accelerators=list(peer.accelerators),
        services=[
            pb.PeerService(
                name=s.name,
                state=_value(s.state),
                tasks=list(s.tasks),
                model_ids=list(s.model_ids),
                runtime=s.runtime,
            )
            for s in peer.services
        ],
        state=peer.state,
        in_flight=max(0, int(peer.in_flight)),
        first_seen=float(peer.first_seen),
        last_seen=float(peer.last_seen),
    )
    if peer.rtt_ms is not None:
        message.rtt_ms = float(peer.rtt_ms)
    return message


def event_message(event: object, *, from_snapshot: bool = False) -> pb.Event | None:
    """The Event for a bus event, or None for events the node API does not carry."""
    topic = str(getattr(event, "topic", ""))
    if isinstance(event, ServiceStatusChanged) and event.status is not None:
        return pb.Event(
            topic=topic,
            from_snapshot=from_snapshot,
            service_status=pb.ServiceStatusChanged(status=service_status_message(event.status)),
        )
    if isinstance(event, DownloadProgress):
        return pb.Event(topic=topic, from_snapshot=from_snapshot, download=download_message(event))
    if isinstance(event, FileProgress):
        return pb.Event(topic=topic, from_snapshot=from_snapshot, file=file_message(event))
    if isinstance(event, PeerChanged):
        peer = peer_message(event.peer) if event.peer is not None else pb.PeerInfo()
        return pb.Event(
            topic=topic,
            from_snapshot=from_snapshot,
            peer=pb.PeerChanged(change=_value(event.change), peer=peer),
        )
    if topic == "node" and hasattr(event, "state"):  # app.core.node.NodeStateChanged
        return pb.Event(
            topic=topic,
            from_snapshot=from_snapshot,
            node_state=pb.NodeStateChanged(state=_value(event.state)),
        )
    return None
