"""The ``home_native.v1.Inference`` servicer: every hosted service behind one port.

* StreamCapabilities: one Capability per service of the listener's view, then the stream ends;
  GetCapabilities: one merged Capability. Both answer UNAVAILABLE while the node cannot serve
  anything yet (starting, stopping, every service downloading/loading), so the Go SDK keeps
  the node pending and retries (status_map.capabilities_failure).
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
from app.core.grpc.results import (
    RESULT_CHUNK_BYTES,
    capability_message,
    merged_capability,
    result_json,
    result_messages,
)
from app.core.grpc.status_map import (
    RpcFailure,
    capabilities_failure,
    failure_after_unavailable,
    failure_before_host,
    failure_for,
)
from proto.gen.home_native.v1 import ml_service_pb2 as pb
from proto.gen.home_native.v1 import ml_service_pb2_grpc as pb_grpc
from services.api import (
    CapabilityInfo,
    ErrorKind,
    InferenceFailed,
    InferenceRequest,
    InferenceResult,
    InvalidInput,
    ServiceError,
    ServiceStatus,
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
        caps = await self._capabilities_or_abort(context)
        for cap in caps:
            yield capability_message(cap, self._extra())

    async def GetCapabilities(self, request: empty_pb2.Empty, context: Any) -> pb.Capability:
        return merged_capability(await self._capabilities_or_abort(context), self._extra())

    async def _capabilities_or_abort(self, context: Any) -> list[CapabilityInfo]:
        """This listener's capabilities (plus the cluster's when the forwarder advertises them);
        UNAVAILABLE while nothing here can serve yet and no peer stands in (the SDK retries)."""
        local = self.view.capabilities()
        caps = self.forwarder.capabilities(local) if self.forwarder is not None else local
        statuses = self.view.statuses()
        if self.forwarder is not None:  # a service a peer stands in for can serve through it
            statuses = [s for s in statuses if not self.forwarder.stands_in(s.name)]
        failure = capabilities_failure(statuses, self.gate())
        if failure is not None and len(caps) == len(local):  # peers' own services stand in too
            await context.abort(failure.code, failure.message)
        named = []
        for cap in caps:
            if not cap.service_name:
                log.warning("skipping a capability without a service name: %r", cap)
                continue
            named.append(cap)
        return named

    async def Health(self, request: empty_pb2.Empty, context: Any) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    # ------------------------------------------------------------------ inference

    async def Infer(self, request_iterator: AsyncIterator[pb.InferRequest], context: Any) -> None:
        # the stream is read with context.read() (cheaper than iterating request_iterator)
        started = time.perf_counter()
        track = self.counters.track()
        failure: RpcFailure | None = None
        service: str | None = None
        gate_open = False
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
            gate_open = True
            status = self.view.status(service)
            failure = failure_before_host(status)
            if failure is None:
                _refuse_tensor_fast_path(spec, request.meta)
                routed = InferenceRequest(
                    task=request.task,
                    payload=request.payload,
                    mime=request.mime,
                    meta={**request.meta, "service": service},
                )
                work = self._serve(routed, service, spec, status, assembler.correlation_id, started, context)
                await work  # grpc.aio cancels this handler when the deadline passes
        except asyncio.CancelledError:  # the client cancelled, or its deadline passed
            remaining = context.time_remaining()
            track.finish("DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED")
            raise
        except ServiceError as exc:
            if exc.kind is ErrorKind.UNAVAILABLE and gate_open and service is not None:
                failure = failure_after_unavailable(exc, self.view.status(service))
            else:
                failure = failure_for(exc)
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
        status: ServiceStatus | None,
        correlation_id: str,
        started: float,
        context: Any,
    ) -> None:
        results = self.view.run(request)
        final: InferenceResult | None = None
        try:
            async for result in results:
                if result.final:
                    final = result
                    break
                await self._write(result, service, spec, status, correlation_id, started, context)
        finally:
            # The host's work ends before the final write: its model lease is released at once,
            # so the client's next request never finds this one still holding the model (the
            # batcher would wait batch_max_wait_ms for a batch partner that never comes).
            aclose = getattr(results, "aclose", None)
            if aclose is not None:
                await aclose()
        if final is None:
            raise InferenceFailed(f"service {service} ended task {request.task!r} without a final result")
        await self._write(final, service, spec, status, correlation_id, started, context)

    async def _write(
        self,
        result: InferenceResult,
        service: str,
        spec: TaskSpec,
        status: ServiceStatus | None,
        correlation_id: str,
        started: float,
        context: Any,
    ) -> None:
        messages = result_messages(
            result_json(result),
            schema=result.schema,
            meta=self._meta(service, spec, status, result, started),
            correlation_id=correlation_id,
            final=result.final,
            chunk_bytes=self.result_chunk_bytes,
        )
        for message in messages:
            await context.write(message)

    def _meta(
        self,
        service: str,
        spec: TaskSpec,
        status: ServiceStatus | None,
        result: InferenceResult,
        started: float,
    ) -> dict[str, str]:
        """Response meta: the result's own meta, then service, task, model_id, runtime, node_id
        and lat_ms. The status was read before the work; the runtime is read again after it
        (a first request loads the model and only then knows its runtime label)."""
        data = result.data
        model_id = str(data.get("model_id") or "") if isinstance(data, Mapping) else ""
        after = self.view.status(service) if status is None or not status.runtime else status
        if not model_id and after is not None and after.model_ids:
            model_id = after.model_ids[0]
        meta = {str(k): str(v) for k, v in result.meta.items()} if result.meta else {}
        meta["service"] = service
        meta["task"] = spec.name
        meta["model_id"] = model_id
        meta["runtime"] = after.runtime if after is not None else ""
        meta["node_id"] = self.node_id
        meta["lat_ms"] = f"{(time.perf_counter() - started) * 1000:.3f}"
        return meta


TENSOR_KIND_KEY = "lumen.input.kind"


def _refuse_tensor_fast_path(spec: TaskSpec, meta: Mapping[str, str]) -> None:
    """The SDK's tensor fast path (``lumen.input.kind=tensor``: a preprocessed NCHW tensor as
    application/octet-stream) is only for tasks that advertise a ``tensor_preprocess_id``."""
    if spec.preprocess_id or str(meta.get(TENSOR_KIND_KEY, "")).strip().lower() != "tensor":
        return
    raise InvalidInput(
        f"task {spec.name} on this node does not take the SDK's tensor fast path "
        f"({TENSOR_KIND_KEY}=tensor; its IOTask has no tensor_preprocess_id); send the encoded image "
        f"instead ({', '.join(m for m in spec.input_mimes if m.startswith('image/')) or 'see input_mimes'})"
    )


def install_inference(servicer: InferenceServicer) -> Callable[[grpc.aio.Server], None]:
    def install(server: grpc.aio.Server) -> None:
        pb_grpc.add_InferenceServicer_to_server(servicer, server)

    return install
