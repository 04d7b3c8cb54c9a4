"""What is fetched (only what the configured runtimes need) and how progress is reported."""

from __future__ import annotations

import pytest

from app.core.downloads import ModelRequest, Variant
from app.core.events import DownloadState
from tests.downloads.conftest import (
    DATASET,
    HF_REPO,
    MODEL,
    ONNX_FP16,
    ONNX_FP32,
    RK3566,
    RK3588,
    SUPPORT,
    cached,
    clip_repo,
    make_config,
    run_download,
)
from tests.support.fake_hubs import Fault


@pytest.mark.parametrize(
    ("model", "expected", "never"),
    [
        (
            {"model": MODEL, "runtime": "onnx", "precision": "fp16", "dataset": "ImageNet_1k"},
            [*ONNX_FP16, DATASET],
            [*ONNX_FP32, *RK3588, *RK3566, "torch/model.pt"],
        ),
        (
            {"model": MODEL, "runtime": "onnx"},  # no precision: the best offered (fp32)
            ONNX_FP32,
            [*ONNX_FP16, *RK3588, DATASET],
        ),
        (
            {"model": MODEL, "runtime": "rknn", "rknn_device": "rk3588"},
            RK3588,
            [*RK3566, *ONNX_FP16, *ONNX_FP32, DATASET, "torch/model.pt"],
        ),
        ({"model": MODEL, "runtime": "torch"}, ["torch/model.pt"], [*ONNX_FP32, *RK3588, DATASET]),
    ],
    ids=["onnx-fp16-dataset", "onnx-best", "rknn-rk3588", "torch"],
)
async def test_only_the_files_of_the_configured_runtime_are_requested(tmp_path, hf, model, expected, never):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    config = make_config(tmp_path, hf=hf, models={"default": model})
    run = await run_download(config)
    assert run.result.ok, run.result.error
    wanted = {"model_info.json", *SUPPORT, *expected}
    assert hf.fetched_files() == wanted  # the server log: nothing else was ever requested
    assert not set(never) & hf.fetched_files()
    assert {"README.md", ".gitattributes"}.isdisjoint(hf.fetched_files())
    assert cached(config) == {path: files[path] for path in wanted}


async def test_two_configurations_of_one_model_fetch_the_union_once(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    config = make_config(
        tmp_path,
        hf=hf,
        models={
            "default": {"model": MODEL, "runtime": "onnx", "precision": "fp16"},
            "npu": {"model": MODEL, "runtime": "rknn", "rknn_device": "rk3566"},
        },
    )
    run = await run_download(config)
    assert run.result.ok, run.result.error
    assert hf.fetched_files() == {"model_info.json", *SUPPORT, *ONNX_FP16, *RK3566}
    assert all(len(hf.data_requests(p)) == 1 for p in hf.fetched_files())


async def test_progress_events_add_up_to_the_true_byte_count(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    for path in ONNX_FP16:  # slow enough to see intermediate progress with a speed
        hf.inject(path, Fault(rate_bps=1_500_000))
    config = make_config(tmp_path, hf=hf)
    run = await run_download(config)
    assert run.result.ok, run.result.error
    expected = {"model_info.json", *SUPPORT, *ONNX_FP16, DATASET}
    true_total = sum(len(files[p]) for p in expected)

    progress = run.progress()
    states = [e.state for e in progress]
    assert states[0] is DownloadState.QUEUED
    assert states[-1] is DownloadState.DONE
    assert DownloadState.DOWNLOADING in states and DownloadState.VERIFYING in states
    assert states.index(DownloadState.VERIFYING) > states.index(DownloadState.DOWNLOADING)
    final = progress[-1]
    assert (final.bytes_done, final.bytes_total) == (true_total, true_total)
    assert (final.files_done, final.files_total) == (len(expected), len(expected))
    assert final.repo_id == HF_REPO and final.source == "huggingface" and final.services == ("clip",)
    assert run.result.bytes_fetched == true_total

    sized = [e for e in progress if e.bytes_total]
    assert all(e.bytes_total == true_total for e in sized)
    done = [e.bytes_done for e in sized]
    assert done == sorted(done), "bytes_done never goes backwards"
    moving = [e for e in progress if e.state is DownloadState.DOWNLOADING and e.speed_bps > 0]
    assert moving, "some events carry a speed"
    assert any(e.eta_s is not None and e.eta_s > 0 for e in moving)
    assert any(e.current_file in ONNX_FP16 for e in moving)

    per_file = {}
    for event in run.files():
        per_file.setdefault(event.path, []).append(event)
    assert set(per_file) == expected
    for path, events in per_file.items():
        assert events[-1].state is DownloadState.DONE
        assert events[-1].bytes_done == events[-1].bytes_total == len(files[path])
        counts = [e.bytes_done for e in events]
        assert counts == sorted(counts)
    assert sum(events[-1].bytes_done for events in per_file.values()) == true_total


async def test_a_second_download_fetches_nothing_and_force_fetches_everything(tmp_path, hf):
    hf.add_repo(HF_REPO, clip_repo())
    config = make_config(tmp_path, hf=hf)
    assert (await run_download(config)).result.ok
    first = hf.fetched_files()
    hf.clear_log()
    again = await run_download(config)
    assert again.result.ok and again.result.bytes_fetched == 0
    assert hf.fetched_files() == set()  # the listing was read, no file bytes moved
    assert any("/tree/" in e.path for e in hf.log)
    hf.clear_log()
    forced = await run_download(config, force=True)
    assert forced.result.ok
    assert hf.fetched_files() == first
    assert all(e.range is None for e in hf.data_requests())


async def test_parallel_files_are_bounded(tmp_path, hf):
    files = clip_repo()
    hf.add_repo(HF_REPO, files)
    for path in files:
        hf.inject(path, Fault(rate_bps=2_000_000))
    config = make_config(
        tmp_path, hf=hf, max_parallel_files=2, models={"default": {"model": MODEL, "runtime": "torch"}}
    )
    request = ModelRequest(MODEL, (Variant("onnx"), Variant("onnx", "fp16"), Variant("rknn", None, "rk3588")))
    run = await run_download(config, [request])
    assert run.result.ok, run.result.error
    assert len(hf.fetched_files()) >= 8
    assert hf.max_active == 2


async def test_tree_pagination_is_followed(tmp_path):
    from tests.support.fake_hubs import FakeHuggingFace

    with FakeHuggingFace(page_size=3) as paged:
        paged.add_repo(HF_REPO, clip_repo())
        config = make_config(tmp_path, hf=paged)
        run = await run_download(config)
        assert run.result.ok, run.result.error
        assert sum("/tree/" in e.path for e in paged.log) > 3
        assert paged.fetched_files() == {"model_info.json", *SUPPORT, *ONNX_FP16, DATASET}
