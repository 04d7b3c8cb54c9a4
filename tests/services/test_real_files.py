"""Real photos and a real third-party ONNX graph from ../shared/testdata (skipped if absent)."""

import asyncio
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.api import InferenceRequest
from tests.support.tiny_models import write_clip_model


def _testdata() -> Path:
    repo = Path(__file__).resolve().parents[2]
    candidates = [repo.parent / "shared" / "testdata", repo.parent.parent / "shared" / "testdata"]
    for root in candidates:  # <repo>/../shared (CI, main) or <worktree>/../../shared
        if root.is_dir():
            return root
    pytest.skip(f"shared test data not found at {' or '.join(str(c) for c in candidates)}")


@pytest.mark.parametrize("name", ["faces/astronaut.jpg", "faces/camera.png", "no_faces/rocket.jpg"])
async def test_real_photos_embed(tiny_clip, host_factory, name):
    raw = (_testdata() / "images" / name).read_bytes()
    host = host_factory([tiny_clip.service_spec()])
    result = await host.infer(InferenceRequest("semantic_image_embed", raw, "image/jpeg"))
    assert result.data["dim"] == tiny_clip.dim
    webp = io.BytesIO()
    Image.open(io.BytesIO(raw)).convert("RGB").save(webp, format="WEBP", quality=95)
    again = await host.infer(InferenceRequest("semantic_image_embed", webp.getvalue(), "image/webp"))
    assert float(np.dot(result.data["vector"], again.data["vector"])) > 0.99  # same picture, lossy copy


async def test_a_real_fixed_batch_graph_sets_size_and_dim(tmp_path, host_factory):
    """MobileFaceNet (input [1,3,112,112] -> [1,128]) as the vision encoder of a CLIP folder whose
    config says 16 px: the graph's static size wins, and batches are run one image at a time."""
    graph = _testdata() / "face" / "mobilefacenet" / "MobileFaceNet.onnx"
    model = write_clip_model(tmp_path, dim=128)
    shutil.copy(graph, model.path / "onnx" / "vision.fp32.onnx")
    host = host_factory([model.service_spec()], batch_max_wait_ms=20)
    photo = (_testdata() / "images" / "faces" / "grace_hopper.jpg").read_bytes()
    results = await asyncio.gather(
        *[host.infer(InferenceRequest("semantic_image_embed", photo, "image/jpeg")) for _ in range(3)]
    )
    assert all(r.data["dim"] == 128 for r in results)
    assert results[0].data["vector"] == pytest.approx(results[2].data["vector"], abs=1e-5)
    clip = host.model_slots("clip")["default"].instance
    assert (clip.preprocess.height, clip.preprocess.width) == (112, 112)  # the config says 16
