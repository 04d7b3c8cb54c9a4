"""Forwarding to a node that runs the real ServiceHost with a tiny CLIP model on onnxruntime: the
answer that arrives through the forwarding node is the one the serving node gives directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.core.cluster.router import SERVED_BY_KEY
from app.core.node import Node
from tests.cluster.conftest import node_config, node_id
from tests.cluster.routing_support import TEXT_TASK, client, routable, start_node
from tests.support.sdk_like_client import SdkLikeClient
from tests.support.tiny_models import image_bytes, write_clip_model

pytestmark = pytest.mark.timeout(60)


async def test_a_real_clip_service_answers_through_a_peer(
    nodes: list[Node], mdns_type: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    write_clip_model(cache / "models", name="tiny-clip")
    config = node_config(
        mdns_type,
        services={"clip": {"models": {"default": {"model": "tiny-clip", "runtime": "onnx"}}}},
        extra={
            "metadata": {"version": "1.0", "cache_dir": str(cache)},
            "downloads": {"auto_download": False},
        },
    )
    b = Node.from_config(config, node_id=node_id("b"))
    nodes.append(b)
    await b.start()
    a = await start_node(nodes, mdns_type, "a", ["ocr"])
    await routable(a)  # clip at b is NOT_LOADED (loads on first use): still a candidate
    picture = image_bytes(64, 48, fmt="WEBP")
    async with client(a) as through_a, SdkLikeClient(f"127.0.0.1:{b.snapshot().port}") as direct:
        for task, payload, mime in [
            (TEXT_TASK, b"a photo of a cat", "text/plain"),
            ("semantic_image_embed", picture, "image/webp"),
        ]:
            forwarded = await through_a.infer(task, payload, mime)
            answer = await direct.infer(task, payload, mime)
            assert forwarded.response.meta[SERVED_BY_KEY] == b.snapshot().node_id
            assert forwarded.result["model_id"] == answer.result["model_id"] == "tiny-clip"
            assert forwarded.result["dim"] == 8
            np.testing.assert_allclose(forwarded.result["vector"], answer.result["vector"], rtol=1e-6)
    assert a.cluster.router.forwarded == 2
