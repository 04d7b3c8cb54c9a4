"""Chunk reassembly: per stream, by offset, validated at every chunk, capped before memory is spent."""

from __future__ import annotations

import pytest

from app.core.grpc.chunks import ChunkAssembler, PayloadLimits
from proto.gen.home_native.v1 import ml_service_pb2 as pb
from services.api import InvalidInput

KiB = 1024


def _chunks(payload: bytes, size: int, **over: object) -> list[pb.InferRequest]:
    parts = [payload[i : i + size] for i in range(0, len(payload), size)]
    base = {"task": "semantic_image_embed", "payload_mime": "image/webp", "meta": {"service": "clip"}}
    base.update(over)
    return [
        pb.InferRequest(payload=part, seq=i, total=len(parts), offset=i * size, **base)  # type: ignore[arg-type]
        for i, part in enumerate(parts)
    ]


def _feed(assembler: ChunkAssembler, messages: list[pb.InferRequest]) -> bool:
    done = False
    for message in messages:
        done = assembler.add(message)
    return done


def test_single_message_request_is_complete_at_once() -> None:
    assembler = ChunkAssembler()
    assert assembler.add(
        pb.InferRequest(task="semantic_text_embed", payload=b"a cat", payload_mime="text/plain")
    )
    request = assembler.request()
    assert (request.task, request.payload, request.mime) == ("semantic_text_embed", b"a cat", "text/plain")


def test_chunks_with_empty_correlation_ids_reassemble_in_order() -> None:
    payload = bytes(range(256)) * 5000  # 1.28 MB
    messages = _chunks(payload, 256 * KiB)
    assert all(m.correlation_id == "" for m in messages) and len(messages) == 5
    assembler = ChunkAssembler()
    results = [assembler.add(m) for m in messages]
    assert results == [False, False, False, False, True]
    request = assembler.request()
    assert request.payload == payload and request.meta == {"service": "clip"}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda ms: [ms[0], ms[2]], "seq 2 arrived where seq 1 was expected"),
        (lambda ms: [ms[0], _with(ms[1], offset=ms[1].offset + 1)], "must be contiguous"),
        (lambda ms: [ms[0], _with(ms[1], total=9)], "declares total 9"),
        (lambda ms: [ms[0], _with(ms[1], task="ocr")], "must repeat 'semantic_image_embed'"),
        (lambda ms: [ms[0], _with(ms[1], payload_mime="image/png")], "must repeat 'image/webp'"),
        (lambda ms: [ms[0], _with(ms[1], payload=b"")], "is empty"),
    ],
)
def test_inconsistent_chunks_are_refused_naming_the_problem(mutate, expected: str) -> None:
    messages = mutate(_chunks(b"x" * 1000, 300))
    assembler = ChunkAssembler()
    with pytest.raises(InvalidInput, match=expected):
        _feed(assembler, messages)


def _with(message: pb.InferRequest, **fields: object) -> pb.InferRequest:
    copy = pb.InferRequest()
    copy.CopyFrom(message)
    for key, value in fields.items():
        setattr(copy, key, value)
    return copy


def test_a_stream_declaring_too_many_chunks_is_refused_at_the_first_chunk() -> None:
    assembler = ChunkAssembler(PayloadLimits(max_bytes=1000, max_chunks=8))
    first = pb.InferRequest(task="ocr", payload=b"x", seq=0, total=9, offset=0)
    with pytest.raises(InvalidInput, match="declares 9 chunks; at most 8"):
        assembler.add(first)


def test_a_stream_that_must_exceed_the_size_cap_is_refused_at_the_first_chunk() -> None:
    assembler = ChunkAssembler(PayloadLimits(max_bytes=1000, max_chunks=100))
    first = pb.InferRequest(task="ocr", payload=b"x" * 300, seq=0, total=5, offset=0)
    with pytest.raises(InvalidInput, match="at least 1201 bytes; the payload limit is 1000"):
        assembler.add(first)


def test_the_size_cap_holds_when_chunks_grow() -> None:
    assembler = ChunkAssembler(PayloadLimits(max_bytes=1000, max_chunks=100))
    assembler.add(pb.InferRequest(task="ocr", payload=b"x" * 10, seq=0, total=3, offset=0))
    with pytest.raises(InvalidInput, match="exceeds 1000 bytes"):
        assembler.add(pb.InferRequest(task="ocr", payload=b"x" * 991, seq=1, total=3, offset=10))


def test_a_whole_payload_over_the_cap_in_one_message_is_refused() -> None:
    assembler = ChunkAssembler(PayloadLimits(max_bytes=100))
    with pytest.raises(InvalidInput, match="exceeds 100 bytes"):
        assembler.add(pb.InferRequest(task="ocr", payload=b"x" * 101))


def test_an_ended_stream_names_what_is_missing() -> None:
    assembler = ChunkAssembler()
    with pytest.raises(InvalidInput, match="ended without a request"):
        assembler.request()
    _feed(assembler, _chunks(b"y" * 1000, 300)[:2])
    with pytest.raises(InvalidInput, match="after 2 of 4 chunks"):
        assembler.request()


def test_empty_task_and_messages_after_completion_are_refused() -> None:
    with pytest.raises(InvalidInput, match="task is empty"):
        ChunkAssembler().add(pb.InferRequest(payload=b"x"))
    assembler = ChunkAssembler()
    assembler.add(pb.InferRequest(task="ocr", payload=b"x"))
    with pytest.raises(InvalidInput, match="after it was complete"):
        assembler.add(pb.InferRequest(task="ocr", payload=b"x"))
