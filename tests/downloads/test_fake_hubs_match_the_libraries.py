"""The fake hubs satisfy the real client libraries (huggingface_hub, modelscope_hub) as the real
hubs do, so what the download tests prove against them holds for the protocol those libraries
speak. (The node itself speaks HTTP directly; the libraries are test-only.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.downloads.conftest import HF_REPO, MS_REPO, ONNX_FP16, clip_repo

PATTERNS = ["onnx/*fp16*", "*.json"]
EXPECTED = {"model_info.json", "open_clip_config.json", "tokenizer.json", *ONNX_FP16}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_huggingface_hub_snapshot_download(tmp_path, hf, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    folder = hub.snapshot_download(
        HF_REPO,
        endpoint=hf.url,
        cache_dir=tmp_path / "hf",
        local_dir=tmp_path / "out",
        allow_patterns=PATTERNS,
    )
    got = {k: v for k, v in _tree(Path(folder)).items() if not k.startswith(".cache/")}
    assert got == {p: files[p] for p in EXPECTED}
    heads = [e for e in hf.log if e.method == "HEAD"]
    assert heads and all(e.status in (200, 302) for e in heads)
    assert any(e.path.startswith("/cdn-lfs/") for e in hf.data_requests())  # LFS bytes via the CDN origin


def test_modelscope_hub_download_repo(tmp_path, ms):
    hub = pytest.importorskip("modelscope_hub")
    files = clip_repo()
    ms.add_repo(MS_REPO, files)
    api = hub.HubApi(
        config=hub.HubConfig(endpoint=ms.url, cache_dir=tmp_path / "ms", config_dir=tmp_path / "cfg")
    )
    folder = api.download_repo(MS_REPO, "model", local_dir=tmp_path / "out", allow_patterns=PATTERNS)
    got = {k: v for k, v in _tree(Path(folder)).items() if not k.startswith(".")}
    assert got == {p: files[p] for p in EXPECTED}
    assert any(e.path.endswith("/repo/files") for e in ms.log)
