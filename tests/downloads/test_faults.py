"""Flaky networks and bad data: resume, retries, timeouts, corruption, refusals."""

from __future__ import annotations

import errno
import os

import pytest

from app.core.downloads.staging import Staging
from app.core.events import DownloadState
from tests.downloads.conftest import (
    DATASET,
    HF_REPO,
    MODEL,
    MS_REPO,
    ONNX_FP16,
    SUPPORT,
    cached,
    clip_repo,
    make_config,
    run_download,
    sha256,
)
from tests.support.fake_hubs import API, Fault

VISION = "onnx/vision.fp16.onnx"


@pytest.mark.parametrize("hub_name", ["huggingface", "modelscope"])
async def test_a_cut_connection_then_a_restart_fetches_only_the_missing_bytes(tmp_path, hf, ms, hub_name):
    files = clip_repo()
    hub, repo = (hf, HF_REPO) if hub_name == "huggingface" else (ms, MS_REPO)
    hub.add_repo(repo, files)
    cut = 123_457
    hub.inject(VISION, Fault(cut_after=cut))
    region = "other" if hub_name == "huggingface" else "cn"
    only_this_hub = {"hf": hf} if hub_name == "huggingface" else {"ms": ms}
    config = make_config(tmp_path, region=region, retries=0, **only_this_hub)

    first = await run_download(config)
    assert first.result.state is DownloadState.FAILED
    assert VISION in first.result.error and "after" in first.result.error
    staged = Staging(config.model_dir(MODEL).parent, MODEL).partial(VISION)
    assert staged.stat().st_size == cut  # kept for resume
    assert not config.model_dir(MODEL).exists()  # nothing entered the cache

    second = await run_download(config)  # a new manager: as after a restart
    assert second.result.ok, second.result.error
    vision = hub.data_requests(VISION)
    assert [e.range_start for e in vision] == [None, cut]
    assert vision[1].status == 206 and vision[1].sent == len(files[VISION]) - cut
    assert hub.bytes_sent(VISION) == len(files[VISION])
    assert cached(config)[VISION] == files[VISION]
    for path in {"model_info.json", *SUPPORT, ONNX_FP16[0], DATASET}:
        assert hub.bytes_sent(path) == len(files[path]), f"{path} was fetched more than once"


async def test_a_cut_connection_is_resumed_within_the_same_run(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject(VISION, Fault(cut_after=50_000, times=2))
    config = make_config(tmp_path, hf=hf, retries=1)  # progress resets the retry budget
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert [e.range_start for e in hf.data_requests(VISION)] == [None, 50_000, 100_000]
    assert cached(config)[VISION] == files[VISION]


@pytest.mark.parametrize("hub_name", ["huggingface", "modelscope"])
async def test_a_corrupted_byte_is_detected_and_only_that_file_is_fetched_again(tmp_path, hf, ms, hub_name):
    files = clip_repo()
    hub, repo = (hf, HF_REPO) if hub_name == "huggingface" else (ms, MS_REPO)
    hub.add_repo(repo, files)
    hub.inject(VISION, Fault(corrupt_at=4321))
    only = {"hf": hf} if hub_name == "huggingface" else {"ms": ms}
    config = make_config(tmp_path, region="other" if hub_name == "huggingface" else "cn", **only)
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert [e.range_start for e in hub.data_requests(VISION)] == [None, None]  # fetched whole, twice
    assert all(len(hub.data_requests(p)) == 1 for p in hub.fetched_files() - {VISION})
    assert sha256(cached(config)[VISION]) == sha256(files[VISION])


async def test_a_small_file_is_checked_by_its_git_blob_id(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject("tokenizer.json", Fault(corrupt_at=3))
    config = make_config(tmp_path, hf=hf)
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert len(hf.data_requests("tokenizer.json")) == 2
    assert cached(config)["tokenizer.json"] == files["tokenizer.json"]


async def test_persistent_corruption_fails_naming_the_file_and_keeps_the_old_cache(tmp_path, hf):
    old = clip_repo(seed=1)
    hf.add_repo(HF_REPO, old)
    config = make_config(tmp_path, hf=hf)
    assert (await run_download(config)).result.ok
    new = clip_repo(seed=2, version="1.1.0")
    repo = hf.add_repo(HF_REPO, new)
    hf.inject(VISION, Fault(corrupt_at=10, times=-1))
    run = await run_download(config)
    assert run.result.state is DownloadState.FAILED
    assert VISION in run.result.error and "SHA-256" in run.result.error
    assert repo.files[VISION].sha256 in run.result.error
    assert cached(config) == {p: old[p] for p in cached(config)}, "the good cached copy is untouched"


async def test_server_errors_are_retried_with_backoff(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject(VISION, Fault(status=500, times=2))
    hf.inject(DATASET, Fault(status=503, times=1))
    config = make_config(tmp_path, hf=hf, retries=3)
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert [e.status for e in hf.data_requests(VISION)] == [500, 500, 200]
    assert [e.status for e in hf.data_requests(DATASET)] == [503, 200]


async def test_retry_after_is_honoured(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject(VISION, Fault(status=429, retry_after="1"))
    config = make_config(tmp_path, hf=hf, retry_backoff_s=0.01)
    run = await run_download(config)
    assert run.result.ok, run.result.error
    refused, served = hf.data_requests(VISION)
    assert refused.status == 429 and served.status == 200
    assert served.started - refused.ended >= 0.9  # the server's 1 s, not the 10 ms backoff


async def test_retries_run_out_with_a_clear_error(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    hf.inject(VISION, Fault(status=500, times=-1))
    config = make_config(tmp_path, hf=hf, retries=2)
    run = await run_download(config)
    assert run.result.state is DownloadState.FAILED
    assert f"{VISION}: " in run.result.error and "HTTP 500" in run.result.error
    assert "gave up after 3 failed attempts" in run.result.error
    assert len(hf.data_requests(VISION)) == 3


async def test_a_stalled_response_times_out_and_resumes(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject(VISION, Fault(stall_after=70_000, stall_s=5))
    config = make_config(tmp_path, hf=hf, read_timeout_s=0.3)
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert [e.range_start for e in hf.data_requests(VISION)] == [None, 70_000]
    assert cached(config)[VISION] == files[VISION]


async def test_a_server_ignoring_range_still_gives_a_correct_file(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject(VISION, Fault(cut_after=100_000))
    hf.inject(VISION, Fault(ignore_range=True, times=1))
    config = make_config(tmp_path, hf=hf)
    run = await run_download(config)
    assert run.result.ok, run.result.error
    first, second = hf.data_requests(VISION)
    assert second.range_start == 100_000 and second.status == 200  # asked to resume, got it all
    assert cached(config)[VISION] == files[VISION]


async def test_a_partial_file_of_another_version_is_not_resumed(tmp_path, hf):
    old = clip_repo(seed=1)
    hf.add_repo(HF_REPO, old)
    hf.inject(VISION, Fault(cut_after=80_000))
    config = make_config(tmp_path, hf=hf, retries=0)
    assert (await run_download(config)).result.state is DownloadState.FAILED
    new = clip_repo(seed=3, version="2.0.0")
    hf.add_repo(HF_REPO, new)
    hf.clear_log()
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert [e.range_start for e in hf.data_requests(VISION)] == [None]
    assert cached(config)[VISION] == new[VISION]


@pytest.mark.parametrize("hub_name", ["huggingface", "modelscope"])
async def test_a_failing_listing_is_retried_before_falling_back(tmp_path, hf, ms, hub_name):
    hub, repo = (hf, HF_REPO) if hub_name == "huggingface" else (ms, MS_REPO)
    hub.add_repo(repo, clip_repo())
    hub.inject(API, Fault(status=503, retry_after="0", times=2))
    only = {"hf": hf} if hub_name == "huggingface" else {"ms": ms}
    config = make_config(tmp_path, region="other" if hub_name == "huggingface" else "cn", retries=2, **only)
    run = await run_download(config)
    assert run.result.ok and run.result.source == hub_name, run.result.error
    assert [e.status for e in hub.log if e.path.startswith("/api/")][:3] == [503, 503, 200]


async def test_early_writeback_keeps_the_bytes_right(tmp_path, hf, monkeypatch):
    from app.core.downloads import transfer

    monkeypatch.setattr(transfer, "WRITEBACK_BYTES", 32 * 1024)  # exercise it on small files
    advised: list[tuple[int, int]] = []
    real = transfer._start_writeback
    monkeypatch.setattr(
        transfer, "_start_writeback", lambda out, s, n: (advised.append((s, n)), real(out, s, n))
    )
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject(VISION, Fault(cut_after=100_000))
    run = await run_download(make_config(tmp_path, hf=hf))
    assert run.result.ok, run.result.error
    assert advised and all(n >= 32 * 1024 for _, n in advised)
    assert any(start >= 100_000 for start, _ in advised)  # also after the resume
    assert cached(make_config(tmp_path, hf=hf))[VISION] == files[VISION]


def _failing_writes(monkeypatch, path: str, error: OSError) -> None:
    """Make writing the staged copy of ``path`` fail with ``error`` (a full or broken disk)."""
    from app.core.downloads import transfer

    real = transfer._copy

    def copy(stream, out, remote, *args, **kwargs):
        if remote.path == path:
            raise error
        return real(stream, out, remote, *args, **kwargs)

    monkeypatch.setattr(transfer, "_copy", copy)


async def test_a_full_disk_while_writing_says_so_and_tries_no_other_source(tmp_path, hf, ms, monkeypatch):
    hf.add_repo(HF_REPO, clip_repo())
    ms.add_repo(MS_REPO, clip_repo())
    _failing_writes(monkeypatch, VISION, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    config = make_config(tmp_path, hf=hf, ms=ms)
    run = await run_download(config)
    assert run.result.state is DownloadState.FAILED
    error = run.result.error
    assert "internal error" not in error and "Aborted" not in error
    assert error.startswith("not enough disk space to write "), error
    assert VISION + ".partial" in error and "metadata.cache_dir" in error and "free up space" in error
    assert ms.log == []  # another source would not help
    assert not config.model_dir(MODEL).exists()


async def test_another_disk_error_while_writing_names_the_file_and_the_reason(tmp_path, hf, monkeypatch):
    hf.add_repo(HF_REPO, clip_repo())
    _failing_writes(monkeypatch, VISION, OSError(errno.EIO, os.strerror(errno.EIO)))
    run = await run_download(make_config(tmp_path, hf=hf))
    assert run.result.state is DownloadState.FAILED
    error = run.result.error
    assert error.startswith("cannot write "), error
    assert VISION + ".partial" in error and os.strerror(errno.EIO) in error
    assert "check that metadata.cache_dir is writable" in error


async def test_an_unwritable_staging_folder_is_a_clear_error(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    config = make_config(tmp_path, hf=hf)
    models = config.model_dir(MODEL).parent
    models.mkdir(parents=True)
    (models / ".staging").write_text("not a folder")  # the lock file cannot be created under it
    run = await run_download(config)
    assert run.result.state is DownloadState.FAILED
    error = run.result.error
    assert error.startswith("cannot write ") and ".staging" in error, error
    assert "check that metadata.cache_dir is writable" in error


async def test_a_read_error_in_the_local_folder_falls_back_to_the_hub(tmp_path, hf, monkeypatch):
    from app.core.downloads.sources import local

    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    folder = tmp_path / "usb" / MODEL
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)

    class FailingDisk:  # the USB stick's reads fail
        def __init__(self, handle):
            self.close = handle.close

        def read(self, size):
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    real_init = local._FileStream.__init__
    monkeypatch.setattr(
        local._FileStream, "__init__", lambda self, handle, *a: real_init(self, FailingDisk(handle), *a)
    )
    config = make_config(tmp_path, hf=hf, local_dir=str(tmp_path / "usb"))
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert run.result.source == "huggingface"
    assert cached(config)[VISION] == files[VISION]
