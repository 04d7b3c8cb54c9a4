"""The real Lumen Go SDK (github.com/edwinzhancn/lumen-sdk v1.4.0) against a FakeHost node.

Runs only where the Go module proxy serves that module; on our machines it answers 403 "This
module version is not available", so the test skips quoting the proxy. The Go SDK-behaviour
checks that do run here are in test_go_wireprobe.py (grpc-go) and tests/grpc (Python).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from zeroconf import ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from app import __version__
from tests.grpc.conftest import ALL
from tests.interop.go_build import GO_MODULE, go_env, require_go
from tests.support.fake_host import FakeHost

pytestmark = pytest.mark.interop
SDK = "github.com/edwinzhancn/lumen-sdk@v1.4.0"


@pytest.fixture(scope="module")
def sdkprobe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = require_go()
    work = tmp_path_factory.mktemp("sdk")
    module = work / "module"
    shutil.copytree(GO_MODULE / "sdk", module)
    env = {**go_env(), "GOFLAGS": "-mod=mod -buildvcs=false"}
    fetch = subprocess.run(
        [go, "mod", "download", SDK], cwd=module, env=env, capture_output=True, text=True, timeout=300
    )
    if fetch.returncode != 0:
        reason = (fetch.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"the Go module proxy does not serve {SDK}: {reason}")
    for args in ([go, "mod", "tidy"], [go, "build", "-o", str(work / "sdkprobe"), "."]):
        done = subprocess.run(args, cwd=module, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    return work / "sdkprobe"


async def test_the_real_sdk_discovers_and_uses_the_node(
    sdkprobe: Path, make_node, tmp_path: Path, big_webp: bytes
):
    node = await make_node(FakeHost(ALL, tag="sdk"), services=ALL)
    name = f"lumen-test-{uuid.uuid4().hex[:8]}"
    info = ServiceInfo(
        "_lumen._tcp.local.",
        f"{name}._lumen._tcp.local.",
        port=node.snapshot().port,
        addresses=[socket.inet_aton("127.0.0.1")],
        properties={"v": __version__, "runtime": "fake-cpu"},
        server=f"{name}.local.",
    )
    zc = AsyncZeroconf()
    await zc.async_register_service(info)
    image = tmp_path / "big.webp"
    image.write_bytes(big_webp)
    try:
        process = await asyncio.create_subprocess_exec(
            str(sdkprobe), env={**go_env(), "SDKPROBE_IMAGE": str(image)}, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(process.communicate(), 120)
    finally:
        await zc.async_unregister_service(info)
        await zc.async_close()
    line = next(x for x in out.decode().splitlines() if x.startswith("SDKPROBE-SUMMARY "))
    results = json.loads(line.removeprefix("SDKPROBE-SUMMARY "))["results"]
    for task in (
        "semantic_text_embed",
        "semantic_image_embed",
        "bioclip_classify",
        "ocr",
        "face_recognition",
    ):
        assert "error" not in results[task], (task, results[task])
    assert results["semantic_text_embed"]["dim"] == results["semantic_image_embed"]["dim"] == 8
