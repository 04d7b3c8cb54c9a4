"""A real Go client (grpc-go, behaving as the Lumen Go SDK v1.4) finds the node over mDNS and runs
every SDK task against it: semantic text and image embeddings (the image over 1 MiB, so chunked),
BioCLIP classification, OCR and face recognition, parsing each result by schema.

The node is advertised from the test with python-zeroconf on loopback (SRV, TXT ``v`` and
``runtime``, A), the way DESIGN §3.3 says the SDK needs it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from pathlib import Path

import pytest
from zeroconf import ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from app import __version__
from tests.grpc.conftest import ALL
from tests.interop.go_build import build_probe, require_go
from tests.support.fake_host import FakeHost

pytestmark = pytest.mark.interop

SERVICE_TYPE = "_lumen._tcp.local."


@pytest.fixture(scope="module")
def wireprobe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_go()
    return build_probe(tmp_path_factory.mktemp("go"))


async def _advertise(port: int, node_id: str) -> tuple[AsyncZeroconf, ServiceInfo, str]:
    name = f"lumen-test-{uuid.uuid4().hex[:8]}"
    info = ServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        port=port,
        addresses=[socket.inet_aton("127.0.0.1")],
        properties={"v": __version__, "runtime": "fake-cpu", "id": node_id, "api": "1", "svc": ",".join(ALL)},
        server=f"{name}.local.",
    )
    zc = AsyncZeroconf(interfaces=["127.0.0.1"])
    await zc.async_register_service(info)
    return zc, info, name


async def test_the_go_client_discovers_the_node_and_runs_every_sdk_task(
    wireprobe: Path, make_node, tmp_path: Path, big_webp: bytes
) -> None:
    host = FakeHost(ALL, check_images=True, tag="go")
    node = await make_node(host, services=ALL)
    port = node.snapshot().port
    zc, info, name = await _advertise(port, node.snapshot().node_id)
    image = tmp_path / "big.webp"
    image.write_bytes(big_webp)
    try:
        process = await asyncio.create_subprocess_exec(
            str(wireprobe),
            "-iface",
            "127.0.0.1",
            "-instance",
            name,
            "-image",
            str(image),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 90)
    finally:
        await zc.async_unregister_service(info)
        await zc.async_close()
    lines = [line for line in out.decode().splitlines() if line.startswith("WIREPROBE-SUMMARY ")]
    assert process.returncode == 0 and lines, out.decode() + err.decode()
    summary = json.loads(lines[-1].removeprefix("WIREPROBE-SUMMARY "))

    found = summary["node"]
    assert (found["instance"], found["address"], found["port"]) == (name, "127.0.0.1", port)
    assert found["txt"]["v"] == __version__ and found["txt"]["runtime"] == "fake-cpu"
    assert [c["service"] for c in summary["capabilities"]] == list(ALL)
    assert {c["protocol_version"] for c in summary["capabilities"]} == {"1.0.0"}

    results = summary["results"]
    expected = {
        "semantic_text_embed": "embedding_v1",
        "semantic_image_embed": "embedding_v1",
        "bioclip_classify": "labels_v1",
        "ocr": "ocr_v1",
        "face_recognition": "face_v1",
    }
    for task, schema in expected.items():
        result = results[task]
        assert not result.get("error"), (task, result)
        assert result["mime"] == f"application/json;schema={schema}" and result["schema"] == schema
    text, picture = results["semantic_text_embed"], results["semantic_image_embed"]
    assert text["parsed"] == picture["parsed"] == {"dim": 8, "model_id": "clip-fake-go"}
    assert text["chunks_sent"] == 1 and picture["chunks_sent"] == -(-len(big_webp) // (256 * 1024))
    assert host.services["clip"].calls[1].payload == big_webp  # reassembled byte for byte
    assert results["bioclip_classify"]["meta"]["service"] == "bioclip"
    assert host.services["bioclip"].calls[0].meta["top_k"] == "3"
    assert results["no_such_task"]["code"] == "NotFound"
