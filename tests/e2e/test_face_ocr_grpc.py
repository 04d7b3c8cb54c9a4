"""A node hosting face + ocr on the testdata models answers ``face_recognition`` and ``ocr`` over
the real ``home_native.v1.Inference`` servicer, called the way the Go SDK calls it: images over
1 MiB sent as 256 KiB chunks, boxes in pixels of the image as sent."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.config import load_config
from app.core.node import Node
from tests.ocr.textcompare import same
from tests.support.model_dirs import build_ppocr_dir, build_yunet_mobilefacenet_dir
from tests.support.sdk_like_client import CHUNK_THRESHOLD, SdkLikeClient
from tests.support.testdata import expected, shared_data

FACE_MODEL, OCR_MODEL = "yunet-mobilefacenet", "PP-OCRv4-test"


def _config(folder: Path) -> Path:
    cache = folder / "cache"
    build_yunet_mobilefacenet_dir(cache / "models" / FACE_MODEL)
    build_ppocr_dir(cache / "models" / OCR_MODEL)
    text = f"""metadata:
  version: "1.0"
  region: other
  cache_dir: {cache}
node:
  host: 127.0.0.1
  port: 0
  http_port: 0
  mdns:
    enabled: false
downloads:
  auto_download: false
services:
  face:
    enabled: true
    models:
      default: {{model: {FACE_MODEL}, runtime: onnx}}
  ocr:
    enabled: true
    models:
      default: {{model: {OCR_MODEL}, runtime: onnx}}
"""
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _upscaled(relative: str, factor: int, *, noise: int = 0) -> tuple[bytes, Image.Image]:
    image = Image.open(shared_data(relative)).convert("RGB")
    big = image.resize((image.width * factor, image.height * factor), Image.Resampling.BICUBIC)
    if noise:  # faint noise keeps the PNG of a flat page large enough to be chunked
        pixels = np.asarray(big).astype(np.int16)
        pixels += np.random.default_rng(0).integers(-noise, noise + 1, pixels.shape, dtype=np.int16)
        big = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return _png(big), big


async def test_node_serves_face_and_ocr_to_an_sdk_like_client_with_chunked_images(tmp_path: Path) -> None:
    path = _config(tmp_path)
    node = Node.from_config(load_config(path), node_id="f" * 32, config_path=path)
    await node.start()
    try:
        target = f"127.0.0.1:{node.snapshot().listeners[0].port}"
        async with SdkLikeClient(target) as client:
            caps = {c.service_name: c for c in client.capabilities}
            assert set(caps) == {"face", "ocr"}
            assert [t.name for t in caps["face"].tasks] == [
                "face_recognition",
                "face_detect_and_embed",
                "face_detect",
            ]
            assert [t.name for t in caps["ocr"].tasks] == ["ocr"]
            assert list(caps["face"].model_ids) == [FACE_MODEL] and caps["ocr"].runtime == "onnxrt-cpu"

            collage, _ = _upscaled("images/faces/faces_collage_4.jpg", 2)
            assert len(collage) > CHUNK_THRESHOLD
            assert len(client.messages("face_recognition", collage, "image/png")) > 1  # really chunked
            reply = await client.infer("face_recognition", collage, "image/png", timeout=60)
            assert reply.response.result_mime == "application/json;schema=face_v1"
            faces = reply.result
            assert faces["count"] == 4 and faces["model_id"] == FACE_MODEL
            truth = expected()["face_detection"]["images/faces/faces_collage_4.jpg"]["yunet_s_640_640@0.6"]
            for want in truth["boxes"]:  # measured on the original: ×2 in the submitted image
                box = min(faces["faces"], key=lambda f: abs(f["bbox"][0] - 2 * want[0]))["bbox"]
                assert np.allclose(box, np.asarray(want) * 2, atol=20), (box, want)
            for face in faces["faces"]:
                assert np.linalg.norm(face["embedding"]) == pytest.approx(1.0, abs=1e-5)

            page, big = _upscaled("images/text/ocr_rendered_en.png", 3, noise=3)
            assert len(page) > CHUNK_THRESHOLD
            reply = await client.infer("ocr", page, "image/png", timeout=60)
            assert reply.response.result_mime == "application/json;schema=ocr_v1"
            lines = reply.result["items"]
            wanted = ["Hello World 2024", "Home AI inference node", "Invoice No. 48213"]
            assert len(lines) == 3 and all(same(w, i["text"]) for w, i in zip(wanted, lines, strict=True))
            measured = expected()["ocr"]["images/text/ocr_rendered_en.png"]["det_min_side_0"]
            for item, line in zip(lines, measured, strict=True):
                assert all(isinstance(v, int) and 0 <= v for point in item["box"] for v in point)
                xs, ys = [p[0] for p in item["box"]], [p[1] for p in item["box"]]
                assert max(xs) < big.width and max(ys) < big.height
                quad = np.asarray(line["box"]) * 3
                want = [quad[:, 0].min(), quad[:, 1].min(), quad[:, 0].max(), quad[:, 1].max()]
                assert np.allclose([min(xs), min(ys), max(xs), max(ys)], want, atol=30), (item["box"], want)
    finally:
        await node.stop(grace=0.5)
