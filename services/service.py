"""The service framework: what a service declares and what the host does with it.

A service (``clip``, ``bioclip``, ``face``, ``ocr`` ...) is a :class:`Service` subclass that

* declares its tasks: :meth:`Service.tasks` returns :class:`Task` s — a
  :class:`~services.api.TaskSpec` (name, input mimes, output schema, limits, legacy aliases)
  plus a handler;
* says, cheaply, whether a configured model can be loaded at all (:meth:`Service.check`: the
  files are there, the runtime can run here), raising :class:`ModelUnavailable` with the reason;
* loads a model (:meth:`Service.load`, blocking; the host runs it in an executor) into a
  :class:`LoadedModel` — anything with a ``runtime`` label and a ``close()``.

A handler is called as ``handler(request, model)`` with the
:class:`~services.api.InferenceRequest` and a :class:`~services.lifecycle.ModelLease` on the
loaded model (lazy-loaded by the host). Its kind is detected from the function itself:

* plain function → runs in the inference executor (it may block), one result;
* coroutine function → runs on the loop; offload blocking work with ``await model.run(...)``
  (inference, counted against the model's concurrency limit), ``await model.batched(...)``
  (dynamic batching) or ``await model.offload(...)`` (decoding / preprocessing);
* generator / async generator → streamed results: every yielded item but the last is a
  partial result (``final=False``); the last one is final. Sync generators step in the executor.

A handler returns (or yields) an :class:`~services.api.InferenceResult`, or just the JSON
object (a mapping), which is wrapped with the task's output schema.
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from services.api import HostSettings, InferenceRequest, InferenceResult, ModelSpec, ServiceSpec, TaskSpec

if TYPE_CHECKING:
    from services.lifecycle import ModelLease
    from services.runtimes import RuntimeOptions

Handler = Callable[["InferenceRequest", "ModelLease"], Any]


class HandlerKind(str, Enum):
    FUNCTION = "function"
    COROUTINE = "coroutine"
    GENERATOR = "generator"
    ASYNC_GENERATOR = "async_generator"

    @property
    def streams(self) -> bool:
        return self in (HandlerKind.GENERATOR, HandlerKind.ASYNC_GENERATOR)


def handler_kind(handler: Callable[..., Any]) -> HandlerKind:
    """What kind of callable ``handler`` is (bound methods and ``functools.partial`` unwrapped)."""
    target: Any = handler
    while isinstance(target, functools.partial):
        target = target.func
    target = inspect.unwrap(getattr(target, "__func__", target))
    if not inspect.isfunction(target) and callable(target):  # an object with __call__
        target = inspect.unwrap(type(target).__call__)
    if inspect.isasyncgenfunction(target):
        return HandlerKind.ASYNC_GENERATOR
    if inspect.iscoroutinefunction(target):
        return HandlerKind.COROUTINE
    if inspect.isgeneratorfunction(target):
        return HandlerKind.GENERATOR
    return HandlerKind.FUNCTION


@dataclass(frozen=True)
class Task:
    """One declared task: its spec and the handler that serves it (and its aliases)."""

    spec: TaskSpec
    handler: Handler
    kind: HandlerKind = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", handler_kind(self.handler))

    @property
    def names(self) -> tuple[str, ...]:
        return (self.spec.name, *self.spec.aliases)


def to_result(spec: TaskSpec, value: Any, *, final: bool = True) -> InferenceResult:
    """A handler's return value as an :class:`InferenceResult` of the task's schema."""
    if isinstance(value, InferenceResult):
        return value if value.final == final else InferenceResult(value.schema, value.data, value.meta, final)
    if isinstance(value, Mapping):
        return InferenceResult(spec.output_schema, dict(value), final=final)
    raise TypeError(
        f"handler of {spec.name!r} returned {type(value).__name__}; return a mapping or an InferenceResult"
    )


class ModelUnavailable(Exception):
    """A configured model cannot be loaded: files missing, runtime unusable here ...

    ``retry`` says whether checking again later may succeed (files may still arrive); a
    runtime that cannot run on this machine is permanent."""

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@runtime_checkable
class LoadedModel(Protocol):
    """What :meth:`Service.load` returns. ``runtime`` is the capability label (``onnxrt-cpu``)."""

    runtime: str

    def close(self) -> None: ...


class Service(ABC):
    """Base class of a hosted service; see the module docstring for the contract.

    Constructed once per configured service with its :class:`ServiceSpec` and the host's
    :class:`HostSettings`. The constructor must be cheap (no model loading, small file reads
    at most); a constructor error makes the service FAILED with the error as reason.
    """

    name: ClassVar[str] = ""

    def __init__(self, spec: ServiceSpec, settings: HostSettings) -> None:
        self.spec = spec
        self.settings = settings

    @abstractmethod
    def tasks(self) -> Sequence[Task]:
        """The tasks this service offers (may depend on its configuration)."""

    @abstractmethod
    def check(self, model: ModelSpec) -> None:
        """Raise :class:`ModelUnavailable` if ``model`` cannot be loaded. Cheap (stat calls)."""

    @abstractmethod
    def load(self, model: ModelSpec) -> LoadedModel:
        """Load ``model`` into memory. Blocking: runs in an executor."""

    def default_model(self) -> ModelSpec | None:
        """The model that serves requests naming none: the spec's ``default_model`` alias, else
        its first model."""
        by_alias = {m.alias: m for m in self.spec.models}
        return by_alias.get(self.spec.default_model or "") or (
            self.spec.models[0] if self.spec.models else None
        )

    def model_id(self, model: ModelSpec) -> str:
        """The ``model_id`` results and capabilities carry for ``model``."""
        return model.model

    def precision(self, model: ModelSpec) -> str:
        return model.precision or "fp32"

    def runtime_label(self, model: ModelSpec) -> str:
        """The runtime label before the model is loaded (a prediction; the loaded model's
        ``runtime`` replaces it)."""
        from services.runtimes import predicted_runtime_label

        return predicted_runtime_label(model.runtime, self.runtime_options(model))

    def runtime_options(self, model: ModelSpec) -> RuntimeOptions:
        """:class:`~services.runtimes.RuntimeOptions` for ``model`` from the host settings, the
        model spec and the service env (``TORCH_DEVICE``, ``RKNN_CORE_MASK``)."""
        from services.runtimes import RuntimeOptions

        env = self.spec.env
        return RuntimeOptions(
            execution_providers=tuple(self.settings.execution_providers),
            intra_op_threads=self.settings.intra_op_threads,
            spin_wait=self.settings.spin_wait,
            torch_device=env.get("TORCH_DEVICE") or None,
            rknn_device=model.rknn_device,
            rknn_core_mask=env.get("RKNN_CORE_MASK", "auto") or "auto",
        )

    def extra(self) -> dict[str, str]:
        """Extra capability entries (``Capability.extra``)."""
        return {}


ServiceFactory = Callable[[ServiceSpec, HostSettings], Service]
