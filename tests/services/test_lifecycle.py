"""Lazy loading, sharing, idle TTL, LRU, batching, concurrency, holds and shutdown."""

import asyncio
import gc
import weakref

import pytest

from services.api import (
    InferenceRequest,
    Overloaded,
    ServiceSpec,
    ServiceState,
    ServiceUnavailable,
)
from services.clip.service import BioclipService, ClipService
from tests.services.conftest import wait_for_state
from tests.support.recording_session import SessionRecorder
from tests.support.tiny_models import image_bytes, write_clip_model


def _image(seed=0):
    return InferenceRequest("semantic_image_embed", image_bytes(24, 24, seed=seed), "image/png")


def _three_models(tmp_path) -> ServiceSpec:
    """One clip service with models m0, m1, m2 under aliases a0, a1, a2."""
    models = [write_clip_model(tmp_path, name=f"m{i}", seed=i) for i in range(3)]
    return ServiceSpec(
        name="clip",
        models=tuple(m.model_spec(alias=f"a{i}") for i, m in enumerate(models)),
        default_model="a0",
    )


async def test_lazy_load_once_shared_by_all_tasks(tiny_clip, host_factory):
    recorder = SessionRecorder()
    host = host_factory([tiny_clip.service_spec()], registry={"clip": recorder.factory(ClipService)})
    seen = []
    host.add_status_listener(seen.append)
    assert host.statuses()[0].state is ServiceState.NOT_LOADED
    assert recorder.sessions == []  # nothing loaded before the first request
    await asyncio.gather(
        host.infer(_image()),
        host.infer(InferenceRequest("semantic_text_embed", b"cat")),
        host.infer(InferenceRequest("clip_classify", image_bytes(), "image/png")),
    )
    slot = host.model_slots("clip")["default"]
    assert slot.loads == 1
    assert len(recorder.of("vision")) == 1 and len(recorder.of("text")) == 1
    assert [s.state for s in seen] == [ServiceState.LOADING, ServiceState.READY]
    assert seen[-1].runtime == "onnxrt-cpu"


async def test_idle_ttl_unloads_and_frees_the_model(tiny_clip, host_factory):
    recorder = SessionRecorder()
    host = host_factory(
        [tiny_clip.service_spec()], registry={"clip": recorder.factory(ClipService)}, model_idle_ttl_s=0.2
    )
    await host.infer(_image())
    slot = host.model_slots("clip")["default"]
    model_ref = weakref.ref(slot.instance)
    session = recorder.of("vision")[0]
    inner_ref = weakref.ref(session.inner._session)  # the onnxruntime InferenceSession itself
    await wait_for_state(host, "clip", ServiceState.NOT_LOADED, timeout=3)
    assert slot.instance is None
    for _ in range(200):  # the close runs in the executor right after the state change
        gc.collect()
        if model_ref() is None and inner_ref() is None:
            break
        await asyncio.sleep(0.01)
    assert session.closed
    assert model_ref() is None and inner_ref() is None
    # and it comes back on the next request
    await host.infer(_image())
    assert slot.loads == 2 and host.statuses()[0].state is ServiceState.READY


async def test_a_request_arriving_as_the_idle_timer_fires_gets_a_live_model(tiny_clip, host_factory):
    recorder = SessionRecorder(delay_s=0.05)
    host = host_factory(
        [tiny_clip.service_spec()], registry={"clip": recorder.factory(ClipService)}, model_idle_ttl_s=600
    )
    await host.infer(_image())
    slot = host.model_slots("clip")["default"]
    first = recorder.of("vision")[0]
    slot.idle_handle.cancel()
    host._manager._idle_expired(slot)  # the timer fires ...
    result = await host.infer(_image(1))  # ... and a request comes in the same loop step
    assert result.data["dim"] > 0 and not first.running
    assert slot.loads == 2 and slot.instance is not None and slot.state is ServiceState.READY
    await asyncio.sleep(0.1)
    assert first.closed and not recorder.of("vision")[1].closed


async def test_ttl_zero_never_unloads(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()], model_idle_ttl_s=0)
    await host.infer(_image())
    assert host.model_slots("clip")["default"].idle_handle is None


async def test_lru_evicts_the_least_recently_used(tmp_path, host_factory):
    spec = _three_models(tmp_path)
    host = host_factory([spec], max_loaded_models=2)
    slots = host.model_slots("clip")

    async def use(alias):
        r = await host.infer(
            InferenceRequest("semantic_image_embed", image_bytes(), "image/png", {"model": alias})
        )
        assert r.data["model_id"] == f"m{alias[1]}"

    await use("a0")
    await use("a1")
    await use("a0")  # a1 is now the least recently used
    await use("a2")
    assert {a: s.state for a, s in slots.items()} == {
        "a0": ServiceState.READY,
        "a1": ServiceState.NOT_LOADED,
        "a2": ServiceState.READY,
    }
    assert slots["a1"].instance is None
    await use("a1")  # evicts a0 now
    assert slots["a0"].state is ServiceState.NOT_LOADED
    assert len([s for s in slots.values() if s.state is ServiceState.READY]) == 2


async def test_loads_above_the_limit_give_way_as_soon_as_their_models_are_idle(tmp_path, host_factory):
    spec = _three_models(tmp_path)
    recorder = SessionRecorder(delay_s=0.05)
    host = host_factory([spec], registry={"clip": recorder.factory(ClipService)}, max_loaded_models=1)
    slots = host.model_slots("clip")
    requests = [
        InferenceRequest("semantic_image_embed", image_bytes(), "image/png", {"model": alias})
        for alias in slots
    ]
    results = await asyncio.gather(*[host.infer(r) for r in requests])  # all three load at once
    assert [r.data["model_id"] for r in results] == ["m0", "m1", "m2"]
    assert all(s.loads == 1 for s in slots.values())
    ready = [a for a, s in slots.items() if s.state is ServiceState.READY]
    assert len(ready) == 1  # the bound holds again once the requests are done
    for _ in range(200):  # the others are closed in the executor
        if sum(s.closed for s in recorder.of("vision")) == 2:
            break
        await asyncio.sleep(0.01)
    assert sum(s.closed for s in recorder.of("vision")) == 2


async def test_concurrent_image_requests_are_batched(tiny_clip, host_factory):
    recorder = SessionRecorder(delay_s=0.05)
    host = host_factory(
        [tiny_clip.service_spec()],
        registry={"clip": recorder.factory(ClipService)},
        batch_max_size=4,
        batch_max_wait_ms=30,
        max_concurrency_per_model=1,
    )
    await host.infer(_image())  # load first
    vision = recorder.of("vision")[0]
    vision.batch_sizes.clear()
    results = await asyncio.gather(*[host.infer(_image(i)) for i in range(10)])
    assert len({tuple(r.data["vector"]) for r in results}) == 10  # each caller got its own vector
    assert sum(vision.batch_sizes) == 10
    assert max(vision.batch_sizes) == 4  # capped at batch_max_size
    assert len(vision.batch_sizes) <= 4  # far fewer runs than requests
    # a batched vector equals the unbatched one
    alone = await host.infer(_image(3))
    assert alone.data["vector"] == pytest.approx(results[3].data["vector"], abs=1e-6)


async def test_batch_size_one_disables_batching(tiny_clip, host_factory):
    recorder = SessionRecorder()
    host = host_factory(
        [tiny_clip.service_spec()], registry={"clip": recorder.factory(ClipService)}, batch_max_size=1
    )
    await asyncio.gather(*[host.infer(_image(i)) for i in range(5)])
    assert recorder.of("vision")[0].batch_sizes == [1] * 5


async def test_concurrency_per_model_is_limited(tiny_clip, host_factory):
    recorder = SessionRecorder(delay_s=0.03)
    host = host_factory(
        [tiny_clip.service_spec()],
        registry={"clip": recorder.factory(ClipService)},
        batch_max_size=1,
        max_concurrency_per_model=2,
        intra_op_threads=1,  # one thread per run: two runs fit in the CPUs of any test machine
    )
    await asyncio.gather(*[host.infer(_image(i)) for i in range(8)])
    assert recorder.of("vision")[0].max_running == 2


async def test_on_a_small_cpu_machine_image_batches_take_turns_and_text_runs_beside_them(
    tiny_clip, host_factory, monkeypatch
):
    import services.runtimes.onnx as onnx_runtime

    monkeypatch.setattr(onnx_runtime, "usable_cpus", lambda: 2)  # 2 CPUs, 2 threads per run
    recorder = SessionRecorder(delay_s=0.15)
    host = host_factory(
        [tiny_clip.service_spec()],
        registry={"clip": recorder.factory(ClipService)},
        batch_max_size=2,
        max_concurrency_per_model=2,
    )
    await host.infer(_image())  # loaded on onnxrt-cpu
    await host.infer(InferenceRequest("semantic_text_embed", b"warm"))
    vision, text = recorder.of("vision")[0], recorder.of("text")[0]
    vision.max_running = 0
    images = asyncio.gather(*[host.infer(_image(i)) for i in range(6)])
    while not vision.running:
        await asyncio.sleep(0.005)
    await host.infer(InferenceRequest("semantic_text_embed", b"a query while images run"))
    assert not images.done()  # the text query did not wait for the image batches to end
    await images
    assert vision.max_running == 1  # a second image batch would only have slowed the first
    assert text.max_running == 1


async def test_a_text_query_does_not_wait_for_a_fuller_batch_while_images_are_decoding(
    tiny_clip, host_factory
):
    import threading

    host = host_factory([tiny_clip.service_spec()], batch_max_size=8, batch_max_wait_ms=30_000)
    await host.infer(_image())  # loaded
    model = host.model_slots("clip")["default"].instance
    decoding, release = threading.Semaphore(0), threading.Event()
    prepare = model.prepare_image

    def slow_prepare(*args):
        decoding.release()
        release.wait(30)
        return prepare(*args)

    model.prepare_image = slow_prepare
    images = asyncio.gather(*[host.infer(_image(i)) for i in range(2)])
    try:
        for _ in range(2):
            await asyncio.to_thread(decoding.acquire)  # both image requests hold the model
        text = asyncio.ensure_future(host.infer(InferenceRequest("semantic_text_embed", b"a cat")))
        done, _ = await asyncio.wait({text}, timeout=10)
        # the images still decoding are not text requests: the query ran without waiting the
        # 30 s batch window for them
        assert text in done and not release.is_set()
        assert len(text.result().data["vector"]) == 8
    finally:
        release.set()
        await images


async def test_queue_bound_gives_overloaded(tiny_clip, host_factory):
    recorder = SessionRecorder(delay_s=0.2)
    host = host_factory(
        [tiny_clip.service_spec()],
        registry={"clip": recorder.factory(ClipService)},
        queue_size=2,
        max_concurrency_per_model=1,
        batch_max_size=1,
    )
    await host.infer(_image())
    outcomes = await asyncio.gather(*[host.infer(_image(i)) for i in range(6)], return_exceptions=True)
    overloaded = [o for o in outcomes if isinstance(o, Overloaded)]
    assert len(overloaded) == 3  # 2 queued + 1 running admitted
    assert "limit 3" in overloaded[0].message
    assert all(not isinstance(o, Exception) for o in outcomes[:3])


async def test_hold_pins_a_state_and_release_rechecks(tmp_path, host_factory):
    model = write_clip_model(tmp_path / "cache")
    (model.path / "onnx" / "text.fp32.onnx").unlink()
    host = host_factory([model.service_spec()])
    seen = []
    host.add_status_listener(seen.append)
    assert host.statuses()[0].state is ServiceState.FAILED
    host.hold("clip", ServiceState.DOWNLOADING, "3 of 5 files")
    assert host.statuses()[0].state is ServiceState.DOWNLOADING
    with pytest.raises(ServiceUnavailable, match="downloading: 3 of 5 files"):
        await host.infer(_image())
    write_clip_model(tmp_path / "cache")  # the download completes
    host.hold("clip", None)  # the files are checked again off the loop ...
    await wait_for_state(host, "clip", ServiceState.NOT_LOADED)  # ... and announced once
    assert [s.state for s in seen] == [ServiceState.DOWNLOADING, ServiceState.NOT_LOADED]
    assert (await host.infer(_image())).data["dim"] == model.dim


async def test_preload_on_start_and_stop_unloads_everything(tiny_clip, tiny_bioclip, host_factory):
    specs = [
        tiny_clip.service_spec(),
        ServiceSpec("bioclip", (tiny_bioclip.model_spec(),), "default", preload=True),
    ]
    host = host_factory(specs)
    await host.start()
    await host.start()  # idempotent
    await wait_for_state(host, "bioclip", ServiceState.READY)
    assert host.statuses()[0].state is ServiceState.NOT_LOADED  # clip is lazy
    await host.infer(_image())
    await host.stop()
    assert [s.state for s in host.statuses()] == [ServiceState.NOT_LOADED] * 2
    assert all(s.instance is None for s in host.model_slots("clip").values())
    with pytest.raises(ServiceUnavailable, match="stopping"):
        await host.infer(_image())
    await host.stop()  # idempotent
    assert host.background_tasks == []


async def test_a_broken_model_file_fails_with_the_reason_and_others_keep_working(
    tmp_path, tiny_bioclip, host_factory
):
    model = write_clip_model(tmp_path / "broken")
    (model.path / "onnx" / "vision.fp32.onnx").write_bytes(b"this is not onnx")
    host = host_factory(
        [model.service_spec(), tiny_bioclip.service_spec()],
        registry={"clip": ClipService, "bioclip": BioclipService},
    )
    with pytest.raises(ServiceUnavailable, match="loading failed: onnxruntime cannot load vision.fp32.onnx"):
        await host.infer(_image())
    assert host.statuses()[0].state is ServiceState.FAILED
    with pytest.raises(ServiceUnavailable):  # not retried at once
        await host.infer(_image())
    result = await host.infer(InferenceRequest("bioclip_classify", image_bytes(), "image/png"))
    assert result.data["labels"]


async def test_stop_lets_requests_in_progress_finish(tiny_clip, host_factory):
    recorder = SessionRecorder(delay_s=0.2)
    host = host_factory([tiny_clip.service_spec()], registry={"clip": recorder.factory(ClipService)})
    await host.infer(_image())
    running = asyncio.create_task(host.infer(_image(1)))
    await asyncio.sleep(0.05)
    await host.stop()
    assert (await running).data["dim"] == tiny_clip.dim
    assert recorder.of("vision")[0].closed


async def test_a_lone_item_runs_at_once_and_a_cancelled_caller_keeps_its_slot_until_the_work_ends():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from services.lifecycle import Batcher

    pool = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(1)
    gate = threading.Event()
    batches: list[list[int]] = []

    def work(items: list[int]) -> list[int]:
        batches.append(list(items))
        gate.wait(5)
        return [i * 10 for i in items]

    spawned: list[str] = []

    def spawn(name, coro):
        spawned.append(name)
        return asyncio.ensure_future(coro)

    batcher = Batcher(
        work,
        max_size=8,
        max_wait_s=5.0,  # a lone item must not wait for it
        semaphore=semaphore,
        run=lambda fn, *args: loop.run_in_executor(pool, fn, *args),
        spawn=spawn,
        name="t",
        callers=lambda: 1,
    )
    gate.set()
    started = loop.time()
    assert await batcher.submit(3) == 30
    assert loop.time() - started < 2.0 and batches == [[3]] and spawned == []  # no dispatcher

    gate.clear()
    caller = asyncio.ensure_future(batcher.submit(4))
    while len(batches) < 2:
        await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert semaphore.locked()  # the executor still runs item 4: its slot is not given away
    gate.set()
    for _ in range(200):
        if not semaphore.locked():
            break
        await asyncio.sleep(0.01)
    assert not semaphore.locked()
    assert await batcher.submit(5) == 50
    assert list(batcher.batch_sizes) == [1, 1, 1]
    pool.shutdown()


async def test_a_freed_slot_waits_for_callers_on_their_way_until_the_batches_are_even():
    """Streams that keep requests coming settle into the split they started with; when the slot
    frees with fewer items waiting than callers still decoding, the batch waits for some."""
    from concurrent.futures import ThreadPoolExecutor

    from services.lifecycle import Batcher

    pool = ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(1)
    batches: list[list[str]] = []
    callers = 2  # requests holding the model for this batch's task

    def work(items: list[str]) -> list[str]:
        batches.append(list(items))
        return items

    batcher = Batcher(
        work,
        max_size=8,
        max_wait_s=30.0,  # only a bound: nothing here waits for it
        semaphore=semaphore,
        run=lambda fn, *args: loop.run_in_executor(pool, fn, *args),
        spawn=lambda name, coro: asyncio.ensure_future(coro),
        name="t",
        callers=lambda: callers,
    )
    await semaphore.acquire()  # another batch of the model is running
    first = [asyncio.ensure_future(batcher.submit(x)) for x in ("a", "b")]
    await asyncio.sleep(0.05)  # both wait for the slot; no other caller, so no reason to wait more
    callers = 5  # three more requests arrive and start decoding their images
    semaphore.release()
    await asyncio.sleep(0.05)
    assert batches == []  # 2 waiting, 3 on their way: it waits for one more
    third = asyncio.ensure_future(batcher.submit("c"))
    assert await asyncio.gather(*first, third) == ["a", "b", "c"]
    assert batches == [["a", "b", "c"]]  # 3 + the 2 still on their way, not 2 + 3
    callers = 2
    assert await asyncio.gather(batcher.submit("d"), batcher.submit("e")) == ["d", "e"]
    assert batches[-1] == ["d", "e"]
    pool.shutdown()
