"""The Go wireprobe (behaving as the Lumen Go SDK v1.4 line) against a node built as
``lumen-hub start`` builds it — ``Node.from_config``, the real ServiceHost, real onnxruntime —
on tiny generated CLIP and BioCLIP model folders, found over DNS-SD on loopback.

Services come from tests/support/real_node.REAL_SERVICES (face and OCR on the real weights of
../shared/testdata).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.node import Node
from services.api import InferenceRequest, ServiceState
from tests.interop.probe import advertised, run_probe
from tests.support.real_node import started_real_nodes
from tests.support.tiny_models import image_bytes

pytestmark = pytest.mark.interop


@pytest.fixture
async def real_node(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    async with started_real_nodes(tmp_path, id_base=7) as start:
        yield start


async def test_the_go_client_gets_real_clip_and_bioclip_results(
    wireprobe: Path, real_node, tmp_path: Path, big_webp: bytes
) -> None:
    node = await real_node(("clip", "bioclip"))
    big = tmp_path / "big.webp"
    big.write_bytes(big_webp)
    small = tmp_path / "small.webp"
    small.write_bytes(image_bytes(48, 32, fmt="WEBP"))
    bad = tmp_path / "bad.webp"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 this is not really an image")
    text = "a photo of a cat on the beach"
    steps = [
        {"name": "text", "task": "semantic_text_embed", "text": text, "mime": "text/plain"},
        {"name": "image", "task": "semantic_image_embed", "file": str(big), "mime": "image/webp"},
        {
            "name": "bioclip",
            "task": "bioclip_classify",
            "file": str(small),
            "mime": "image/webp",
            "meta": {"top_k": "2"},
        },
        {
            "name": "clip_classify",
            "task": "clip_classify",
            "file": str(small),
            "mime": "image/webp",
            "meta": {"topK": "3"},
        },
        {"name": "bad_image", "task": "semantic_image_embed", "file": str(bad), "mime": "image/webp"},
        {"name": "unknown", "task": "no_such_task", "text": "x", "mime": "text/plain", "force": True},
    ]
    async with advertised(node.snapshot().port, node.snapshot().node_id) as name:
        summary = await run_probe(wireprobe, tmp_path, steps, instance=name)

    assert summary["capability_fetch"]["compatible"] and summary["capability_fetch"]["attempts"] == 1
    by_service = {c["service"]: c for c in summary["capabilities"]}
    assert set(by_service) == {"clip", "bioclip"}
    assert "bioclip_classify" in by_service["bioclip"]["tasks"]
    assert not {"semantic_text_embed", "semantic_image_embed"} & set(by_service["bioclip"]["tasks"])

    results = summary["results"]
    for step in ("text", "image", "bioclip", "clip_classify"):
        assert not results[step].get("error") and not results[step]["client_error"], (step, results[step])
    embedded_text, embedded_image = results["text"]["parsed"], results["image"]["parsed"]
    assert embedded_text["dim"] == embedded_image["dim"] == embedded_text["len"] == 8
    assert embedded_text["model_id"] == embedded_image["model_id"] == "tiny-clip"
    assert abs(embedded_text["norm"] - 1) < 1e-4 and abs(embedded_image["norm"] - 1) < 1e-4
    assert results["image"]["chunks_sent"] == -(-len(big_webp) // (256 * 1024)) > 1
    # the same numbers the service host gives in-process
    assert node.host is not None
    direct = await node.host.infer(InferenceRequest("semantic_text_embed", text.encode(), "text/plain"))
    assert np.allclose(embedded_text["head"], direct.data["vector"][:4], atol=1e-6)

    bioclip = results["bioclip"]["parsed"]
    assert len(bioclip["labels"]) == 2 and bioclip["sorted_desc"] and bioclip["model_id"] == "tiny-bioclip"
    assert results["bioclip"]["meta"]["service"] == "bioclip"
    classified = results["clip_classify"]["parsed"]
    assert len(classified["labels"]) == 3 and classified["sorted_desc"]
    assert set(classified["labels"]) <= {"cat", "dog", "car", "tree", "beach"}

    assert (
        results["bad_image"]["code"] == "InvalidArgument" and not results["bad_image"]["counts_against_node"]
    )
    assert results["unknown"]["code"] == "NotFound"
    assert summary["node_health"]["hard_failures"] == 0


async def test_missing_and_downloading_services_as_the_sdk_sees_them(
    wireprobe: Path, real_node, tmp_path: Path
) -> None:
    node = await real_node(("clip", "bioclip"), overrides={"bioclip": {"write": False}})
    assert node.host is not None
    small = tmp_path / "small.webp"
    small.write_bytes(image_bytes(48, 32, fmt="WEBP"))
    target = f"127.0.0.1:{node.snapshot().port}"
    steps = [
        {"name": "missing", "task": "bioclip_classify", "file": str(small), "mime": "image/webp"},
        {"name": "text", "task": "semantic_text_embed", "text": "a dog", "mime": "text/plain"},
    ]
    summary = await run_probe(wireprobe, tmp_path, steps, target=target)
    missing = summary["results"]["missing"]
    # files missing and nothing fetching them: FAILED_PRECONDITION, not counted against the node
    assert missing["code"] == "FailedPrecondition" and "does not exist" in missing["error"]
    assert not missing["counts_against_node"] and summary["results"]["text"]["parsed"]["dim"] == 8

    node.host.hold("bioclip", ServiceState.DOWNLOADING, "fetching tiny-bioclip")
    summary = await run_probe(wireprobe, tmp_path, steps[:1] * 3, target=target)
    downloading = summary["results"]["missing"]
    # being fetched: UNAVAILABLE ("can't serve right now"), which the SDK counts; three in a row
    # start its cooldown for the whole node
    assert downloading["code"] == "Unavailable" and downloading["counts_against_node"]


async def test_the_go_client_gets_real_face_and_ocr_results(
    wireprobe: Path, real_node, tmp_path: Path
) -> None:
    from tests.support.testdata import shared_data

    node = await real_node(("face", "ocr"))
    collage = tmp_path / "collage.png"  # PNG of the 4-face collage: over 1 MiB, so it is chunked
    with Image.open(shared_data("images/faces/faces_collage_4.jpg")) as im:
        im.convert("RGB").save(collage, format="PNG", compress_level=0)
    assert collage.stat().st_size > 1024 * 1024
    no_face = shared_data("images/no_faces/coffee.jpg")
    text = shared_data("images/text/ocr_rendered_zh.png")
    steps = [
        {"name": "faces", "task": "face_recognition", "file": str(collage), "mime": "image/png"},
        {"name": "no_face", "task": "face_recognition", "file": str(no_face), "mime": "image/jpeg"},
        {"name": "ocr", "task": "ocr", "file": str(text), "mime": "image/png"},
    ]
    async with advertised(node.snapshot().port, node.snapshot().node_id) as name:
        summary = await run_probe(wireprobe, tmp_path, steps, instance=name)

    assert {c["service"] for c in summary["capabilities"]} == {"face", "ocr"}
    results = summary["results"]
    for step in ("faces", "no_face", "ocr"):
        assert not results[step].get("error") and not results[step]["client_error"], (step, results[step])
    faces = results["faces"]["parsed"]
    assert faces["count"] == faces["faces"] == faces["embeddings"] == 4  # faces with embeddings
    assert results["faces"]["chunks_sent"] > 1
    width, height = Image.open(collage).size
    for x1, y1, x2, y2 in faces["boxes"]:  # pixels of the submitted image
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert results["no_face"]["parsed"]["count"] == 0
    texts = [t.replace(" ", "") for t in results["ocr"]["parsed"]["texts"]]  # PP-OCRv4 may drop spaces
    assert texts[0] == "欢迎回家智能家居" and texts[1].startswith("温度23.5")
