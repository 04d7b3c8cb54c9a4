"""The whole product path: `lumen-hub start` on a config with real (tiny) model folders, then
`lumen-hub infer` / `status` as a user would call them, each a real process."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from tests.core.conftest import PYTHON, ROOT, free_port, write_config
from tests.core.test_start_command import _start, _wait_serving
from tests.support.tiny_models import image_bytes, write_bioclip_model, write_clip_model

SERVICES = """services:
  clip:
    enabled: true
    models:
      default: {model: tiny-clip, runtime: onnx, dataset: ImageNet_tiny}
  bioclip:
    enabled: true
    models:
      default: {model: tiny-bioclip, runtime: onnx}
"""


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "app.main", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_started_node_serves_clip_and_bioclip_to_the_cli(tmp_path: Path, isolated_home: dict) -> None:
    cache = tmp_path / "cache"
    write_clip_model(cache / "models", dataset="ImageNet_tiny", labels=("cat", "dog", "car"))
    write_bioclip_model(cache / "models", name="tiny-bioclip")
    port = free_port()
    config = write_config(tmp_path / "config.yaml", port, cache)
    text = config.read_text().replace("services: {}\n", SERVICES)
    config.write_text(text)
    env = isolated_home
    proc = _start(config, env)
    try:
        _wait_serving(proc, port)
        target = f"127.0.0.1:{port}"
        embed = _cli(env, "infer", "semantic_text_embed", "--text", "a cat", "--target", target, "--json")
        assert embed.returncode == 0, embed.stderr
        vector = json.loads(embed.stdout)
        assert vector["dim"] == len(vector["vector"]) == 8 and vector["model_id"] == "tiny-clip"

        picture = tmp_path / "photo.webp"
        picture.write_bytes(image_bytes(64, 48, fmt="WEBP"))
        labels = _cli(
            env,
            "infer",
            "bioclip_classify",
            "--file",
            str(picture),
            "--target",
            target,
            "--meta",
            "top_k=2",
            "--json",
        )
        assert labels.returncode == 0, labels.stderr
        assert len(json.loads(labels.stdout)["labels"]) == 2

        status = _cli(env, "status", "--target", target)
        assert status.returncode == 0, status.stderr
        assert "clip" in status.stdout and "bioclip" in status.stdout and "ready" in status.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
