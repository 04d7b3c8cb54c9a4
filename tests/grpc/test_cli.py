"""``lumen-hub infer`` / ``lumen-hub status`` against a running node (real subprocess, real gRPC)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from services.api import ServiceState
from tests.grpc.conftest import image_bytes, target
from tests.support.fake_host import FakeHost

ROOT = Path(__file__).resolve().parents[2]


async def _cli(*args: str, home: Path) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home), "XDG_CONFIG_HOME": str(home / "cfg")}
    env.pop("LUMEN_CONFIG", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.main",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_infer_text_prints_the_embedding_and_json_prints_only_the_result(
    make_node, tmp_path: Path
) -> None:
    node = await make_node(FakeHost(("clip",), tag="cli"))
    code, out, err = await _cli(
        "infer", "semantic_text_embed", "--text", "a cat", "--target", target(node), home=tmp_path
    )
    assert code == 0, err
    assert "embedding: dim 8, model clip-fake-cli" in out and "first values: [" in out
    code, out, _ = await _cli(
        "infer", "semantic_text_embed", "--text", "a cat", "--target", target(node), "--json", home=tmp_path
    )
    result = json.loads(out)
    assert code == 0 and result["dim"] == 8 and len(result["vector"]) == 8


async def test_infer_chunks_a_large_file_and_prints_labels(
    make_node, tmp_path: Path, big_webp: bytes
) -> None:
    host = FakeHost(("bioclip",), check_images=True)
    node = await make_node(host)
    image = tmp_path / "big.webp"
    image.write_bytes(big_webp)
    code, out, err = await _cli(
        "infer",
        "bioclip_classify",
        "--file",
        str(image),
        "--meta",
        "top_k=3",
        "--target",
        target(node),
        home=tmp_path,
    )
    assert code == 0, err
    assert "label" in out and "score" in out and "0.9000" in out
    call = host.services["bioclip"].calls[0]
    assert call.payload == big_webp and call.mime == "image/webp"
    assert call.meta["top_k"] == "3" and call.meta["service"] == "bioclip"


async def test_infer_errors_exit_1_with_the_status_code(make_node, tmp_path: Path) -> None:
    host = FakeHost(("face",))
    node = await make_node(host)
    image = tmp_path / "face.png"
    image.write_bytes(image_bytes(fmt="PNG"))
    code, _, err = await _cli("infer", "ocr", "--file", str(image), "--target", target(node), home=tmp_path)
    assert code == 1 and "NOT_FOUND" in err and "tasks offered" in err
    host.set_state("face", ServiceState.LOADING)
    code, _, err = await _cli(
        "infer", "face_recognition", "--file", str(image), "--target", target(node), home=tmp_path
    )
    assert code == 1 and "UNAVAILABLE" in err
    code, _, err = await _cli(
        "infer", "ocr", "--text", "x", "--meta", "oops", "--target", target(node), home=tmp_path
    )
    assert code == 2 and "KEY=VALUE" in err


async def test_no_node_at_the_target_says_how_to_start_one(tmp_path: Path) -> None:
    from tests.support.real_node import free_port

    dead = f"127.0.0.1:{free_port()}"
    code, _, err = await _cli("status", "--target", dead, home=tmp_path)
    assert code == 1 and "UNAVAILABLE" in err
    assert f"Is a node running at {dead}? Start one with `lumen-hub start`" in err


async def test_status_prints_node_info_and_service_states(make_node, tmp_path: Path) -> None:
    host = FakeHost(("clip", "ocr"))
    host.set_state("ocr", ServiceState.DOWNLOADING, "fetching PP-OCRv5")
    node = await make_node(host, services=("clip", "ocr"))
    code, out, err = await _cli("status", "--target", target(node), home=tmp_path)
    assert code == 0, err
    assert f"({node.snapshot().node_id[:8]})" in out and "running" in out
    assert "clip     ready" in out and "ocr      downloading  (fetching PP-OCRv5)" in out
    code, out, _ = await _cli("status", "--target", target(node), "--json", home=tmp_path)
    assert code == 0 and json.loads(out)["node_id"] == node.snapshot().node_id


async def test_default_target_is_the_configured_port(make_node, tmp_path: Path) -> None:
    node = await make_node(FakeHost(("clip",)))
    config = tmp_path / "pinned.yaml"
    config.write_text(
        node.config_path.read_text().replace("\n  port: 0\n", f"\n  port: {node.snapshot().port}\n")
    )
    code, out, err = await _cli("status", "--config", str(config), home=tmp_path)
    assert code == 0 and "running" in out, err
