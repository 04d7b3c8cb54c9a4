"""ServiceHost.reconfigure: services enabled/disabled live, unchanged ones keep their models."""

import asyncio
import dataclasses

import pytest

from services.api import InferenceRequest, ServiceState, ServiceUnavailable, TaskNotFound
from tests.services.conftest import wait_for_state
from tests.support.tiny_models import image_bytes


def _text(task="semantic_text_embed"):
    return InferenceRequest(task, b"a cat", "text/plain")


async def test_adding_a_service_keeps_the_loaded_one(tiny_clip, tiny_bioclip, host_factory):
    host = host_factory([tiny_clip.service_spec()])
    seen = []
    host.add_status_listener(seen.append)
    await host.infer(_text())
    clip_slot = host.model_slots("clip")["default"]
    assert clip_slot.state is ServiceState.READY

    await host.reconfigure([tiny_clip.service_spec(), tiny_bioclip.service_spec("bioclip")])
    assert [s.name for s in host.statuses()] == ["clip", "bioclip"]
    assert host.model_slots("clip")["default"] is clip_slot and clip_slot.loads == 1
    result = await host.infer(InferenceRequest("bioclip_classify", image_bytes(40, 40), "image/png"))
    assert result.schema == "labels_v1"
    assert any(s.name == "bioclip" for s in seen)


async def test_removing_a_service_unloads_it_and_reports_disabled(tiny_clip, tiny_bioclip, host_factory):
    host = host_factory([tiny_clip.service_spec(), tiny_bioclip.service_spec("bioclip")])
    await host.infer(InferenceRequest("bioclip_classify", image_bytes(40, 40), "image/png"))
    bio_slot = host.model_slots("bioclip")["default"]
    assert bio_slot.instance is not None
    seen = []
    host.add_status_listener(seen.append)

    await host.reconfigure([tiny_clip.service_spec()])
    assert [s.name for s in host.statuses()] == ["clip"]
    assert bio_slot.instance is None  # unloaded
    assert [(s.name, s.state) for s in seen] == [("bioclip", ServiceState.DISABLED)]
    with pytest.raises(TaskNotFound):
        host.resolve("bioclip_classify")
    await host.infer(_text())  # clip still serves


async def test_a_request_in_flight_finishes_then_the_model_unloads(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()], max_concurrency_per_model=1)
    await host.infer(_text())
    slot = host.model_slots("clip")["default"]
    gate = asyncio.Event()
    original = slot.instance.encode_texts

    def slow(*args, **kwargs):
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(timeout=5)
        return original(*args, **kwargs)

    loop = asyncio.get_running_loop()
    slot.instance.encode_texts = slow
    slot.batchers.clear()  # batchers hold the function they were made with
    running = asyncio.ensure_future(host.infer(_text()))
    await asyncio.sleep(0.05)
    await host.reconfigure([])
    assert slot.instance is not None  # still in use
    gate.set()
    result = await running
    assert result.schema == "embedding_v1"
    for _ in range(100):
        if slot.instance is None:
            break
        await asyncio.sleep(0.01)
    assert slot.instance is None
    with pytest.raises(TaskNotFound):
        await host.infer(_text())


async def test_a_changed_service_is_rebuilt(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()])
    await host.start()
    await host.infer(_text())
    old = host.model_slots("clip")["default"]
    changed = dataclasses.replace(tiny_clip.service_spec(), preload=True)
    await host.reconfigure([changed])
    new = host.model_slots("clip")["default"]
    assert new is not old and old.instance is None
    await wait_for_state(host, "clip", ServiceState.READY)  # preloaded because the new spec says so


async def test_reconfigure_refuses_duplicates(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()])
    with pytest.raises(ValueError, match="twice"):
        await host.reconfigure([tiny_clip.service_spec(), tiny_clip.service_spec()])
    await host.infer(_text())


async def test_stopped_host_refuses(tiny_clip, host_factory):
    host = host_factory([tiny_clip.service_spec()])
    await host.stop()
    with pytest.raises(ServiceUnavailable):
        await host.infer(_text())
