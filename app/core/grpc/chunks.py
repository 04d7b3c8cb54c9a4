"""Reassembly of one Infer stream's chunks into one request, and the sender side
(:func:`request_messages`, used by the router and the CLI).

The Go SDK sends payloads over 1 MiB as 256 KiB chunks with ``seq/total/offset``, identical
task/meta/mime and usually an EMPTY ``correlation_id``; one stream is one logical request, so the
buffer belongs to the stream (never keyed by correlation id). Every chunk is checked the moment it
arrives, so an oversized or inconsistent stream is refused at its first bad chunk, before memory
is spent on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from proto.gen.home_native.v1 import ml_service_pb2 as pb
from services.api import InferenceRequest, InvalidInput

MiB = 1024 * 1024
KiB = 1024
CHUNK_THRESHOLD = 1 * MiB  # what the Go SDK does: chunk payloads over 1 MiB ...
CHUNK_BYTES = 256 * 1024  # ... into 256 KiB pieces


def request_messages(
    task: str, payload: bytes, mime: str, meta: Mapping[str, str], correlation_id: str = ""
) -> Iterator[pb.InferRequest]:
    """A request as the Go SDK sends it: one message up to 1 MiB, else 256 KiB chunks."""
    if len(payload) <= CHUNK_THRESHOLD:
        yield pb.InferRequest(
            correlation_id=correlation_id, task=task, payload=payload, payload_mime=mime, meta=meta
        )
        return
    total = -(-len(payload) // CHUNK_BYTES)
    for seq in range(total):
        offset = seq * CHUNK_BYTES
        yield pb.InferRequest(
            correlation_id=correlation_id,
            task=task,
            payload=payload[offset : offset + CHUNK_BYTES],
            payload_mime=mime,
            meta=meta,
            seq=seq,
            total=total,
            offset=offset,
        )


@dataclass(frozen=True)
class PayloadLimits:
    """Bounds of one request. ``max_bytes`` is the largest payload (image) accepted."""

    max_bytes: int = 64 * MiB
    max_chunks: int = 4096

    @property
    def max_message_bytes(self) -> int:
        """The gRPC receive limit: a whole payload in one message plus room for task/meta."""
        return self.max_bytes + MiB


class ChunkAssembler:
    """Feed the stream's messages to :meth:`add` until it returns True, then take :meth:`request`."""

    def __init__(self, limits: PayloadLimits | None = None) -> None:
        self.limits = limits or PayloadLimits()
        self._task = ""
        self._mime = ""
        self._meta: dict[str, str] = {}
        self._correlation_id = ""
        self._total = 0
        self._received = 0
        self._parts: list[bytes] = []  # joined once at the end (one copy for a chunked payload)
        self._size = 0
        self._complete = False

    @property
    def correlation_id(self) -> str:
        return self._correlation_id

    def add(self, message: object) -> bool:
        """Take one ``InferRequest``; True when the request is complete. Raises InvalidInput."""
        if self._complete:
            raise InvalidInput(
                "one Infer stream carries one request; a message arrived after it was complete"
            )
        task = str(getattr(message, "task", ""))
        payload = bytes(getattr(message, "payload", b""))
        mime = str(getattr(message, "payload_mime", ""))
        seq = int(getattr(message, "seq", 0))
        total = int(getattr(message, "total", 0))
        offset = int(getattr(message, "offset", 0))
        limits = self.limits
        if self._received == 0:
            if not task:
                raise InvalidInput("InferRequest.task is empty; name a task such as semantic_text_embed")
            if total > limits.max_chunks:
                raise InvalidInput(
                    f"the chunk stream declares {total} chunks; at most {limits.max_chunks} are accepted"
                )
            self._task, self._mime, self._total = task, mime, total
            self._meta = dict(getattr(message, "meta", {}))
            self._correlation_id = str(getattr(message, "correlation_id", ""))
            if total <= 1:
                if seq != 0 or offset != 0:
                    raise InvalidInput(
                        "a single-message request must have seq 0 and offset 0 "
                        f"(got seq {seq}, offset {offset})"
                    )
                self._check_size(offset, len(payload))
                self._parts = [payload]  # a whole payload in one message is never copied
                self._size = len(payload)
                self._received = 1
                self._complete = True
                return True
        else:
            if task != self._task:
                raise InvalidInput(f"chunk {seq} has task {task!r}; every chunk must repeat {self._task!r}")
            if mime != self._mime:
                raise InvalidInput(
                    f"chunk {seq} has payload_mime {mime!r}; every chunk must repeat {self._mime!r}"
                )
            if total != self._total:
                raise InvalidInput(
                    f"chunk {seq} declares total {total}; the stream started with {self._total}"
                )
        if seq != self._received:
            raise InvalidInput(
                f"chunk seq {seq} arrived where seq {self._received} was expected; send chunks in order"
            )
        if offset != self._size:
            raise InvalidInput(
                f"chunk {seq} has offset {offset} but the payload so far ends at byte {self._size}; "
                "chunks must be contiguous"
            )
        if not payload:
            raise InvalidInput(f"chunk {seq} of {self._total} is empty")
        if seq == 0:
            # every chunk but the last is as large as the first: refuse a stream that must exceed the cap
            at_least = (self._total - 1) * len(payload) + 1
            if at_least > limits.max_bytes:
                raise InvalidInput(
                    f"the chunk stream declares {self._total} chunks of {len(payload)} bytes, at least "
                    f"{at_least} bytes; the payload limit is {limits.max_bytes} bytes"
                )
        self._check_size(offset, len(payload))
        self._parts.append(payload)
        self._size += len(payload)
        self._received += 1
        if self._received == self._total:
            self._complete = True
        return self._complete

    def _check_size(self, offset: int, size: int) -> None:
        if offset + size > self.limits.max_bytes:
            raise InvalidInput(
                f"the payload exceeds {self.limits.max_bytes} bytes (at least {offset + size} sent); "
                f"send at most {self.limits.max_bytes // MiB} MiB"
            )

    def incomplete_reason(self) -> str:
        if self._received == 0:
            return "the Infer stream ended without a request"
        return f"the Infer stream ended after {self._received} of {self._total} chunks"

    def request(self) -> InferenceRequest:
        if not self._complete:
            raise InvalidInput(self.incomplete_reason())
        payload = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        return InferenceRequest(task=self._task, payload=payload, mime=self._mime, meta=self._meta)
