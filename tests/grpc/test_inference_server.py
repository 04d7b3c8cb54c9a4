"""The Inference servicer on a real grpc.aio server, called like the Go SDK calls it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.core.node import NodeState
from proto.gen.home_native.v1 import ml_service_pb2 as pb
from proto.gen.home_native.v1 import ml_service_pb2_grpc as pb_grpc
from services.api import ServiceState, TaskSpec
from tests.grpc.conftest import ALL, free_port, image_bytes, target
from tests.support.fake_host import FakeHost, SlowStartHost
from tests.support.sdk_like_client import CHUNK_BYTES, SdkLikeClient


def _vector_for(payload: bytes, dim: int = 8) -> list[float]:
    digest = hashlib.sha256(payload).digest()
    raw = [digest[i % 32] - 127.5 for i in range(dim)]
    norm = sum(v * v for v in raw) ** 0.5
    return [v / norm for v in raw]


async def _status(call_coro) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call_coro
    return info.value


async def test_stream_capabilities_one_per_service_with_protocol_version(make_node) -> None:
    node = await make_node(FakeHost(ALL))
    async with SdkLikeClient(target(node)) as client:
        caps = client.capabilities
    assert [c.service_name for c in caps] == list(ALL)
    assert {c.protocol_version for c in caps} == {"1.0.0"}
    clip = caps[0]
    names = [t.name for t in clip.tasks]
    assert names == [
        "semantic_text_embed",
        "clip_text_embed",
        "semantic_image_embed",
        "clip_image_embed",
        "clip_classify",
    ]
    text = clip.tasks[0]
    assert list(text.input_mimes) == ["text/plain"]
    assert list(text.output_mimes) == ["application/json;schema=embedding_v1"]
    assert clip.extra["node_id"] == node.snapshot().node_id and clip.runtime == "fake-cpu"
    every_task = [t.name for c in caps for t in c.tasks]
    assert len(every_task) == len(set(every_task)), "each task belongs to exactly one service"
    assert "bioclip_classify" in [t.name for t in caps[1].tasks]


async def test_get_capabilities_is_merged_and_health_answers(make_node) -> None:
    node = await make_node(FakeHost(("clip", "ocr")))
    async with grpc.aio.insecure_channel(target(node)) as channel:
        stub = pb_grpc.InferenceStub(channel)
        merged = await stub.GetCapabilities(empty_pb2.Empty(), timeout=5)
        await stub.Health(empty_pb2.Empty(), timeout=5)
    assert merged.protocol_version == "1.0.0" and merged.service_name == "clip,ocr"
    assert {"semantic_text_embed", "ocr"} <= {t.name for t in merged.tasks}
    assert list(merged.model_ids) == ["clip-fake-fake", "ocr-fake-fake"]


async def test_text_embedding_has_exact_mime_schema_and_model_meta(make_node) -> None:
    host = FakeHost(("clip",), tag="n1")
    node = await make_node(host)
    async with SdkLikeClient(target(node)) as client:
        reply = await client.infer("semantic_text_embed", b"a red fox", "text/plain")
    response = reply.response
    assert response.is_final and len(reply.messages) == 1
    assert response.result_mime == "application/json;schema=embedding_v1"
    assert response.result_schema == "embedding_v1"
    assert reply.result["vector"] == pytest.approx(_vector_for(b"a red fox"))
    meta = dict(response.meta)
    assert meta["service"] == "clip" and meta["model_id"] == "clip-fake-n1" and meta["runtime"] == "fake-cpu"
    assert meta["node_id"] == node.snapshot().node_id and float(meta["lat_ms"]) >= 0
    assert response.correlation_id == "sdk-1"
    assert host.services["clip"].calls[0].meta["service"] == "clip"


async def test_a_chunked_image_with_empty_correlation_ids_is_reassembled(make_node, big_webp: bytes) -> None:
    host = FakeHost(("clip",), check_images=True)
    node = await make_node(host)
    async with SdkLikeClient(target(node)) as client:
        sent = client.messages("semantic_image_embed", big_webp, "image/webp")
        assert len(sent) == -(-len(big_webp) // CHUNK_BYTES) and {m.correlation_id for m in sent} == {""}
        reply = await client.infer("semantic_image_embed", big_webp, "image/webp")
    assert host.services["clip"].calls[0].payload == big_webp
    assert host.services["clip"].calls[0].mime == "image/webp"
    assert reply.result["vector"] == pytest.approx(_vector_for(big_webp))


async def test_routing_by_task_tolerates_a_wrong_service_hint_and_passes_top_k(make_node) -> None:
    host = FakeHost(("clip", "bioclip"))
    node = await make_node(host)
    async with SdkLikeClient(target(node)) as client:
        reply = await client.infer(
            "bioclip_classify", image_bytes(), "image/webp", {"service": "clip", "top_k": "3.0"}
        )
    assert reply.response.result_mime == "application/json;schema=labels_v1"
    assert reply.response.meta["service"] == "bioclip"
    assert host.services["bioclip"].calls[0].meta["top_k"] == "3.0"


async def test_service_hint_breaks_a_tie(make_node) -> None:
    host = FakeHost(("clip", "bioclip"))
    shared = TaskSpec("clip_classify", ("image/webp",), "labels_v1")
    host.services["bioclip"].tasks = (*host.services["bioclip"].tasks, shared)
    node = await make_node(host)
    async with SdkLikeClient(target(node)) as client:
        first = await client.infer("clip_classify", b"img", "image/webp", {"service": "bioclip"})
        second = await client.infer("clip_classify", b"img", "image/webp", {"service": "clip"})
    assert first.response.meta["service"] == "bioclip" and second.response.meta["service"] == "clip"


async def test_unknown_task_is_not_found_naming_what_is_offered(make_node) -> None:
    node = await make_node(FakeHost(("ocr",)))
    async with SdkLikeClient(target(node)) as client:
        error = await _status(client.infer("semantic_text_embed", b"x", "text/plain"))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert "semantic_text_embed" in error.details() and "tasks offered: ocr" in error.details()


async def test_bad_input_is_invalid_argument(make_node) -> None:
    node = await make_node(FakeHost(("face",), check_images=True))
    async with SdkLikeClient(target(node)) as client:
        empty = await _status(client.infer("face_recognition", b"", "image/webp"))
        garbage = await _status(client.infer("face_recognition", b"not an image at all", "image/webp"))
        ok = await client.infer("face_recognition", image_bytes(fmt="PNG"), "image/png")
    assert empty.code() is grpc.StatusCode.INVALID_ARGUMENT and "empty payload" in empty.details()
    assert garbage.code() is grpc.StatusCode.INVALID_ARGUMENT and "not a decodable image" in garbage.details()
    assert ok.response.result_mime == "application/json;schema=face_v1"


async def _health(node, name: str) -> int:
    async with grpc.aio.insecure_channel(target(node)) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=5
        )
    return reply.status


async def _until(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_a_loading_service_is_unavailable_then_serves_once_ready(make_node) -> None:
    host = FakeHost(("clip", "ocr"))
    host.set_state("clip", ServiceState.LOADING)
    node = await make_node(host)
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert await _health(node, "") == serving
    assert await _health(node, "clip") == not_serving and await _health(node, "ocr") == serving
    async with SdkLikeClient(target(node)) as client:
        assert [c.service_name for c in client.capabilities] == ["clip", "ocr"]  # capabilities still answer
        error = await _status(client.infer("semantic_text_embed", b"x", "text/plain"))
        assert error.code() is grpc.StatusCode.UNAVAILABLE and "loading" in error.details()
        host.set_state("clip", ServiceState.READY)

        async def clip_serving() -> bool:
            return await _health(node, "clip") == serving

        await _until(clip_serving)
        reply = await client.infer("semantic_text_embed", b"x", "text/plain")
    assert reply.response.is_final


async def test_a_failed_service_is_failed_precondition_not_unavailable(make_node) -> None:
    host = FakeHost(("face",))
    host.hold("face", ServiceState.FAILED, "rknn runtime requested but not available on x86_64")
    node = await make_node(host)
    async with SdkLikeClient(target(node)) as client:
        error = await _status(client.infer("face_recognition", b"img", "image/webp"))
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION and "rknn runtime" in error.details()


async def test_a_full_queue_is_resource_exhausted(make_node) -> None:
    host = FakeHost(("ocr",))
    host.services["ocr"].max_queue = 1
    host.services["ocr"].delay_s = 1.0
    node = await make_node(host)
    async with SdkLikeClient(target(node)) as client:
        first = asyncio.ensure_future(client.infer("ocr", b"img", "image/webp"))
        await _until(lambda: _true(host.services["ocr"].in_flight == 1))
        error = await _status(client.infer("ocr", b"img", "image/webp"))
        assert (await first).response.is_final
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def _true(value: bool) -> bool:
    return value


async def test_deadline_cancels_the_host_work(make_node) -> None:
    host = FakeHost(("clip",))
    host.services["clip"].delay_s = 30
    node = await make_node(host)
    async with SdkLikeClient(target(node)) as client:
        error = await _status(client.infer("semantic_text_embed", b"x", "text/plain", timeout=0.5))
        assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        await _until(lambda: _true(host.services["clip"].cancelled == 1))
    assert host.services["clip"].in_flight == 0
    assert node.counters.node.by_code["DEADLINE_EXCEEDED"] == 1


async def test_client_cancellation_cancels_the_host_work(make_node) -> None:
    host = FakeHost(("clip",))
    host.services["clip"].delay_s = 30
    node = await make_node(host)
    async with grpc.aio.insecure_channel(target(node)) as channel:
        stub = pb_grpc.InferenceStub(channel)

        async def one() -> AsyncIterator[pb.InferRequest]:
            yield pb.InferRequest(task="semantic_text_embed", payload=b"x", payload_mime="text/plain")

        call = stub.Infer(one())
        await _until(lambda: _true(host.services["clip"].in_flight == 1))
        call.cancel()
        await _until(lambda: _true(host.services["clip"].cancelled == 1))
    assert node.counters.node.by_code["CANCELLED"] == 1


async def test_an_oversized_chunk_stream_is_refused_at_its_first_chunk(make_node) -> None:
    host = FakeHost(("clip",))
    node = await make_node(host)
    sent: list[int] = []
    gate = asyncio.Event()

    async def chunks() -> AsyncIterator[pb.InferRequest]:
        for seq in range(400):  # 400 x 256 KiB = 100 MiB, over the 64 MiB cap
            sent.append(seq)
            yield pb.InferRequest(
                task="semantic_image_embed",
                payload=b"\0" * CHUNK_BYTES,
                payload_mime="image/webp",
                seq=seq,
                total=400,
                offset=seq * CHUNK_BYTES,
            )
            await gate.wait()  # the next chunk only after the server answered

    async with grpc.aio.insecure_channel(target(node)) as channel:
        call = pb_grpc.InferenceStub(channel).Infer(chunks())
        error = await _status(call.read())
        gate.set()
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "payload limit" in error.details()
    assert sent == [0] and host.services["clip"].calls == []


async def test_inconsistent_chunks_are_invalid_argument(make_node) -> None:
    node = await make_node(FakeHost(("clip",)))

    async def chunks() -> AsyncIterator[pb.InferRequest]:
        for seq, mime in enumerate(("image/webp", "image/png")):
            yield pb.InferRequest(
                task="semantic_image_embed",
                payload=b"ab",
                payload_mime=mime,
                seq=seq,
                total=2,
                offset=seq * 2,
            )

    async with grpc.aio.insecure_channel(target(node)) as channel:
        error = await _status(pb_grpc.InferenceStub(channel).Infer(chunks()).read())
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT and "payload_mime" in error.details()


async def test_a_result_over_4_mib_is_split_and_reassembles(make_node) -> None:
    host = FakeHost(("clip",), dim=400_000)
    node = await make_node(host)
    async with SdkLikeClient(target(node)) as client:  # 4 MiB receive limit, like Go
        reply = await client.infer("semantic_text_embed", b"long", "text/plain")
    assert len(reply.messages) >= 2
    assert all(m.ByteSize() < 4 * 1024 * 1024 for m in reply.messages)
    assert [m.is_final for m in reply.messages][-1] and not any(m.is_final for m in reply.messages[:-1])
    assert reply.result["dim"] == 400_000 and len(reply.result["vector"]) == 400_000


async def test_partial_results_stream_before_the_final_one(make_node) -> None:
    host = FakeHost(("ocr",))
    host.services["ocr"].partials = 2
    node = await make_node(host)
    async with SdkLikeClient(target(node)) as client:
        reply = await client.infer("ocr", b"img", "image/webp")
    assert [m.is_final for m in reply.messages] == [False, False, True]
    assert [json.loads(m.result).get("partial") for m in reply.messages] == [0, 1, None]


class _BrokenHost(FakeHost):
    broken = True

    async def run(self, request):  # type: ignore[override]
        if self.broken:
            self.broken = False
            raise RuntimeError("a bug with /private/details")
        async for result in super().run(request):
            yield result


async def test_a_bug_is_internal_with_a_safe_message_and_the_server_keeps_serving(make_node) -> None:
    node = await make_node(_BrokenHost(("clip",)))
    async with SdkLikeClient(target(node)) as client:
        error = await _status(client.infer("semantic_text_embed", b"x", "text/plain"))
        assert error.code() is grpc.StatusCode.INTERNAL and "/private" not in error.details()
        assert (await client.infer("semantic_text_embed", b"x", "text/plain")).response.is_final


async def test_a_node_without_services_has_no_capabilities_and_no_tasks(make_node) -> None:
    node = await make_node(None, services=())
    async with SdkLikeClient(target(node)) as client:
        assert client.capabilities == []
        error = await _status(client.infer("semantic_text_embed", b"x", "text/plain"))
    assert error.code() is grpc.StatusCode.NOT_FOUND and "hosts no services" in error.details()


async def _all(stream) -> list[object]:
    return [item async for item in stream]


async def test_while_the_node_starts_capabilities_and_infer_are_unavailable(make_node) -> None:
    # SDK fact: a capability fetch that fails with UNAVAILABLE is retried (1 s doubling to 8 s)
    # while the node stays pending, and its requests wait instead of failing here.
    port = free_port()
    host = SlowStartHost(("clip",))
    node = await make_node(host, start=False, port=port)
    starting = asyncio.ensure_future(node.start())
    try:
        await _until(
            lambda: _true(node.snapshot().state is NodeState.STARTING and bool(node.snapshot().listeners))
        )
        client = SdkLikeClient(f"127.0.0.1:{port}")
        try:
            streamed = await _status(_all(client.stub.StreamCapabilities(empty_pb2.Empty(), timeout=5)))
            merged = await _status(client.stub.GetCapabilities(empty_pb2.Empty(), timeout=5))
            error = await _status(client.infer("semantic_text_embed", b"x", "text/plain"))
        finally:
            await client.channel.close()
        for failure in (streamed, merged, error):
            assert failure.code() is grpc.StatusCode.UNAVAILABLE and "starting" in failure.details()
    finally:
        host.release.set()
        await starting
    async with SdkLikeClient(f"127.0.0.1:{port}") as client:
        assert [c.service_name for c in client.capabilities] == ["clip"]
        assert (await client.infer("semantic_text_embed", b"x", "text/plain")).response.is_final


async def test_capabilities_wait_until_some_service_is_past_downloading(make_node) -> None:
    host = FakeHost(("clip", "ocr"))
    host.hold("clip", ServiceState.DOWNLOADING, "fetching MobileCLIP2-S2")
    host.hold("ocr", ServiceState.DOWNLOADING, "fetching PP-OCRv5")
    node = await make_node(host)
    async with grpc.aio.insecure_channel(target(node)) as channel:
        stub = pb_grpc.InferenceStub(channel)
        error = await _status(_all(stub.StreamCapabilities(empty_pb2.Empty(), timeout=5)))
        assert error.code() is grpc.StatusCode.UNAVAILABLE
        assert "clip downloading" in error.details() and "ocr downloading" in error.details()
        host.hold("ocr", None)  # one service can serve: every service is announced again
        caps = await _all(stub.StreamCapabilities(empty_pb2.Empty(), timeout=5))
    assert [c.service_name for c in caps] == ["clip", "ocr"]


async def test_the_sdk_tensor_fast_path_is_refused_clearly(make_node) -> None:
    host = FakeHost(("clip",))
    node = await make_node(host)
    tensor_meta = {
        "lumen.input.kind": "tensor",
        "lumen.tensor.dtype": "fp32",
        "lumen.tensor.shape": "[1,3,224,224]",
        "lumen.preprocess.id": "clip_image_preprocess_v1",
    }
    async with SdkLikeClient(target(node)) as client:
        assert all(not t.tensor_preprocess_id for c in client.capabilities for t in c.tasks)
        error = await _status(
            client.infer("semantic_image_embed", b"\0" * 64, "application/octet-stream", tensor_meta)
        )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "tensor fast path" in error.details() and "image/webp" in error.details()
    assert host.services["clip"].calls == []


async def test_an_extra_listener_serves_only_its_services(make_node) -> None:
    extra = free_port()
    node = await make_node(FakeHost(("clip", "ocr")), services=("clip", "ocr"), extra_ports={"ocr": extra})
    assert [li.services for li in node.snapshot().listeners] == [None, ("ocr",)]
    async with SdkLikeClient(f"127.0.0.1:{extra}") as client:
        assert [c.service_name for c in client.capabilities] == ["ocr"]
        assert (await client.infer("ocr", b"img", "image/webp")).response.meta["service"] == "ocr"
        error = await _status(client.infer("semantic_text_embed", b"x", "text/plain"))
    assert error.code() is grpc.StatusCode.NOT_FOUND and "services ocr" in error.details()
    assert (
        await _health(node, "clip") == health_pb2.HealthCheckResponse.SERVING
    )  # main listener: every service


async def test_counters_count_outcomes_per_service(make_node) -> None:
    node = await make_node(FakeHost(("clip",)))
    async with SdkLikeClient(target(node)) as client:
        await client.infer("semantic_text_embed", b"x", "text/plain")
        await _status(client.infer("semantic_text_embed", b"", "text/plain"))
        await _status(client.infer("nope", b"x", "text/plain"))
    counters = node.counters
    assert (counters.node.total, counters.node.ok, counters.node.failed) == (3, 1, 2)
    assert counters.node.by_code == {"INVALID_ARGUMENT": 1, "NOT_FOUND": 1}
    assert (counters.services["clip"].ok, counters.services["clip"].failed) == (1, 1)
    assert counters.node.in_flight == 0


class _LeaseHost(FakeHost):
    """Records whether the host's work (its result generator, holding the model) is still open."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.open = 0

    async def run(self, request):  # type: ignore[override]
        self.open += 1
        try:
            async for result in super().run(request):
                yield result
        finally:
            self.open -= 1


async def test_the_final_result_is_written_after_the_host_released_the_model(
    make_node, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Otherwise the client's next request can find this one still holding the model, and the
    # service host's batcher waits batch_max_wait_ms for a batch partner that never comes.
    from app.core.grpc.inference import InferenceServicer

    host = _LeaseHost(("clip",))
    host.services["clip"].partials = 1
    seen: list[tuple[bool, int]] = []
    original = InferenceServicer._write

    async def spy(self, result, *args):  # type: ignore[no-untyped-def]
        seen.append((result.final, host.open))
        await original(self, result, *args)

    monkeypatch.setattr(InferenceServicer, "_write", spy)
    node = await make_node(host)
    async with SdkLikeClient(target(node)) as client:
        reply = await client.infer("semantic_text_embed", b"x", "text/plain")
    assert reply.response.is_final and len(reply.messages) == 2
    assert seen == [(False, 1), (True, 0)]  # partials stream while working; the final after closing
