"""The Go client pings during long RPCs; the node must never answer with GOAWAY too_many_pings.

A client pings every second (permit-without-calls, unlimited pings without data) through a
3-second inference and an idle pause, then calls again on the same channel; gRPC's keepalive
tracer shows the server received the pings and never sent GOAWAY.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from app.core.grpc.host_view import HostView
from app.core.grpc.inference import InferenceServicer, install_inference
from app.core.grpc.server import SERVER_OPTIONS, GrpcListener
from tests.support.fake_host import FakeHost
from tests.support.sdk_like_client import SdkLikeClient

ROOT = Path(__file__).resolve().parents[2]

PINGING_CLIENT = (
    ("grpc.keepalive_time_ms", 1000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_time_between_pings_ms", 1000),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
)


async def _serve(options) -> tuple[GrpcListener, FakeHost]:
    host = FakeHost(("clip",))
    host.services["clip"].delay_s = 3.0
    listener = GrpcListener(
        "127.0.0.1", 0, installers=[install_inference(InferenceServicer(HostView(host)))], options=options
    )
    await listener.start()
    return listener, host


async def _long_call_then_idle_then_call(port: int) -> None:
    async with SdkLikeClient(f"127.0.0.1:{port}", options=PINGING_CLIENT) as client:
        await client.infer("semantic_text_embed", b"long", "text/plain", timeout=20)
        await asyncio.sleep(2.5)
        await client.infer("semantic_text_embed", b"again", "text/plain", timeout=20)


async def probe() -> int:
    """Run the scenario once against the node's server options; prints OK when both calls succeed."""
    listener, host = await _serve(SERVER_OPTIONS)
    try:
        await _long_call_then_idle_then_call(listener.port)
    finally:
        await listener.stop(0)
    assert len(host.services["clip"].calls) == 2
    print("KEEPALIVE-PROBE-OK")
    return 0


def test_pings_every_second_never_get_a_goaway() -> None:
    """In a subprocess with gRPC's keepalive tracer on, so the test sees the pings really flow."""
    env = {**os.environ, "GRPC_VERBOSITY": "debug", "GRPC_TRACE": "http_keepalive", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", "import asyncio, tests.grpc.test_keepalive as k; asyncio.run(k.probe())"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "KEEPALIVE-PROBE-OK" in out.stdout, out.stdout + out.stderr[-3000:]
    received = re.findall(r"SERVER\[[^\]]*\]: received ping", out.stderr)
    assert len(received) >= 5, "the client did not ping as configured"
    assert "too_many_pings" not in out.stderr and "ENHANCE_YOUR_CALM" not in out.stderr
