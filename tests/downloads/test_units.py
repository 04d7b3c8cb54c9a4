"""Small pieces: header parsing, staging identity, cache checks, name validation, queueing."""

from __future__ import annotations

import asyncio
import email.utils
import json

import pytest

from app.core.downloads import DownloadManager, ModelCache, ModelRequest, Variant, check_model_name
from app.core.downloads.sources.base import RemoteFile
from app.core.downloads.sources.http import _content_range, parse_retry_after
from app.core.downloads.staging import Staging, compatible, safe_relpath
from app.core.downloads.transfer import RetryPolicy
from app.core.events import DownloadState
from tests.downloads.conftest import (
    HF_REPO,
    MODEL,
    ONNX_FP16,
    RK3566,
    Watcher,
    cached,
    clip_repo,
    make_config,
    repo_state,
)
from tests.support.fake_hubs import Fault


def test_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(when, now=1_000_000) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(10, usegmt=True), now=1_000) == 0.0


def test_backoff_doubles_is_capped_and_yields_to_retry_after():
    policy = RetryPolicy(retries=5, backoff_s=1.0, max_wait_s=5.0)
    assert 0.8 <= policy.wait(1, None) <= 1.2
    assert 3.2 <= policy.wait(3, None) <= 4.8
    assert policy.wait(6, None) == 5.0
    assert policy.wait(1, 3.0) == 3.0 and policy.wait(1, 999) == 5.0


def test_content_range():
    assert _content_range("bytes 100-199/200") == (100, 200)
    assert _content_range("bytes 0-9/*") == (0, None)
    assert _content_range("items 1-2/3") is None and _content_range("bytes x-1/2") is None


def test_staged_bytes_belong_to_one_remote_version():
    remote = RemoteFile("a.onnx", 10, sha256="a" * 64)
    meta = {**remote.identity(), "source": "huggingface"}
    assert compatible(meta, remote, "modelscope")  # same content hash: any source
    assert not compatible(meta, RemoteFile("a.onnx", 10, sha256="b" * 64), "huggingface")
    assert not compatible(meta, RemoteFile("a.onnx", 11, sha256="a" * 64), "huggingface")
    local = RemoteFile("a.onnx", 10, etag="10-123")
    local_meta = {**local.identity(), "source": "local"}
    assert compatible(local_meta, local, "local") and not compatible(local_meta, local, "huggingface")
    assert not compatible(None, remote, "huggingface")


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "a/../../b", "C:/x", "a\\b"])
def test_repository_paths_must_stay_inside(bad):
    with pytest.raises(ValueError, match="must stay inside the model folder"):
        safe_relpath(bad)


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", "/abs", ".hidden", "a..b"])
def test_model_names_are_not_paths(bad):
    with pytest.raises(ValueError, match="is not a model name"):
        check_model_name(bad)
    assert check_model_name("MobileCLIP2-S2") == "MobileCLIP2-S2"


def test_a_second_process_cannot_take_the_model_lock(tmp_path):
    import subprocess
    import sys
    import textwrap

    from app.core.downloads.errors import DownloadBusy

    staging = Staging(tmp_path, MODEL)
    with staging.lock():
        script = textwrap.dedent(
            f"""
            from pathlib import Path
            from app.core.downloads.staging import Staging
            from app.core.downloads.errors import DownloadBusy
            try:
                with Staging(Path({str(tmp_path)!r}), {MODEL!r}).lock():
                    print("got it")
            except DownloadBusy as exc:
                print("busy:", exc)
            """
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        assert out.stdout.startswith("busy: another lumen-hub process is downloading 'TestCLIP'")
        with pytest.raises(DownloadBusy):  # a second handle in this process too
            with staging.lock():
                pass
    with staging.lock():  # released
        pass


async def test_cache_check_follows_the_cached_model_info(tmp_path, hf):
    from tests.downloads.conftest import run_download

    hf.add_repo(HF_REPO, clip_repo())
    config = make_config(tmp_path, hf=hf)
    cache = ModelCache(config.model_dir(MODEL).parent)
    fp16 = ModelRequest(MODEL, (Variant("onnx", "fp16", None, "ImageNet_1k"),))
    assert cache.check(fp16).reason == "not downloaded"
    assert (await run_download(config)).result.ok
    assert cache.check(fp16).satisfied
    fp32 = cache.check(ModelRequest(MODEL, (Variant("onnx", "fp32"),)))
    assert not fp32.satisfied and fp32.reason == "onnx/text.fp32.onnx is missing"
    (config.model_dir(MODEL) / ONNX_FP16[0]).write_bytes(b"changed")
    assert cache.check(fp16).reason == f"{ONNX_FP16[0]} is not the downloaded file"
    manifest = json.loads(cache.manifest_path(MODEL).read_text())
    manifest["complete"] = False
    cache.write_manifest(MODEL, manifest)
    assert cache.check(fp16).reason == "the last download did not finish"
    cache.manifest_path(MODEL).unlink()  # files placed by hand: used as found
    (config.model_dir(MODEL) / ONNX_FP16[0]).write_bytes(b"by hand")
    assert cache.check(fp16).satisfied and "no download record" in cache.check(fp16).reason


async def test_files_placed_by_hand_are_adopted_when_their_hash_matches(tmp_path, hf):
    from tests.downloads.conftest import run_download

    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    config = make_config(tmp_path, hf=hf)
    folder = config.model_dir(MODEL)
    (folder / "onnx").mkdir(parents=True)
    (folder / ONNX_FP16[1]).write_bytes(files[ONNX_FP16[1]])  # good copy, no record
    (folder / ONNX_FP16[0]).write_bytes(b"x" * len(files[ONNX_FP16[0]]))  # same size, wrong bytes
    run = await run_download(config, force=False)
    assert run.result.ok, run.result.error
    assert ONNX_FP16[1] not in hf.fetched_files() and ONNX_FP16[0] in hf.fetched_files()
    assert cached(config)[ONNX_FP16[0]] == files[ONNX_FP16[0]]


async def test_a_cancel_stops_hashing_a_file_placed_by_hand_and_keeps_it(tmp_path, hf, monkeypatch):
    import hashlib
    import threading
    import types

    import app.core.downloads.cache as cache_module

    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    config = make_config(tmp_path, hf=hf)
    folder = config.model_dir(MODEL)
    (folder / "onnx").mkdir(parents=True)
    copied = folder / ONNX_FP16[1]
    copied.write_bytes(files[ONNX_FP16[1]])  # a large file copied by hand, in truth
    assert len(files[ONNX_FP16[1]]) > 4 * 1024
    started, go = threading.Event(), threading.Event()
    blocks: list[int] = []

    class SlowDigest:  # the first block of the hand-copied file takes until the test says go
        def __init__(self) -> None:
            self._inner = hashlib.sha256()

        def update(self, block: bytes) -> None:
            blocks.append(len(block))
            if len(blocks) == 1:
                started.set()
                go.wait(10)
            self._inner.update(block)

        def hexdigest(self) -> str:
            return self._inner.hexdigest()

    monkeypatch.setattr(cache_module, "hashlib", types.SimpleNamespace(sha256=SlowDigest))
    monkeypatch.setattr(cache_module, "HASH_CHUNK", 1024)
    manager = DownloadManager(config, progress_interval_s=0.02)
    try:
        job = manager.submit(ModelRequest(MODEL, (Variant("onnx", "fp16"),)))
        assert await asyncio.to_thread(started.wait, 10)
        manager.cancel(MODEL)
        go.set()
        result = await job.wait()
    finally:
        go.set()
        await manager.close()
    assert result.state is DownloadState.CANCELLED
    assert len(blocks) == 1  # it stopped after the block it was reading, not at the end of the file
    assert copied.read_bytes() == files[ONNX_FP16[1]]  # nothing deleted


async def test_a_request_for_a_model_already_downloading_is_fetched_right_after(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject(ONNX_FP16[1], Fault(rate_bps=1_000_000))
    config = make_config(tmp_path, hf=hf)
    manager = DownloadManager(config, progress_interval_s=0.02)
    watch = Watcher(manager)
    try:
        first = manager.submit(ModelRequest(MODEL, (Variant("onnx", "fp16"),)))
        same = manager.submit(ModelRequest(MODEL, (Variant("rknn", None, "rk3566"),)))
        assert same is first
        assert (await first.wait()).ok
        await watch.until(lambda e: repo_state(e, DownloadState.DONE) and e.files_total == 7)
    finally:
        await manager.close()
    assert {*ONNX_FP16, *RK3566} <= set(cached(config))


async def test_a_queued_download_can_be_paused_and_resumed(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    hf.add_repo("Lumilio-Photos/Second", clip_repo("Second", seed=9))
    hf.inject(ONNX_FP16[1], Fault(rate_bps=1_500_000))
    config = make_config(tmp_path, hf=hf, max_parallel_repos=1)
    manager = DownloadManager(config, progress_interval_s=0.02)
    watch = Watcher(manager)
    try:
        first = manager.submit(ModelRequest(MODEL, (Variant("onnx", "fp16"),)))
        second = manager.submit(ModelRequest("Second", (Variant("onnx", "fp16"),)))
        manager.pause("Second")
        await watch.until(lambda e: repo_state(e, DownloadState.PAUSED, "Second"))
        assert (await first.wait()).ok
        await asyncio.sleep(0.3)
        assert manager.progress("Second").state is DownloadState.PAUSED  # type: ignore[union-attr]
        assert not any(e.repo == "Lumilio-Photos/Second" for e in hf.log)
        manager.resume("Second")
        assert (await asyncio.wait_for(second.wait(), 10)).ok
    finally:
        await manager.close()
