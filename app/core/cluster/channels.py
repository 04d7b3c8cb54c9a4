"""One pooled gRPC channel per peer address for forwarded requests.

Channels use the Lumen Go SDK's client keepalive (a ping every 10 s during calls, 3 s to answer),
so a node forwarding a long inference looks to its peer exactly like an SDK client. A channel
whose connection failed is replaced (gRPC would otherwise keep it in reconnect backoff for up to
two minutes); a peer that leaves the table has its channels closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from app.core.tasks import TaskTracker
from proto.gen.home_native.v1 import ml_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

MiB = 1024 * 1024

# The Go SDK's grpc.WithKeepaliveParams(ClientParameters{Time: 10 s, Timeout: 3 s}).
SDK_KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 3_000),
)
FORWARD_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    *SDK_KEEPALIVE_OPTIONS,
    # results arrive split under 4 MiB; a little headroom for a peer that splits differently
    ("grpc.max_receive_message_length", 16 * MiB),
    ("grpc.max_send_message_length", 16 * MiB),
)
CLOSE_GRACE_S = 5.0  # calls still running on a dropped channel get this long to finish


class PeerChannels:
    """``stub(node_id, target)`` → the Inference stub on the one channel kept for ``target``."""

    def __init__(self, options: tuple[tuple[str, int], ...] = FORWARD_CHANNEL_OPTIONS) -> None:
        self._options = list(options)
        self._channels: dict[str, tuple[grpc.aio.Channel, pb_grpc.InferenceStub]] = {}
        self._by_node: dict[str, set[str]] = {}
        self._tasks = TaskTracker("cluster-channels")

    def stub(self, node_id: str, target: str) -> pb_grpc.InferenceStub:
        entry = self._channels.get(target)
        if entry is None:
            channel = grpc.aio.insecure_channel(target, options=self._options)
            entry = (channel, pb_grpc.InferenceStub(channel))
            self._channels[target] = entry
            self._by_node.setdefault(node_id, set()).add(target)
        return entry[1]

    def targets(self) -> list[str]:
        return sorted(self._channels)

    def discard_if_broken(self, target: str) -> bool:
        """Replace the channel to ``target`` if its connection failed; True when it was dropped."""
        entry = self._channels.get(target)
        if entry is None:
            return False
        state = entry[0].get_state(try_to_connect=False)
        if state is not grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            return False
        self._drop(target)
        return True

    def _drop(self, target: str) -> None:
        entry = self._channels.pop(target, None)
        for targets in self._by_node.values():
            targets.discard(target)
        if entry is not None:
            self._tasks.spawn(f"close:{target}", _close(entry[0], CLOSE_GRACE_S))

    def forget(self, node_id: str, keep: str | None = None) -> None:
        """Close the channels kept for ``node_id`` (all, or all but ``keep``)."""
        for target in list(self._by_node.get(node_id, ())):
            if target != keep:
                self._drop(target)
        if not self._by_node.get(node_id):
            self._by_node.pop(node_id, None)

    async def close(self, timeout: float = 1.0) -> None:
        """Close every channel; calls in flight get up to ``timeout`` seconds to finish."""
        channels = [channel for channel, _ in self._channels.values()]
        self._channels.clear()
        self._by_node.clear()
        await asyncio.gather(*(_close(channel, timeout) for channel in channels), return_exceptions=True)
        await self._tasks.close(timeout=timeout)  # earlier drops: a cancelled close has no grace


async def _close(channel: grpc.aio.Channel, grace: float) -> None:
    try:
        await channel.close(grace=grace)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await channel.close(grace=None)
        raise
    except Exception as exc:  # closing must never break anything
        log.debug("closing a peer channel: %s", exc)
