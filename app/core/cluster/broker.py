"""The broker feed for the Lumen Go SDK: ``ws://<node>:<http_port>/v1/nodes/watch``.

Go apps that cannot use multicast (containers, VPNs) set the SDK's broker URL to any node. On
connect, and again after every change, the node sends one text message::

    {"type": "snapshot", "nodes": [{"node_id": "...", "address": "host:port",
                                    "txt": {"v": "...", "runtime": "..."}}]}

listing every node it knows, itself included. Each message replaces the previous one (the SDK
treats a node missing from a snapshot as gone). The SDK (``pkg/discovery/broker_wire.go``)
rejects a snapshot with an empty ``node_id``, an address that is not ``host:port`` or a duplicate
``node_id``; it keeps only ``txt.v`` and ``txt.runtime``. ``node_id`` is the mDNS instance name,
the identity the SDK derives for the same node from mDNS, so both sources merge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from app.core.grpc.server import PortInUseError

log = logging.getLogger(__name__)

WATCH_PATH = "/v1/nodes/watch"
MAX_CONNECTIONS = 64

# (local address of the connection or None) -> the node entries of one snapshot
NodesSource = Callable[[str | None], list[dict[str, Any]]]


class BrokerPortInUseError(PortInUseError):
    """``node.http_port`` is taken."""

    def __init__(self, host: str, port: int, reason: str = "") -> None:
        RuntimeError.__init__(
            self,
            f"the broker feed port {port} on {host} (node.http_port) is not available"
            f"{': ' + reason if reason else ''}. Stop the program using it, pick another port "
            f"with `node.http_port` / LUMEN_NODE__HTTP_PORT={port + 1}, or set it to 0 to turn "
            f"the feed off.",
        )
        self.host = host
        self.port = port


def snapshot_message(nodes: list[dict[str, Any]]) -> str:
    return json.dumps({"type": "snapshot", "nodes": nodes}, separators=(",", ":"), sort_keys=False)


class BrokerFeed:
    def __init__(self, host: str, port: int, nodes: NodesSource) -> None:
        self._host = host
        self._port = port
        self._nodes = nodes
        self._server: Server | None = None
        self._wakeups: set[asyncio.Event] = set()
        self.port: int | None = None

    async def start(self) -> int:
        """Bind and serve; returns the bound port. Raises :class:`BrokerPortInUseError`."""
        try:
            self._server = await serve(
                self._handle,
                self._host,
                self._port,
                process_request=self._check_request,
                ping_interval=20,
                max_size=4096,  # clients send nothing but control frames
                compression=None,
            )
        except OSError as exc:
            raise BrokerPortInUseError(self._host, self._port, exc.strerror or str(exc)) from exc
        sockets = list(self._server.sockets)
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("broker feed on ws://%s:%d%s", self._host, self.port, WATCH_PATH)
        return self.port

    def notify(self) -> None:
        """The node list may have changed: every connection re-sends if its snapshot differs."""
        for event in list(self._wakeups):
            event.set()

    async def stop(self, timeout: float = 1.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), timeout)
        except asyncio.TimeoutError:
            log.warning("broker feed connections did not close within %.1fs", timeout)

    @property
    def connection_count(self) -> int:
        return len(self._wakeups)

    # ---------------------------------------------------------------- HTTP + WebSocket

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path.rstrip("/")
        if path != WATCH_PATH:
            return connection.respond(
                HTTPStatus.NOT_FOUND, f"not found: {path or '/'}; the node list is at {WATCH_PATH}\n"
            )
        if len(self._wakeups) >= MAX_CONNECTIONS:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many watchers; retry later\n")
        return None

    async def _handle(self, connection: ServerConnection) -> None:
        wakeup = asyncio.Event()
        self._wakeups.add(wakeup)
        local = connection.local_address
        local_host = local[0] if isinstance(local, tuple) and local else None
        closed = asyncio.ensure_future(connection.wait_closed())
        last = ""
        try:
            while True:
                wakeup.clear()
                message = snapshot_message(self._nodes(local_host))
                if message != last:
                    await connection.send(message)
                    last = message
                waiter = asyncio.ensure_future(wakeup.wait())
                done, _ = await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed in done:
                    waiter.cancel()
                    return
        except Exception as exc:  # the client went away mid-send
            log.debug("broker watcher %s left: %s", connection.remote_address, exc)
        finally:
            self._wakeups.discard(wakeup)
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closed
