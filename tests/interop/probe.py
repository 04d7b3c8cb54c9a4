"""Running the Go wireprobe (tests/interop/go/cmd/wireprobe) against a node from pytest.

A node is advertised with python-zeroconf on loopback the way DESIGN §3.3 says the SDK needs it
(PTR, SRV, TXT ``v``/``runtime``, A), and the probe runs a JSON plan of steps; its summary line
is returned as a dict. Each step: ``{"name", "task", "text"|"file", "mime", "meta",
"correlation_id", "force"}`` (see the probe's ``step`` type).
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from zeroconf import ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from app import __version__

SERVICE_TYPE = "_lumen._tcp.local."


@asynccontextmanager
async def advertised(port: int, node_id: str, runtime: str = "onnxrt-cpu") -> AsyncIterator[str]:
    """Advertise a node on 127.0.0.1:``port``; yields the instance name."""
    name = f"lumen-test-{uuid.uuid4().hex[:8]}"
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        port=port,
        addresses=[socket.inet_aton("127.0.0.1")],
        properties={"v": __version__, "runtime": runtime, "id": node_id, "api": "1"},
        server=f"{name}.local.",
    )
    zc = AsyncZeroconf(interfaces=["127.0.0.1"])
    await zc.async_register_service(info)
    try:
        yield name
    finally:
        await zc.async_unregister_service(info)
        await zc.async_close()


async def run_probe(
    probe: Path,
    work: Path,
    steps: Sequence[dict[str, Any]],
    *,
    instance: str | None = None,
    target: str | None = None,
    cap_timeout: float = 30.0,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Run ``probe`` with ``steps`` (discovering ``instance``, or dialling ``target``)."""
    plan = work / f"plan-{uuid.uuid4().hex[:6]}.json"
    plan.write_text(json.dumps({"steps": list(steps)}))
    args = [str(probe), "-plan", str(plan), "-cap-timeout", f"{cap_timeout}s"]
    args += ["-target", target] if target else ["-iface", "127.0.0.1", "-instance", instance or ""]
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    lines = [line for line in out.decode().splitlines() if line.startswith("WIREPROBE-SUMMARY ")]
    assert process.returncode == 0 and lines, out.decode() + err.decode()
    return json.loads(lines[-1].removeprefix("WIREPROBE-SUMMARY "))
