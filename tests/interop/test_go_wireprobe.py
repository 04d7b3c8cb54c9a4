"""A real Go client (grpc-go, behaving as the Lumen Go SDK v1.4 line; see the probe's sources)
finds the node over DNS-SD and runs every SDK task against it: semantic text and image
embeddings (the image over 1 MiB, so chunked), BioCLIP classification, OCR and face recognition,
parsing each result into the SDK's own field types. FakeHost behind the node; the real-model
runs are in test_go_real_models.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app import __version__
from services.api import ServiceState
from tests.grpc.conftest import ALL, free_port
from tests.interop.probe import advertised, run_probe
from tests.support.fake_host import FakeHost, SlowStartHost

pytestmark = pytest.mark.interop


def _steps(image: Path) -> list[dict[str, object]]:
    webp = {"file": str(image), "mime": "image/webp"}
    return [
        {"name": "text", "task": "semantic_text_embed", "text": "a red fox", "mime": "text/plain"},
        {"name": "image", "task": "semantic_image_embed", **webp, "correlation_id": "lumilio-42"},
        {"name": "bioclip", "task": "bioclip_classify", **webp, "meta": {"top_k": "3"}},
        # what ForBioCLIPClassify sets in one SDK version: service "clip" for a BioCLIP task
        {"name": "bioclip_hint", "task": "bioclip_classify", **webp, "meta": {"service": "clip"}},
        {"name": "ocr", "task": "ocr", **webp, "meta": {"service": "ppocr"}},
        {"name": "face", "task": "face_recognition", **webp},
        {"name": "unknown", "task": "no_such_task", "text": "x", "mime": "text/plain"},
        {"name": "unknown_forced", "task": "no_such_task", "text": "x", "mime": "text/plain", "force": True},
    ]


async def test_the_go_client_discovers_the_node_and_runs_every_sdk_task(
    wireprobe: Path, make_node, tmp_path: Path, big_webp: bytes
) -> None:
    host = FakeHost(ALL, check_images=True, tag="go")
    node = await make_node(host, services=ALL)
    port = node.snapshot().port
    image = tmp_path / "big.webp"
    image.write_bytes(big_webp)
    async with advertised(port, node.snapshot().node_id, runtime="fake-cpu") as name:
        summary = await run_probe(wireprobe, tmp_path, _steps(image), instance=name)

    found = summary["node"]
    assert (found["instance"], found["address"], found["port"]) == (name, "127.0.0.1", port)
    assert found["txt"]["v"] == __version__ and found["txt"]["runtime"] == "fake-cpu"
    fetch = summary["capability_fetch"]
    assert fetch["attempts"] == 1 and fetch["compatible"] and not fetch["used_get_capabilities"]
    assert [c["service"] for c in summary["capabilities"]] == list(ALL)
    assert {c["protocol_version"] for c in summary["capabilities"]} == {"1.0.0"}

    results = summary["results"]
    expected = {"text": "embedding_v1", "image": "embedding_v1", "bioclip": "labels_v1"}
    expected |= {"bioclip_hint": "labels_v1", "ocr": "ocr_v1", "face": "face_v1"}
    for step, schema in expected.items():
        result = results[step]
        assert not result.get("error") and not result["client_error"], (step, result)
        assert result["mime"] == f"application/json;schema={schema}" and result["schema"] == schema
    text, picture = results["text"]["parsed"], results["image"]["parsed"]
    assert (text["dim"], text["model_id"]) == (picture["dim"], picture["model_id"]) == (8, "clip-fake-go")
    assert results["text"]["chunks_sent"] == 1
    assert results["image"]["chunks_sent"] == -(-len(big_webp) // (256 * 1024))
    assert set(results["image"]["chunk_correlation_ids"]) == {"lumilio-42"}  # the SDK repeats it
    assert results["image"]["correlation_id"] == "lumilio-42"
    assert host.services["clip"].calls[1].payload == big_webp  # reassembled byte for byte
    # meta.service: filled when one service owns the task, the caller's value kept otherwise
    assert results["bioclip"]["sent_meta"]["service"] == "bioclip"
    assert results["bioclip_hint"]["sent_meta"]["service"] == "clip"
    assert results["bioclip_hint"]["meta"]["service"] == "bioclip"  # routed by task, hint tolerated
    assert results["ocr"]["meta"]["service"] == "ocr"
    assert host.services["bioclip"].calls[0].meta["top_k"] == "3"
    # an unknown task: the SDK's picker refuses it; sent anyway, the node says NOT_FOUND
    assert not results["unknown"]["sdk_routes"] and "no node supports" in results["unknown"]["client_error"]
    assert results["unknown_forced"]["code"] == "NotFound"
    assert not results["unknown_forced"]["counts_against_node"]
    assert summary["node_health"]["hard_failures"] == 0


async def test_a_starting_node_is_retried_like_the_sdk_retries_it(
    wireprobe: Path, make_node, tmp_path: Path
) -> None:
    port = free_port()
    host = SlowStartHost(("clip",))
    node = await make_node(host, start=False, port=port)
    starting = asyncio.ensure_future(node.start())
    steps = [{"name": "text", "task": "semantic_text_embed", "text": "a cat", "mime": "text/plain"}]
    probe = asyncio.ensure_future(run_probe(wireprobe, tmp_path, steps, target=f"127.0.0.1:{port}"))
    try:
        await asyncio.sleep(2.0)  # the probe's first fetches meet a starting node
    finally:
        host.release.set()
        await starting
    summary = await probe
    fetch = summary["capability_fetch"]
    assert fetch["attempts"] >= 2 and set(fetch["codes"]) == {"Unavailable"} and fetch["compatible"]
    assert summary["results"]["text"]["parsed"]["dim"] == 8
    assert summary["node_health"]["hard_failures"] == 0  # no request was sent to fail


async def test_while_every_service_downloads_the_sdk_waits_instead_of_failing(
    wireprobe: Path, make_node, tmp_path: Path
) -> None:
    host = FakeHost(("clip", "ocr"))
    host.hold("clip", ServiceState.DOWNLOADING, "fetching MobileCLIP2-S2")
    host.hold("ocr", ServiceState.DOWNLOADING, "fetching PP-OCRv5")
    node = await make_node(host, services=("clip", "ocr"))
    steps = [
        {"name": "text", "task": "semantic_text_embed", "text": "a cat", "mime": "text/plain"},
        {"name": "ocr", "task": "ocr", "text": "still downloading", "mime": "image/webp", "force": True},
    ]
    target = f"127.0.0.1:{node.snapshot().port}"
    probe = asyncio.ensure_future(run_probe(wireprobe, tmp_path, steps, target=target))
    await asyncio.sleep(1.5)
    host.hold("clip", None)  # clip's files arrived; OCR still downloads
    summary = await probe
    assert set(summary["capability_fetch"]["codes"]) == {"Unavailable"}
    assert summary["results"]["text"]["parsed"]["dim"] == 8
    ocr = summary["results"]["ocr"]
    assert ocr["code"] == "Unavailable" and "downloading" in ocr["error"] and ocr["counts_against_node"]
