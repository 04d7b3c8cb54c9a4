"""A Python client that talks to a node the way the Lumen Go SDK v1.4 does (for interop tests).

Written from the SDK's behaviour, independently of the node's own code: StreamCapabilities
first (task → service map; ``meta.service`` filled when a task maps to exactly one service),
payloads over 1 MiB sent as 256 KiB chunks with EMPTY correlation ids and seq/total/offset,
responses read until ``is_final`` and reassembled strictly (total/seq/offset/final/mime checks),
client keepalive pings every 10 s.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import empty_pb2

from proto.gen.home_native.v1 import ml_service_pb2 as pb
from proto.gen.home_native.v1 import ml_service_pb2_grpc as pb_grpc

MiB = 1024 * 1024
CHUNK_THRESHOLD = 1 * MiB
CHUNK_BYTES = 256 * 1024
GO_DEFAULT_RECEIVE = 4 * MiB
SDK_CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 3_000),
    ("grpc.max_receive_message_length", GO_DEFAULT_RECEIVE),
)


@dataclass
class Reply:
    response: pb.InferResponse  # the assembled final response
    messages: list[pb.InferResponse]

    @property
    def result(self) -> Any:
        return json.loads(self.response.result)


class SdkLikeClient:
    def __init__(self, target: str, options: tuple[tuple[str, Any], ...] = SDK_CHANNEL_OPTIONS) -> None:
        self.channel = grpc.aio.insecure_channel(target, options=list(options))
        self.stub = pb_grpc.InferenceStub(self.channel)
        self.capabilities: list[pb.Capability] = []

    async def __aenter__(self) -> SdkLikeClient:
        await self.fetch_capabilities()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()

    async def fetch_capabilities(self) -> list[pb.Capability]:
        self.capabilities = [cap async for cap in self.stub.StreamCapabilities(empty_pb2.Empty(), timeout=10)]
        return self.capabilities

    def services_for(self, task: str) -> list[str]:
        return [c.service_name for c in self.capabilities if any(t.name == task for t in c.tasks)]

    def messages(
        self, task: str, payload: bytes, mime: str, meta: Mapping[str, str] | None = None
    ) -> list[pb.InferRequest]:
        meta = dict(meta or {})
        services = self.services_for(task)
        if "service" not in meta and len(services) == 1:
            meta["service"] = services[0]
        if len(payload) <= CHUNK_THRESHOLD:
            return [
                pb.InferRequest(
                    correlation_id="sdk-1", task=task, payload=payload, payload_mime=mime, meta=meta
                )
            ]
        parts = [payload[i : i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)]
        return [
            pb.InferRequest(
                correlation_id="",
                task=task,
                payload=part,
                payload_mime=mime,
                meta=meta,
                seq=i,
                total=len(parts),
                offset=i * CHUNK_BYTES,
            )
            for i, part in enumerate(parts)
        ]

    async def infer(
        self,
        task: str,
        payload: bytes,
        mime: str,
        meta: Mapping[str, str] | None = None,
        timeout: float | None = 30,
    ) -> Reply:
        requests = self.messages(task, payload, mime, meta)

        async def send() -> AsyncIterator[pb.InferRequest]:
            for request in requests:
                yield request

        call = self.stub.Infer(send(), timeout=timeout)
        messages: list[pb.InferResponse] = []
        async for response in call:
            messages.append(response)
            if response.is_final:
                break
        call.cancel()
        return Reply(assemble(messages), messages)


def assemble(messages: list[pb.InferResponse]) -> pb.InferResponse:
    """Like the SDK: a chunked result (total > 1) must be exactly its chunks, in seq order,
    contiguous by offset, final only on the last, mime/schema/model_id identical."""
    if not messages:
        raise AssertionError("no responses")
    chunked = [m for m in messages if m.total > 1]
    if not chunked:
        finals = [m for m in messages if m.is_final]
        return finals[-1] if finals else messages[-1]
    total = chunked[0].total
    assert len(messages) == total, f"expected {total} response chunks, got {len(messages)}"
    ordered = sorted(messages, key=lambda m: m.seq)
    body = b""
    for index, message in enumerate(ordered):
        assert message.seq == index and message.total == total
        assert message.offset == len(body), f"chunk {index} offset {message.offset} != {len(body)}"
        assert message.is_final == (index == total - 1)
        assert message.result_mime == ordered[0].result_mime
        assert message.result_schema == ordered[0].result_schema
        assert message.meta.get("model_id") == ordered[0].meta.get("model_id")
        body += message.result
    last = ordered[-1]
    return pb.InferResponse(
        correlation_id=last.correlation_id,
        is_final=True,
        result=body,
        meta=dict(last.meta),
        result_mime=last.result_mime,
        result_schema=last.result_schema,
        total=1,
    )
