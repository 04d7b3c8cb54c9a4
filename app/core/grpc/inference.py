"""The ``home_native.v1.Inference`` servicer: every hosted service behind one port.

* StreamCapabilities: one Capability per service of the listener's view (also while services
  are still downloading or loading), then the stream ends. GetCapabilities: one merged Capability.
* Infer: one stream = one request. Chunks are reassembled per stream (chunks.py), the task is
  routed by name (``meta.service`` only breaks ties), the host's results go back as zero or more
  partial messages and one final result (split above ~3.9 MiB). Failures are gRPC status codes
  from status_map.py, never only the in-band ``error`` field. A client cancel or a deadline
  cancels the host's work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from google.protobuf import empty_pb2

from app.core.grpc.chunks import ChunkAssembler, PayloadLimits
from app.core.grpc.counters import RequestCounters
from app.core.grpc.forwarding import Forwarder
from app.core.grpc.host_view import HostView
from app.core.grpc.results import RESULT_CHUNK_BYTES, capability_message, merged_capability, result_messages
from app.core.grpc.status_map import RpcFailure, failure_for, failure_for_state
from proto.gen.home_native.v1 import ml_service_pb2 as pb
from proto.gen.home_native.v1 import ml_service_pb2_grpc as pb_grpc
from services.api import (
    CapabilityInfo,
    InferenceFailed,
    InferenceRequest,
    InferenceResult,
    ServiceUnavailable,
    TaskSpec,
)

log = logging.getLogger(__name__)

Gate = Callable[[], str | None]  # None when the node serves; else why not (starting, stopping)


def _always_open() -> str | None:
    return None


class InferenceServicer(pb_grpc.InferenceServicer):
    def __init__(
        self,
        view: HostView,
        *,
        node_id: str = "",
        gate: Gate = _always_open,
        counters: RequestCounters | None = None,
        limits: PayloadLimits | None = None,
        result_chunk_bytes: int = RESULT_CHUNK_BYTES,
        forwarder: Forwarder | None = None,
    ) -> None:
        self.view = view
        self.node_id = node_id
        self.gate = gate
        self.counters = counters or RequestCounters()
        self.limits = limits or PayloadLimits()
        self.result_chunk_bytes = result_chunk_bytes
        self.forwarder = forwarder  # serves through peers what this node cannot (forwarding.py)

    # ------------------------------------------------------------------ capabilities

    def _extra(self) -> dict[str, str]:
        return {"node_id": self.node_id} if self.node_id else {}

    async def StreamCapabilities(
        self, request: empty_pb2.Empty, context: Any
    ) -> AsyncIterator[pb.Capability]:
        for cap in self._capabilities():
            if not cap.service_name:
                log.warning("skipping a capability without a service name: %r", cap)
                continue
            yield capability_message(cap, self._extra())

    async def GetCapabilities(self, request: empty_pb2.Empty, context: Any) -> pb.Capability:
        return merged_capability((c for c in self._capabilities() if c.service_name), self._extra())

    def _capabilities(self) -> list[CapabilityInfo]:
        local = self.view.capabilities()
        return self.forwarder.capabilities(local) if self.forwarder is not None else local

    async def Health(self, request: empty_pb2.Empty, context: Any) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    # ------------------------------------------------------------------ inference

    async def Infer(self, request_iterator: AsyncIterator[pb.InferRequest], context: Any) -> None:
        # the stream is read with context.read() (cheaper than iterating request_iterator)
        started = time.perf_counter()
        track = self.counters.track()
        failure: RpcFailure | None = None
        try:
            assembler = ChunkAssembler(self.limits)
            while True:
                message = await context.read()
                if message is grpc.aio.EOF or assembler.add(message):
                    break
            request = assembler.request()
            if self.forwarder is not None and await self.forwarder.forward(
                request, assembler.correlation_id, self.view, context
            ):
                track.finish(None)  # a peer answered
                return
            service, spec = self.view.resolve(request.task, request.meta.get("service") or None)
            track.attribute(service)
            reason = self.gate()
            if reason:
                raise ServiceUnavailable(reason)
            failure = failure_for_state(self.view.status(service))
            if failure is None:
                routed = InferenceRequest(
                    task=request.task,
                    payload=request.payload,
                    mime=request.mime,
                    meta={**request.meta, "service": service},
                )
                work = self._serve(routed, service, spec, assembler.correlation_id, started, context)
                remaining = context.time_remaining()
                if remaining is not None:
                    await asyncio.wait_for(work, timeout=max(remaining, 0.0))
                else:
                    await work
        except asyncio.CancelledError:
            track.finish("CANCELLED")
            raise
        except Exception as exc:  # every failure becomes a status code; the server keeps running
            failure = failure_for(exc)
        if failure is None:
            track.finish(None)
            return
        track.finish(failure.code.name)
        await context.abort(failure.code, failure.message)

    async def _serve(
        self,
        request: InferenceRequest,
        service: str,
        spec: TaskSpec,
        correlation_id: str,
        started: float,
        context: Any,
    ) -> None:
        results = self.view.run(request)
        final: InferenceResult | None = None
        try:
            async for result in results:
                meta = self._meta(service, spec, result, started)
                body = _json_bytes(result)
                for message in result_messages(
                    body,
                    schema=result.schema,
                    meta=meta,
                    correlation_id=correlation_id,
                    final=result.final,
                    chunk_bytes=self.result_chunk_bytes,
                ):
                    await context.write(message)
                if result.final:
                    final = result
                    break
        finally:
            aclose = getattr(results, "aclose", None)
            if aclose is not None:
                await aclose()
        if final is None:
            raise InferenceFailed(f"service {service} ended task {request.task!r} without a final result")

    def _meta(self, service: str, spec: TaskSpec, result: InferenceResult, started: float) -> dict[str, str]:
        status = self.view.status(service)
        cap = next((c for c in self.view.capabilities() if c.service_name == service), None)
        model_id = str(result.data.get("model_id") or "") if isinstance(result.data, Mapping) else ""
        if not model_id:
            model_ids = (status.model_ids if status else ()) or (cap.model_ids if cap else ())
            model_id = model_ids[0] if model_ids else ""
        runtime = (status.runtime if status else "") or (cap.runtime if cap else "")
        meta = {str(k): str(v) for k, v in result.meta.items()}
        meta.update(
            {
                "service": service,
                "task": spec.name,
                "model_id": model_id,
                "runtime": runtime,
                "node_id": self.node_id,
                "lat_ms": f"{(time.perf_counter() - started) * 1000:.3f}",
            }
        )
        return meta


def _json_bytes(result: InferenceResult) -> bytes:
    try:
        return result.to_json_bytes()
    except (TypeError, ValueError) as exc:
        raise InferenceFailed(f"result of schema {result.schema} is not JSON-serialisable: {exc}") from exc


def install_inference(servicer: InferenceServicer) -> Callable[[grpc.aio.Server], None]:
    def install(server: grpc.aio.Server) -> None:
        pb_grpc.add_InferenceServicer_to_server(servicer, server)

    return install
