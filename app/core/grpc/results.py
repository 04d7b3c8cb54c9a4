"""Turning host results and capabilities into home_native.v1 messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from proto.gen.home_native.v1 import ml_service_pb2 as pb
from services.api import PROTOCOL_VERSION, CapabilityInfo, InferenceFailed, InferenceResult, result_mime

MiB = 1024 * 1024
# Go's default receive limit is 4 MiB per message; results are split below it with room for meta.
RESULT_CHUNK_BYTES = int(3.9 * MiB)


_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def result_json(result: InferenceResult) -> bytes:
    """The result's JSON (UTF-8, compact). orjson: floats in shortest round-trip form like
    ``json``, but a 512-d embedding encodes in ~15 µs instead of ~0.7 ms; numpy arrays and
    scalars are accepted; NaN/Infinity become ``null`` (valid JSON, unlike ``json``'s NaN)."""
    try:
        return orjson.dumps(result.data, default=_fallback, option=_ORJSON_OPTIONS)
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise InferenceFailed(f"result of schema {result.schema} is not JSON-serialisable: {exc}") from exc


def _fallback(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def result_messages(
    body: bytes,
    *,
    schema: str,
    meta: Mapping[str, str],
    correlation_id: str,
    final: bool = True,
    chunk_bytes: int = RESULT_CHUNK_BYTES,
) -> list[pb.InferResponse]:
    """The messages of one result. A final result over ``chunk_bytes`` is split with
    seq/total/offset (``is_final`` only on the last; every chunk repeats mime, schema and meta, as
    the SDK's reassembly checks). A partial result is one non-final message with total 0."""
    mime = result_mime(schema)
    common = {"correlation_id": correlation_id, "result_mime": mime, "result_schema": schema, "meta": meta}
    if not final:
        return [pb.InferResponse(is_final=False, result=body, **common)]
    if len(body) <= chunk_bytes:
        return [pb.InferResponse(is_final=True, result=body, seq=0, total=1, offset=0, **common)]
    total = -(-len(body) // chunk_bytes)
    return [
        pb.InferResponse(
            is_final=i == total - 1,
            result=body[i * chunk_bytes : (i + 1) * chunk_bytes],
            seq=i,
            total=total,
            offset=i * chunk_bytes,
            **common,
        )
        for i in range(total)
    ]


def io_tasks(cap: CapabilityInfo) -> list[pb.IOTask]:
    """One IOTask per task name, then one per legacy alias (same handler, same mimes)."""
    tasks: list[pb.IOTask] = []
    seen: set[str] = set()
    for spec in cap.tasks:
        for name in (spec.name, *spec.aliases):
            if name in seen:
                continue
            seen.add(name)
            tasks.append(
                pb.IOTask(
                    name=name,
                    input_mimes=list(spec.input_mimes),
                    output_mimes=[spec.output_mime],
                    limits={str(k): str(v) for k, v in spec.limits.items()},
                    tensor_preprocess_id=spec.preprocess_id,
                    tensor_batching_supported=spec.batching_supported,
                )
            )
    return tasks


def capability_message(cap: CapabilityInfo, extra: Mapping[str, str] | None = None) -> pb.Capability:
    return pb.Capability(
        service_name=cap.service_name,
        model_ids=list(cap.model_ids),
        runtime=cap.runtime,
        max_concurrency=max(0, int(cap.max_concurrency)),
        precisions=list(cap.precisions),
        extra={**{str(k): str(v) for k, v in cap.extra.items()}, **(extra or {})},
        tasks=io_tasks(cap),
        protocol_version=cap.protocol_version or PROTOCOL_VERSION,
    )


def merged_capability(
    caps: Iterable[CapabilityInfo], extra: Mapping[str, str] | None = None
) -> pb.Capability:
    """GetCapabilities: every service's tasks in one Capability (the legacy single-capability RPC)."""
    caps = list(caps)
    names = [c.service_name for c in caps]
    runtimes = list(dict.fromkeys(c.runtime for c in caps if c.runtime))
    tasks: list[pb.IOTask] = []
    seen: set[str] = set()
    for cap in caps:
        for task in io_tasks(cap):
            if task.name not in seen:
                seen.add(task.name)
                tasks.append(task)
    return pb.Capability(
        service_name=",".join(names) or "lumen-node",
        model_ids=list(dict.fromkeys(m for c in caps for m in c.model_ids)),
        runtime=",".join(runtimes),
        max_concurrency=sum(max(0, int(c.max_concurrency)) for c in caps),
        precisions=list(dict.fromkeys(p for c in caps for p in c.precisions)),
        extra={"services": ",".join(names), **(extra or {})},
        tasks=tasks,
        protocol_version=PROTOCOL_VERSION,
    )
