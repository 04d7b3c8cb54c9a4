"""The contract between inference services and whatever hosts them.

This module is the boundary that the gRPC hub, the node API, the CLI and the cluster router code
against. It holds only plain, immutable data types and the error taxonomy; no transport, no Qt.

* A service declares :class:`TaskSpec` s; the host derives :class:`CapabilityInfo` from them.
* A request is an :class:`InferenceRequest`; a result is an :class:`InferenceResult` whose
  ``data`` is the JSON object of ``schema`` (``embedding_v1``, ``labels_v1``, ``face_v1``,
  ``ocr_v1`` ...).
* Failures are :class:`ServiceError` subclasses. The hub maps each ``kind`` to one gRPC status
  code in one place (``app.core`` owns that table); services never know about status codes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

PROTOCOL_VERSION = "1.0.0"


def result_mime(schema: str) -> str:
    """The exact ``result_mime`` the Go SDK expects: ``application/json;schema=<schema>``."""
    return f"application/json;schema={schema}"


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ErrorKind(str, Enum):
    """What went wrong, independent of transport. The hub maps each kind to a status code."""

    INVALID_INPUT = "invalid_input"  # -> INVALID_ARGUMENT
    NOT_FOUND = "not_found"  # -> NOT_FOUND (unknown task / service / model)
    UNAVAILABLE = "unavailable"  # -> UNAVAILABLE (downloading, loading, stopping)
    OVERLOADED = "overloaded"  # -> RESOURCE_EXHAUSTED (bounded queue full)
    DEADLINE = "deadline"  # -> DEADLINE_EXCEEDED
    INTERNAL = "internal"  # -> INTERNAL (a bug or a broken model file)


class ServiceError(Exception):
    """Base of every error a service or the host raises on purpose."""

    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidInput(ServiceError):
    kind = ErrorKind.INVALID_INPUT


class TaskNotFound(ServiceError):
    kind = ErrorKind.NOT_FOUND


class ServiceUnavailable(ServiceError):
    kind = ErrorKind.UNAVAILABLE


class Overloaded(ServiceError):
    kind = ErrorKind.OVERLOADED


class DeadlineExceeded(ServiceError):
    kind = ErrorKind.DEADLINE


class InferenceFailed(ServiceError):
    kind = ErrorKind.INTERNAL


# --------------------------------------------------------------------------------------------
# Declarations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """One task a service offers, as declared by the service.

    ``aliases`` are legacy names answered by the same handler (``clip_text_embed`` for
    ``semantic_text_embed``); the hub advertises each alias as an extra IOTask.
    """

    name: str
    input_mimes: tuple[str, ...]
    output_schema: str
    limits: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    batching_supported: bool = False
    preprocess_id: str = ""
    description: str = ""

    @property
    def output_mime(self) -> str:
        return result_mime(self.output_schema)


@dataclass(frozen=True)
class CapabilityInfo:
    """What one service on this node offers; mirrors ``home_native.v1.Capability``."""

    service_name: str
    model_ids: tuple[str, ...]
    runtime: str  # e.g. "onnxrt-cpu", "onnxrt-coreml", "torch-cuda", "rknn-rk3588"
    max_concurrency: int
    precisions: tuple[str, ...]
    tasks: tuple[TaskSpec, ...]
    extra: Mapping[str, str] = field(default_factory=dict)
    protocol_version: str = PROTOCOL_VERSION


class ServiceState(str, Enum):
    """Lifecycle state of a service as shown to the node API, CLI and GUI."""

    DISABLED = "disabled"
    DOWNLOADING = "downloading"  # its model files are being fetched
    NOT_LOADED = "not_loaded"  # files present, model not in memory (lazy)
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"  # with a reason; e.g. RKNN asked for but unavailable here


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: ServiceState
    reason: str = ""
    model_ids: tuple[str, ...] = ()
    runtime: str = ""


# --------------------------------------------------------------------------------------------
# Requests and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InferenceRequest:
    task: str
    payload: bytes
    mime: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InferenceResult:
    """A result object of ``schema``; ``final`` is False only for streamed partial results."""

    schema: str
    data: Mapping[str, Any]
    meta: Mapping[str, str] = field(default_factory=dict)
    final: bool = True

    @property
    def mime(self) -> str:
        return result_mime(self.schema)

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --------------------------------------------------------------------------------------------
# What the host is given (config-independent; app.core maps its config onto these)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """One configured model of a service, already resolved to a folder on disk."""

    alias: str
    model: str  # repository / folder name, e.g. "MobileCLIP2-S2"
    runtime: str  # "onnx" | "torch" | "rknn"
    path: Path  # <cache_dir>/models/<model>
    precision: str | None = None  # "fp32", "fp16", ...; None = best available
    rknn_device: str | None = None  # "rk3588" ...
    dataset: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """One configured service: which built-in service, which models, its environment."""

    name: str  # "clip" | "bioclip" | "face" | "ocr"
    models: tuple[ModelSpec, ...]
    default_model: str | None = None  # alias
    env: Mapping[str, str] = field(default_factory=dict)
    preload: bool = False


@dataclass(frozen=True)
class HostSettings:
    """Node-wide knobs of the service host (from the config's node section)."""

    model_idle_ttl_s: float = 600.0
    max_loaded_models: int = 4
    max_concurrency_per_model: int = 2
    queue_size: int = 64  # requests waiting per service beyond which OVERLOADED is raised
    batch_max_size: int = 8
    batch_max_wait_ms: float = 5.0
    execution_providers: tuple[str, ...] = ()  # onnxruntime override; empty = automatic
    intra_op_threads: int = 0  # 0 = automatic
    spin_wait: bool | None = None  # onnxruntime spin-waiting; None = auto (within runs only on <= 4 CPUs)


StatusListener = Callable[[ServiceStatus], None]


@runtime_checkable
class ServiceHostProtocol(Protocol):
    """What the hub (gRPC servicer, node API, cluster router) needs from the service host.

    Implemented by ``services.host.ServiceHost``; tests may use ``tests.support.fake_host``.
    All methods are called on the event loop thread; none of them blocks it.
    """

    def capabilities(self) -> list[CapabilityInfo]:
        """One entry per hosted service (also while not ready), in config order."""
        ...

    def statuses(self) -> list[ServiceStatus]: ...

    def resolve(self, task: str, service_hint: str | None = None) -> tuple[str, TaskSpec]:
        """``(service name, task spec)`` for ``task`` (a name or alias). ``service_hint`` (the
        SDK's ``meta.service``) only breaks ties. Raises :class:`TaskNotFound`."""
        ...

    def run(self, request: InferenceRequest) -> AsyncIterator[InferenceResult]:
        """Results of one request: zero or more partial results, then exactly one final one.
        Raises :class:`ServiceError` subclasses (ServiceUnavailable while downloading/loading
        failed, Overloaded when the bounded queue is full, InvalidInput ...)."""
        ...

    async def infer(self, request: InferenceRequest) -> InferenceResult:
        """The final result of :meth:`run`."""
        ...

    async def start(self) -> None:
        """Begin hosting: preload the services configured with ``preload``. Idempotent."""
        ...

    async def stop(self) -> None:
        """Refuse new requests (ServiceUnavailable), unload every model. Idempotent."""
        ...

    def hold(self, service: str, state: ServiceState | None, reason: str = "") -> None:
        """Pin ``service`` to ``state`` (e.g. DOWNLOADING while its files are fetched, FAILED when
        a download failed); ``None`` releases the hold. Requests to a held service raise
        :class:`ServiceUnavailable` with the reason."""
        ...

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call ``listener(status)`` on the loop thread whenever a service's status changes."""
        ...

    async def reconfigure(self, specs: Sequence[ServiceSpec]) -> None:
        """Host exactly ``specs`` from now on (the node saved a changed config: a service was
        enabled or disabled, a model changed). Services no longer listed stop and are reported
        once with state DISABLED; new ones start as they would at :meth:`start`; unchanged ones
        keep running. Idempotent."""
        ...
