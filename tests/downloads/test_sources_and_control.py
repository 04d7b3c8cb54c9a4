"""Sources and fallback, clear errors, disk space, and per-repository pause / resume / cancel."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from app.core.downloads import DownloadManager, requests_from_config
from app.core.downloads.sources import build_sources, endpoints
from app.core.events import DownloadState, FileProgress
from tests.downloads.conftest import (
    DATASET,
    HF_REPO,
    MODEL,
    MS_REPO,
    ONNX_FP16,
    SUPPORT,
    Watcher,
    cached,
    clip_repo,
    file_bytes_at_least,
    make_config,
    repo_state,
    run_download,
)
from tests.support.fake_hubs import API, Fault

VISION = "onnx/vision.fp16.onnx"
EXPECTED = {"model_info.json", *SUPPORT, *ONNX_FP16, DATASET}


# ------------------------------------------------------------------------------------ sources


def test_region_orders_the_sources_and_env_endpoints_are_honoured(tmp_path):
    config = make_config(tmp_path, region="cn")
    config = config.replace_at("downloads.endpoints", {})
    env = {"HF_ENDPOINT": "https://hf-mirror.example/", "MODELSCOPE_ENDPOINT": "https://ms.example"}
    assert endpoints(config.downloads, env) == {
        "huggingface": "https://hf-mirror.example",
        "modelscope": "https://ms.example",
    }
    assert endpoints(config.downloads, {})["huggingface"] == "https://huggingface.co"
    sources = build_sources(config, http=None, env=env)  # type: ignore[arg-type]
    assert [s.name for s in sources] == ["modelscope", "huggingface"]
    assert [s.location for s in sources] == ["https://ms.example", "https://hf-mirror.example"]
    assert [s.repo_id(MODEL) for s in sources] == [MS_REPO, HF_REPO]
    other = config.replace_at("metadata.region", "other").replace_at("downloads.local_dir", str(tmp_path))
    assert [s.name for s in build_sources(other, http=None, env=env)] == [
        "local",
        "huggingface",
        "modelscope",
    ]  # type: ignore[arg-type]


def test_config_endpoints_win_over_the_environment(tmp_path):
    config = make_config(tmp_path).replace_at(
        "downloads.endpoints", {"huggingface": "https://mirror.example", "modelscope": None}
    )
    got = endpoints(
        config.downloads, {"HF_ENDPOINT": "https://env.example", "MODELSCOPE_ENDPOINT": "https://m"}
    )
    assert got == {"huggingface": "https://mirror.example", "modelscope": "https://m"}


async def test_modelscope_failure_falls_back_to_hugging_face(tmp_path, hf, ms):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    ms.add_repo(MS_REPO, files)
    ms.inject(VISION, Fault(status=502, times=-1))  # ModelScope cannot deliver one file
    config = make_config(tmp_path, hf=hf, ms=ms, region="cn", retries=1)
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert run.result.source == "huggingface" and run.progress()[-1].repo_id == HF_REPO
    assert len(ms.data_requests(VISION)) == 2  # ModelScope was tried first (and retried once)
    # what ModelScope delivered and verified by SHA-256 is not fetched again from Hugging Face
    # (small files, which Hugging Face identifies by git blob id only, are)
    assert hf.fetched_files() == {VISION, "model_info.json", *SUPPORT}
    assert cached(config) == {p: files[p] for p in EXPECTED}
    sources = [e.source for e in run.progress() if e.state is DownloadState.DOWNLOADING]
    assert sources[0] == "modelscope" and sources[-1] == "huggingface"


async def test_a_repository_missing_on_modelscope_falls_back(tmp_path, hf, ms):
    hf.add_repo(HF_REPO, clip_repo())
    config = make_config(tmp_path, hf=hf, ms=ms, region="cn")
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert any(e.path.endswith("/repo/files") and e.status == 404 for e in ms.log)


async def test_a_missing_repository_everywhere_is_a_clear_error(tmp_path, hf, ms):
    config = make_config(tmp_path, hf=hf, ms=ms)
    run = await run_download(config)
    assert run.result.state is DownloadState.FAILED
    error = run.result.error
    assert "every source failed" in error
    assert f"no repository '{HF_REPO}'" in error and f"no repository '{MS_REPO}'" in error
    assert "downloads.owners.huggingface" in error and hf.url in error
    assert not config.model_dir(MODEL).exists()


async def test_a_runtime_the_repository_does_not_offer_lists_what_it_offers(tmp_path, hf):
    files = clip_repo()
    info = json.loads(files["model_info.json"])
    del info["runtimes"]["rknn"]
    files["model_info.json"] = json.dumps(info).encode()
    hf.add_repo(HF_REPO, files)
    config = make_config(
        tmp_path, hf=hf, models={"npu": {"model": MODEL, "runtime": "rknn", "rknn_device": "rk3588"}}
    )
    run = await run_download(config)
    assert run.result.state is DownloadState.FAILED
    assert "does not offer runtime 'rknn'; it offers: torch, onnx" in run.result.error
    assert hf.fetched_files() == {"model_info.json"}


async def test_an_rknn_device_the_repository_lacks_lists_the_devices(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    config = make_config(
        tmp_path, hf=hf, models={"npu": {"model": MODEL, "runtime": "rknn", "rknn_device": "rk3576"}}
    )
    run = await run_download(config)
    assert run.result.state is DownloadState.FAILED
    assert "no RKNN files for 'rk3576'; devices offered: rk3566, rk3588" in run.result.error


async def test_an_invalid_model_info_names_the_field(tmp_path, hf):
    files = clip_repo()
    info = json.loads(files["model_info.json"])
    info["runtimes"]["onnx"]["files"][1] = 42
    files["model_info.json"] = json.dumps(info).encode()
    hf.add_repo(HF_REPO, files)
    run = await run_download(make_config(tmp_path, hf=hf))
    assert run.result.state is DownloadState.FAILED
    assert (
        "model_info.json: runtimes.onnx.files[1]: must be a repository-relative file path" in run.result.error
    )


async def test_a_file_named_by_model_info_but_absent_is_a_clear_error(tmp_path, hf):
    files = clip_repo()
    del files[VISION]
    hf.add_repo(HF_REPO, files)
    run = await run_download(make_config(tmp_path, hf=hf))
    assert run.result.state is DownloadState.FAILED
    assert f"names {VISION} but the repository has no such file" in run.result.error


async def test_the_local_folder_source_needs_no_network(tmp_path, hf):
    files = clip_repo()
    folder = tmp_path / "usb" / MODEL
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    config = make_config(tmp_path, hf=hf, local_dir=str(tmp_path / "usb"))
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert run.result.source == "local"
    assert hf.log == []
    assert cached(config) == {p: files[p] for p in EXPECTED}


async def test_the_local_folder_never_replaces_a_verified_cached_copy_of_the_same_size(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    assert (await run_download(make_config(tmp_path, hf=hf))).result.ok  # verified from the hub
    folder = tmp_path / "usb" / MODEL
    for path, data in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(data)
    damaged = bytearray(files[VISION])
    damaged[len(damaged) // 2] ^= 0xFF  # one flipped byte on the stick, same size
    (folder / VISION).write_bytes(bytes(damaged))
    config = make_config(tmp_path, hf=hf, local_dir=str(tmp_path / "usb"))
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert run.result.bytes_fetched == len(files["model_info.json"])  # read first; no weights copied again
    assert cached(config) == {p: files[p] for p in EXPECTED}  # the hub's bytes are kept


# ------------------------------------------------------------------------------------ disk space


async def test_not_enough_disk_space_is_refused_up_front(tmp_path, hf, ms):
    hf.add_repo(HF_REPO, clip_repo())
    ms.add_repo(MS_REPO, clip_repo())
    free = shutil.disk_usage(tmp_path).free
    config = make_config(tmp_path, hf=hf, ms=ms, keep_free_mb=free // 1_000_000 + 10)
    run = await run_download(config)
    assert run.result.state is DownloadState.FAILED
    error = run.result.error
    assert error.startswith(f"not enough disk space for {MODEL}: it needs ")
    assert "downloads.keep_free_mb" in error and "free up" in error
    assert hf.fetched_files() == {"model_info.json"}  # no weights were requested
    assert ms.log == []  # another source would not help
    assert not config.model_dir(MODEL).exists()


async def test_disk_space_is_not_checked_when_nothing_needs_downloading(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    assert (await run_download(make_config(tmp_path, hf=hf))).result.ok
    free = shutil.disk_usage(tmp_path).free
    config = make_config(tmp_path, hf=hf, keep_free_mb=free // 1_000_000 + 10)
    hf.clear_log()
    run = await run_download(config)
    assert run.result.ok, run.result.error  # not "needs 0 B more"
    assert run.result.bytes_fetched == 0 and hf.data_requests() == []


# ------------------------------------------------------------------------------------ control


async def test_pause_stops_the_transfer_and_resume_continues_from_the_partial(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject(VISION, Fault(rate_bps=400_000))
    config = make_config(tmp_path, hf=hf, max_parallel_files=1)
    manager = DownloadManager(config, progress_interval_s=0.02)
    watch = Watcher(manager)
    try:
        job = manager.submit(requests_from_config(config)[0])
        await watch.until(file_bytes_at_least(VISION, 50_000))
        manager.pause(MODEL)
        await watch.until(lambda e: repo_state(e, DownloadState.PAUSED))
        staged = manager.cache.staging(MODEL).partial(VISION)
        size_at_pause = staged.stat().st_size
        requests_at_pause = len(hf.data_requests())
        await asyncio.sleep(0.4)
        assert staged.stat().st_size == size_at_pause, "nothing is written while paused"
        assert len(hf.data_requests()) == requests_at_pause, "nothing is requested while paused"
        assert 0 < size_at_pause < len(files[VISION])
        manager.resume(MODEL)
        result = await asyncio.wait_for(job.wait(), 20)
    finally:
        await manager.close()
    assert result.ok, result.error
    vision = hf.data_requests(VISION)
    assert vision[-1].range_start == size_at_pause
    assert cached(config)[VISION] == files[VISION]
    sized = [e for e in watch.events if repo_state(e, e.state) and e.bytes_total]  # type: ignore[attr-defined]
    assert len({e.bytes_total for e in sized}) == 1
    done = [e.bytes_done for e in sized]
    assert done == sorted(done), "progress does not jump back after a resume"
    states = [e.state for e in watch.events if repo_state(e, e.state)]
    assert states.index(DownloadState.PAUSED) < len(states) - 1 and states[-1] is DownloadState.DONE
    paused_files = [
        e for e in watch.events if isinstance(e, FileProgress) and e.state is DownloadState.PAUSED
    ]
    assert [e.path for e in paused_files] == [VISION]


async def test_cancel_keeps_the_previous_cache_and_the_partial_file(tmp_path, hf):
    old = clip_repo(seed=1)
    hf.add_repo(HF_REPO, old)
    config = make_config(tmp_path, hf=hf)
    assert (await run_download(config)).result.ok
    good = cached(config)

    new = clip_repo(seed=7, version="2.0.0")
    hf.add_repo(HF_REPO, new)
    hf.inject(VISION, Fault(rate_bps=300_000))
    manager = DownloadManager(config, progress_interval_s=0.02)
    watch = Watcher(manager)
    try:
        job = manager.submit(requests_from_config(config)[0])
        await watch.until(file_bytes_at_least(VISION, 30_000))
        manager.cancel(MODEL)
        result = await asyncio.wait_for(job.wait(), 5)
    finally:
        await manager.close()
    assert result.state is DownloadState.CANCELLED
    assert watch.events[-1].state is DownloadState.CANCELLED  # type: ignore[attr-defined]
    assert cached(config) == good, "a cancelled download never touches the cached copy"
    partial = manager.cache.staging(MODEL).partial(VISION)
    kept = partial.stat().st_size
    assert 0 < kept < len(new[VISION])

    hf.clear_log()
    again = await run_download(config)  # later: the new version, resuming the partial file
    assert again.result.ok, again.result.error
    assert hf.data_requests(VISION)[0].range_start == kept
    assert cached(config) == {p: new[p] for p in EXPECTED}


async def test_commands_on_unknown_downloads_are_refused(tmp_path, hf):
    manager = DownloadManager(make_config(tmp_path, hf=hf))
    try:
        for command in (manager.pause, manager.resume, manager.cancel):
            with pytest.raises(ValueError, match="no download of 'nope' is queued or running"):
                command("nope")
    finally:
        await manager.close()


async def test_close_cancels_running_downloads_quickly(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    hf.inject(VISION, Fault(stall_after=10_000, stall_s=30))
    config = make_config(tmp_path, hf=hf, read_timeout_s=30)
    manager = DownloadManager(config, progress_interval_s=0.02)
    watch = Watcher(manager)
    job = manager.submit(requests_from_config(config)[0])
    await watch.until(file_bytes_at_least(VISION, 10_000))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await manager.close(timeout=3)
    assert loop.time() - started < 2.5  # the stalled socket read was interrupted
    assert (await job.wait()).state is DownloadState.CANCELLED
    assert manager.cache.staging(MODEL).partial(VISION).stat().st_size == 10_000


async def test_force_leaves_the_files_of_a_download_holding_the_lock_alone(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    hf.inject(VISION, Fault(rate_bps=400_000))
    config = make_config(tmp_path, hf=hf, max_parallel_files=1)
    first = DownloadManager(config, progress_interval_s=0.02)  # another process, same cache
    second = DownloadManager(config, progress_interval_s=0.02)
    watch = Watcher(first)
    try:
        job = first.submit(requests_from_config(config)[0])
        await watch.until(file_bytes_at_least(VISION, 30_000))
        partial = first.cache.staging(MODEL).partial(VISION)
        busy = await asyncio.wait_for(second.submit(requests_from_config(config)[0], force=True).wait(), 10)
        assert busy.state is DownloadState.FAILED
        assert "another lumen-hub process is downloading 'TestCLIP'" in busy.error
        assert partial.stat().st_size >= 30_000, "--force must not wipe a download it could not lock"
        result = await asyncio.wait_for(job.wait(), 20)
    finally:
        await second.close()
        await first.close()
    assert result.ok, result.error
    assert cached(config)[VISION] == files[VISION]


async def test_the_model_lock_is_taken_and_released_off_the_event_loop(tmp_path, hf, monkeypatch):
    import threading

    from app.core.downloads.staging import Staging

    hf.add_repo(HF_REPO, clip_repo())
    threads: list[str] = []
    real_acquire, real_release = Staging.acquire, Staging.release

    def acquire(self):
        threads.append(threading.current_thread().name)
        return real_acquire(self)

    def release(fd):
        threads.append(threading.current_thread().name)
        real_release(fd)

    monkeypatch.setattr(Staging, "acquire", acquire)
    monkeypatch.setattr(Staging, "release", staticmethod(release))
    run = await run_download(make_config(tmp_path, hf=hf))
    assert run.result.ok, run.result.error
    assert len(threads) == 2 and all(name.startswith("lumen-download") for name in threads), threads


@pytest.mark.parametrize("hub_name", ["huggingface", "modelscope"])
@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_file_says_the_repository_is_gated_and_what_to_do(tmp_path, hf, ms, hub_name, status):
    hub, repo = (hf, HF_REPO) if hub_name == "huggingface" else (ms, MS_REPO)
    hub.add_repo(repo, clip_repo())
    hub.inject(VISION, Fault(status=status, times=-1))
    only = {"hf": hf} if hub_name == "huggingface" else {"ms": ms}
    config = make_config(tmp_path, region="other" if hub_name == "huggingface" else "cn", **only)
    run = await run_download(config)
    assert run.result.state is DownloadState.FAILED
    error = run.result.error
    assert f"refuses access to '{repo}/{VISION}' (HTTP {status}" in error, error
    assert "gated or private" in error and "accept the licence" in error and "downloads.local_dir" in error
    assert len(hub.data_requests(VISION)) == 1  # a refusal is not retried


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (403, "refuses access to '{repo}' (HTTP 403"),
        (401, "has no public repository '{repo}' (HTTP 401"),
        (404, "has no repository '{repo}' (HTTP 404"),
    ],
)
async def test_a_refused_modelscope_listing_says_why(tmp_path, ms, status, expected):
    ms.add_repo(MS_REPO, clip_repo())
    ms.inject(API, Fault(status=status, times=-1))
    run = await run_download(make_config(tmp_path, region="cn", ms=ms))
    assert run.result.state is DownloadState.FAILED
    error = run.result.error
    assert expected.format(repo=MS_REPO) in error, error
    assert ("gated or private" in error) == (status == 403)
    assert (status == 401) == ("or it is private" in error)


async def test_a_file_gated_on_one_hub_is_fetched_from_the_other(tmp_path, hf, ms):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    ms.add_repo(MS_REPO, files)
    hf.inject(VISION, Fault(status=403, times=-1))
    config = make_config(tmp_path, hf=hf, ms=ms)
    run = await run_download(config)
    assert run.result.ok and run.result.source == "modelscope", run.result.error
    assert cached(config)[VISION] == files[VISION]


async def test_a_pause_arriving_as_a_source_fails_is_kept(tmp_path, hf, ms):
    import threading

    files = clip_repo()
    ms.add_repo(MS_REPO, files)  # Hugging Face has no such repository: it fails, ModelScope is next
    config = make_config(tmp_path, hf=hf, ms=ms)
    manager = DownloadManager(config, progress_interval_s=0.02)
    watch = Watcher(manager)
    loop = asyncio.get_running_loop()
    hf_source = manager.sources[0]
    real_list = hf_source.list_files

    def list_files(model):  # the user pauses while Hugging Face is being asked
        paused = threading.Event()
        loop.call_soon_threadsafe(lambda: (manager.pause(MODEL), paused.set()))
        assert paused.wait(5)
        return real_list(model)

    hf_source.list_files = list_files  # type: ignore[method-assign]
    try:
        job = manager.submit(requests_from_config(config)[0])
        await watch.until(lambda e: repo_state(e, DownloadState.PAUSED), timeout=5)
        await asyncio.sleep(0.3)
        assert ms.log == [], "nothing is requested from the next source while paused"
        assert job.state is DownloadState.PAUSED
        manager.resume(MODEL)
        result = await asyncio.wait_for(job.wait(), 20)
    finally:
        await manager.close()
    assert result.ok and result.source == "modelscope", result.error
    assert cached(config)[VISION] == files[VISION]


async def test_close_while_verifying_ends_the_job_cancelled(tmp_path, hf):
    import threading

    hf.add_repo(HF_REPO, clip_repo())
    config = make_config(tmp_path, hf=hf)
    manager = DownloadManager(config, progress_interval_s=0.02)
    watch = Watcher(manager)
    gate = threading.Event()

    def slow_commit(*args, **kwargs):  # moving verified files into the cache takes a while
        gate.wait(10)

    manager.cache.commit = slow_commit  # type: ignore[method-assign]
    try:
        job = manager.submit(requests_from_config(config)[0])
        await watch.until(lambda e: repo_state(e, DownloadState.VERIFYING))
        await manager.close(timeout=3)
        result = await asyncio.wait_for(job.wait(), 5)  # the waiter does not hang
    finally:
        gate.set()
    assert result.state is DownloadState.CANCELLED
    final = [e for e in watch.events if repo_state(e, e.state)][-1]
    assert final.state is DownloadState.CANCELLED  # type: ignore[attr-defined]
    assert not config.model_dir(MODEL).exists()
