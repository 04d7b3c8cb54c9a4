"""One grpc.aio listener: binds at once, serves ``grpc.health.v1``, stops gracefully.

Other servicers (``home_native.v1.Inference``, ``lumen.node.v1``) are installed by the
``installers`` given to the constructor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from app.core.grpc.chunks import PayloadLimits

log = logging.getLogger(__name__)

MiB = 1024 * 1024

# Server options the Lumen Go SDK needs (DESIGN.md §3.1): it pings every 10 s during RPCs, so
# pings must never count as abuse; messages stay under 4 MiB on the way out, but a whole image
# (up to PayloadLimits.max_bytes) may arrive in one message on the way in.
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.so_reuseport", 0),  # a second node on the same port must fail, not share it
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", PayloadLimits().max_message_bytes),
    ("grpc.max_send_message_length", 16 * MiB),
)

OVERALL = ""  # the health name of the whole node


class PortInUseError(RuntimeError):
    """The listen address is taken (most likely by another node)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            f"port {port} on {host} is already in use (is another Lumen node running?). "
            f"Stop the other process, or start this node on another port with "
            f"`lumen-hub start --port {port + 1}` or `LUMEN_NODE__PORT={port + 1}`."
        )
        self.host = host
        self.port = port


ServicerInstaller = Callable[[grpc.aio.Server], None]


class GrpcListener:
    """A bound gRPC server with a health service. ``port=0`` picks a free port."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        installers: Sequence[ServicerInstaller] = (),
        health_names: Sequence[str] = (),
        options: Sequence[tuple[str, int]] = SERVER_OPTIONS,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._installers = list(installers)
        self._health_names = list(health_names)
        self._options = list(options)
        self._server: grpc.aio.Server | None = None
        self.health = HealthServicer()

    @property
    def started(self) -> bool:
        return self._server is not None

    async def start(self) -> int:
        """Bind and start serving; returns the bound port. Raises :class:`PortInUseError`."""
        if self._server is not None:
            assert self.port is not None
            return self.port
        server = grpc.aio.server(options=self._options)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for install in self._installers:
            install(server)
        address = f"{_bracket(self.host)}:{self.requested_port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise PortInUseError(self.host, self.requested_port) from exc
        if bound == 0:
            raise PortInUseError(self.host, self.requested_port)
        await server.start()
        self._server = server
        self.port = bound
        await self.health.set(OVERALL, health_pb2.HealthCheckResponse.SERVING)
        for name in self._health_names:
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info("gRPC listening on %s:%d", self.host, bound)
        return bound

    async def set_serving(self, name: str, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set(name, status)

    async def stop(self, grace: float = 3.0) -> None:
        """Mark everything NOT_SERVING, then stop with ``grace`` seconds for running calls."""
        server, self._server = self._server, None
        if server is None:
            return
        await self.health.enter_graceful_shutdown()
        await server.stop(grace)
        log.info("gRPC listener on port %s stopped", self.port)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
