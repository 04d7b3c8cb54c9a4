"""``lumen-hub download / list / remove / validate-model-info`` end to end against the fake hubs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli.download_view import ProgressView
from app.core.events import DownloadProgress, DownloadState
from app.main import main
from tests.downloads.conftest import (
    DATASET,
    HF_REPO,
    MODEL,
    ONNX_FP16,
    RK3588,
    SUPPORT,
    clip_repo,
    write_config,
)
from tests.support.fake_hubs import Fault

ROOT = Path(__file__).resolve().parents[2]
VISION = "onnx/vision.fp16.onnx"
FACE = "TestFace"
TWO_SERVICES = {
    "clip": {
        "models": {
            "default": {"model": MODEL, "runtime": "onnx", "precision": "fp16", "dataset": "ImageNet_1k"}
        }
    },
    "face": {"models": {"default": {"model": FACE, "runtime": "rknn", "rknn_device": "rk3588"}}},
}


def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "models"


def test_download_then_again_then_force(tmp_path, hf, capsys):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    config = write_config(tmp_path, hf=hf)
    assert main(["download", str(config)]) == 0
    out = capsys.readouterr().out
    assert "Summary: 1 downloaded" in out and f"{MODEL}  done" in out and HF_REPO in out
    assert (models_dir(tmp_path) / MODEL / VISION).read_bytes() == files[VISION]

    hf.clear_log()
    assert main(["download", "--config", str(config)]) == 0
    assert f"{MODEL}: already downloaded" in capsys.readouterr().out
    assert hf.fetched_files() == set()

    assert main(["download", str(config), "--force"]) == 0
    assert "Summary: 1 downloaded" in capsys.readouterr().out
    assert hf.fetched_files() == {"model_info.json", *SUPPORT, *ONNX_FP16, DATASET}


def test_a_failure_exits_1_naming_the_model_and_the_reason(tmp_path, hf, capsys):
    hf.add_repo(HF_REPO, clip_repo())
    config = write_config(tmp_path, hf=hf, services=TWO_SERVICES)  # no TestFace repository anywhere
    assert main(["download", str(config)]) == 1
    captured = capsys.readouterr()
    assert "Summary: 1 downloaded, 1 failed" in captured.out
    assert f"lumen-hub download: {FACE}: every source failed" in captured.err
    assert f"no repository 'Lumilio-Photos/{FACE}'" in captured.err


def test_only_limits_the_services(tmp_path, hf, capsys):
    hf.add_repo(HF_REPO, clip_repo())
    hf.add_repo(f"Lumilio-Photos/{FACE}", clip_repo(FACE, seed=5))
    config = write_config(tmp_path, hf=hf, services=TWO_SERVICES)
    assert main(["download", str(config), "--only", "face"]) == 0
    assert {e.repo for e in hf.data_requests()} == {f"Lumilio-Photos/{FACE}"}
    assert hf.fetched_files() == {"model_info.json", *SUPPORT, *RK3588}
    capsys.readouterr()
    assert main(["download", str(config), "--only", "ocr"]) == 2
    assert "--only ocr: not an enabled service of this config; enabled: clip, face" in capsys.readouterr().err


def test_download_without_a_config_is_a_clear_error(tmp_path, capsys):
    assert main(["download", str(tmp_path / "missing.yaml")]) == 1
    assert "no config file at" in capsys.readouterr().err


def test_a_killed_download_resumes_on_the_next_run(tmp_path, hf, capsys):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject(VISION, Fault(stall_after=111_111, stall_s=30))
    config = write_config(tmp_path, hf=hf, read_timeout_s=30)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "app.main", "download", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = models_dir(tmp_path) / ".staging" / MODEL / (VISION + ".partial")
    try:
        deadline = time.monotonic() + 30
        while not (partial.exists() and partial.stat().st_size == 111_111):
            assert time.monotonic() < deadline, "the child never got the first bytes"
            assert child.poll() is None, "the child ended early"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert not (models_dir(tmp_path) / MODEL).exists()

    assert main(["download", str(config)]) == 0, capsys.readouterr().err
    vision = hf.data_requests(VISION)
    assert [e.range_start for e in vision] == [None, 111_111]
    assert (models_dir(tmp_path) / MODEL / VISION).read_bytes() == files[VISION]


def test_list_shows_versions_runtimes_sizes_and_completeness(tmp_path, hf, capsys):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.add_repo(f"Lumilio-Photos/{FACE}", clip_repo(FACE, seed=5, version="2.1.0"))
    config = write_config(tmp_path, hf=hf, services=TWO_SERVICES)
    assert main(["download", str(config)]) == 0
    (models_dir(tmp_path) / FACE / RK3588[0]).unlink()  # damage one model
    partial = models_dir(tmp_path) / ".staging" / "Half" / "onnx" / "x.onnx.partial"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * 2048)
    capsys.readouterr()

    assert main(["list", "--cache-dir", str(tmp_path / "cache")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "RUNTIMES", "SIZE", "STATUS"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    clip_size = sum(len(files[p]) for p in {"model_info.json", *SUPPORT, *ONNX_FP16, DATASET})
    assert rows[MODEL].split()[1:4] == ["1.0.0", "onnx", "fp16"]
    assert f"{clip_size / 1000:.1f} KB" in rows[MODEL] and rows[MODEL].endswith("complete")
    assert "2.1.0" in rows[FACE] and f"incomplete: {RK3588[0]} missing or changed" in rows[FACE]
    assert rows[FACE].split()[2] == "-"  # no runtime is complete: rk3588 lacks a file now
    assert rows["Half"].endswith("partial download")
    assert lines[-1].startswith("3 models (1 complete)")

    assert main(["list", "--cache-dir", str(models_dir(tmp_path))]) == 0  # the models folder itself
    assert MODEL in capsys.readouterr().out
    assert main(["list", "--config", str(config)]) == 0
    assert MODEL in capsys.readouterr().out


def test_list_of_an_empty_cache(tmp_path, capsys):
    assert main(["list", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("No models in ")


def test_remove_deletes_the_model_and_refuses_paths(tmp_path, hf, capsys):
    hf.add_repo(HF_REPO, clip_repo())
    config = write_config(tmp_path, hf=hf)
    assert main(["download", str(config)]) == 0
    capsys.readouterr()
    cache = str(tmp_path / "cache")
    for bad in ("../etc", "/tmp", "a/b", ".."):
        assert main(["remove", bad, "--cache-dir", cache]) == 2
        assert "is not a model name" in capsys.readouterr().err
    assert main(["remove", "Unknown", "--cache-dir", cache]) == 1
    assert "no model 'Unknown'" in capsys.readouterr().err
    assert main(["remove", MODEL, "--cache-dir", cache]) == 0
    assert capsys.readouterr().out.startswith(f"Removed {MODEL} from ")
    assert not (models_dir(tmp_path) / MODEL).exists()
    assert not (models_dir(tmp_path) / ".index" / f"{MODEL}.json").exists()
    assert main(["list", "--cache-dir", cache]) == 0
    assert "No models" in capsys.readouterr().out


def test_validate_model_info(tmp_path, capsys):
    files = clip_repo()
    good = tmp_path / "model_info.json"
    good.write_bytes(files["model_info.json"])
    assert main(["validate-model-info", str(good)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "onnx: precisions fp32, fp16; components text, vision; 4 files" in out
    assert "rknn: devices rk3566, rk3588" in out and "ImageNet_1k (ImageNet_1k.npz)" in out
    info = json.loads(files["model_info.json"])
    info["runtimes"]["onnx"]["available"] = "yes"
    good.write_text(json.dumps(info))
    assert main(["validate-model-info", str(good)]) == 1
    assert "runtimes.onnx.available: must be true or false (got 'yes')" in capsys.readouterr().err
    assert main(["validate-model-info", str(tmp_path / "nothing.json")]) == 1
    assert "file not found" in capsys.readouterr().err


def _event(state: DownloadState, done: int, total: int = 2_000_000, **kw) -> DownloadProgress:
    return DownloadProgress(model=MODEL, repo_id=HF_REPO, source="huggingface", state=state,
                            bytes_done=done, bytes_total=total, **kw)  # fmt: skip


def test_progress_view_draws_bars_on_a_tty_and_lines_otherwise():
    tty = io.StringIO()
    clock = iter(range(100))
    view = ProgressView(tty, tty=True, width=120, clock=lambda: float(next(clock)))
    view(_event(DownloadState.DOWNLOADING, 500_000, speed_bps=250_000, eta_s=6, current_file=VISION))
    view(_event(DownloadState.DOWNLOADING, 1_000_000, speed_bps=250_000, eta_s=4, current_file=VISION))
    view(_event(DownloadState.DONE, 2_000_000))
    drawn = tty.getvalue()
    assert "[#######.......................]  25%  500.0 KB/2.0 MB" in drawn
    assert "250.0 KB/s  ETA 0:06  onnx/vision.fp16.onnx" in drawn
    assert "\x1b[1F" in drawn  # redrawn in place
    assert drawn.rstrip().endswith("] 100%  2.0 MB/2.0 MB       done")

    log = io.StringIO()
    view = ProgressView(log, tty=False)
    for done in range(0, 2_000_001, 100_000):
        view(_event(DownloadState.DOWNLOADING, done, speed_bps=1e6, eta_s=1))
    view(_event(DownloadState.DONE, 2_000_000))
    lines = log.getvalue().splitlines()
    assert len(lines) == 6  # 0, 25, 50, 75, 100 % and done: short logs
    assert lines[1].startswith(f"{MODEL}: downloading from huggingface ({HF_REPO}): 25% (500.0 KB of 2.0 MB")
    assert lines[-1] == f"{MODEL}: done, 2.0 MB from huggingface ({HF_REPO})"
    assert "\x1b" not in log.getvalue()


@pytest.mark.parametrize("argv", [["download", "--help"], ["list", "--help"], ["remove", "--help"]])
def test_the_commands_are_registered(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "usage: lumen-hub" in capsys.readouterr().out
