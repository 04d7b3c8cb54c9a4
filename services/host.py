"""``ServiceHost``: the :class:`~services.api.ServiceHostProtocol` over real services.

Built from the config's :class:`~services.api.ServiceSpec` s and :class:`~services.api.HostSettings`:
each spec names a service in the ``registry`` (name → factory; default :func:`builtin_registry`),
which is constructed and its models registered with the :class:`~services.lifecycle.ModelManager`.
Nothing is loaded until a request needs it, or until :meth:`ServiceHost.start` for services
configured with ``preload``.

Routing: every task name and alias belongs to exactly one service (a clash is a
``ValueError`` at construction). A request may pick one of a service's models with
``meta["model"]`` (alias or model name); otherwise the service's default model serves it.

A service's status is its hold (``hold()``, e.g. DOWNLOADING) if any, else FAILED if the service
could not be built, else the state of its default model. Requests to a held or FAILED service
raise :class:`~services.api.ServiceUnavailable` with the reason; a request to a NOT_LOADED
service loads the model and waits for it. At most ``queue_size + max_concurrency_per_model``
requests per service are admitted at once; beyond that :class:`~services.api.Overloaded`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.api import (
    CapabilityInfo,
    HostSettings,
    InferenceFailed,
    InferenceRequest,
    InferenceResult,
    InvalidInput,
    Overloaded,
    ServiceError,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
    ServiceUnavailable,
    StatusListener,
    TaskNotFound,
    TaskSpec,
)
from services.lifecycle import ModelLease, ModelManager, ModelSlot
from services.service import HandlerKind, Service, ServiceFactory, Task, to_result

log = logging.getLogger(__name__)

_ALWAYS_ACCEPTED_MIMES = ("", "application/octet-stream")


def builtin_registry() -> dict[str, ServiceFactory]:
    """The services this package ships, by service name."""
    from services.clip.service import BioclipService, ClipService
    from services.face.service import FaceService
    from services.ocr.service import OcrService

    return {
        ClipService.name: ClipService,
        BioclipService.name: BioclipService,
        FaceService.name: FaceService,
        OcrService.name: OcrService,
    }


@dataclass(eq=False)
class _Hosted:
    spec: ServiceSpec
    service: Service | None
    error: str = ""
    tasks: dict[str, Task] = field(default_factory=dict)  # name or alias → task
    slots: dict[str, ModelSlot] = field(default_factory=dict)  # alias → slot
    default_alias: str = ""
    held: tuple[ServiceState, str] | None = None
    in_flight: int = 0
    last_status: ServiceStatus | None = None
    announced: bool = False  # its status changes reach the listeners (not while being set up)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def default_slot(self) -> ModelSlot | None:
        return self.slots.get(self.default_alias)


class ServiceHost:
    """Hosts the configured services; see the module docstring."""

    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        settings: HostSettings,
        *,
        registry: Mapping[str, ServiceFactory] | None = None,
    ) -> None:
        self.settings = settings
        self._registry = dict(builtin_registry() if registry is None else registry)
        self._manager = ModelManager(settings, on_change=self._slot_changed)
        self._listeners: list[StatusListener] = []
        self._services: dict[str, _Hosted] = {}
        self._routes: dict[str, tuple[str, Task]] = {}
        self._accepting = True
        self._started = False
        for spec in specs:
            if spec.name in self._services:
                raise ValueError(f"service {spec.name!r} is configured twice")
            self._services[spec.name] = hosted = self._build(spec)
            for slot in self._register(hosted):
                # blocking, but the node builds its host before the event loop runs
                self._manager.check(slot)
        for hosted in self._services.values():
            hosted.last_status = self._status(hosted)
            hosted.announced = True

    def _build(self, spec: ServiceSpec) -> _Hosted:
        """The service of ``spec`` with its routes; its models are registered by :meth:`_register`.
        A task name clash is a ``ValueError``."""
        factory = self._registry.get(spec.name)
        if factory is None:
            known = ", ".join(sorted(self._registry)) or "none"
            return _Hosted(spec, None, error=f"no service named {spec.name!r} is available (known: {known})")
        try:
            service = factory(spec, self.settings)
            tasks = list(service.tasks())
        except Exception as exc:
            log.exception("service %s could not be set up", spec.name)
            return _Hosted(spec, None, error=f"service setup failed: {exc}")
        hosted = _Hosted(spec, service)
        for task in tasks:
            for name in task.names:
                owner = self._routes.get(name)
                if owner is not None or name in hosted.tasks:
                    raise ValueError(
                        f"task {name!r} is offered by both {owner[0] if owner else spec.name!r} and "
                        f"{spec.name!r}; each task name belongs to exactly one service"
                    )
                hosted.tasks[name] = task
        for name, task in hosted.tasks.items():
            self._routes[name] = (spec.name, task)
        hosted.default_alias = spec.default_model or (spec.models[0].alias if spec.models else "")
        if not spec.models:
            hosted.error = "no model is configured for this service"
        return hosted

    def _register(self, hosted: _Hosted) -> list[ModelSlot]:
        """Give the manager a slot per configured model of a built service (none if it failed)."""
        if hosted.service is None:
            return []
        for model in hosted.spec.models:
            hosted.slots[model.alias] = self._manager.add(hosted.name, model, hosted.service)
        return list(hosted.slots.values())

    # ------------------------------------------------------------------ protocol: discovery

    def capabilities(self) -> list[CapabilityInfo]:
        return [self._capability(h) for h in self._services.values()]

    def _capability(self, hosted: _Hosted) -> CapabilityInfo:
        status = self._status(hosted)
        extra: dict[str, str] = {"state": status.state.value}
        if status.reason:
            extra["reason"] = status.reason
        service = hosted.service
        tasks: list[TaskSpec] = []
        precisions: list[str] = []
        if service is not None:
            extra.update(service.extra())
            tasks = [t.spec for name, t in hosted.tasks.items() if name == t.spec.name]
            precisions = list(dict.fromkeys(service.precision(s.spec) for s in hosted.slots.values()))
        return CapabilityInfo(
            service_name=hosted.name,
            model_ids=status.model_ids,
            runtime=status.runtime,
            max_concurrency=max(1, self.settings.max_concurrency_per_model),
            precisions=tuple(precisions),
            tasks=tuple(tasks),
            extra=extra,
        )

    def statuses(self) -> list[ServiceStatus]:
        return [self._status(h) for h in self._services.values()]

    def _status(self, hosted: _Hosted) -> ServiceStatus:
        service = hosted.service
        model_ids: tuple[str, ...] = ()
        runtime = ""
        if service is not None:
            model_ids = tuple(dict.fromkeys(s.model_id for s in hosted.slots.values()))
            slot = hosted.default_slot
            if slot is not None:  # the label the last check predicted: no probing here
                runtime = slot.runtime or slot.predicted_runtime or slot.spec.runtime
        if hosted.held is not None:
            state, reason = hosted.held
        elif hosted.error or service is None:
            state, reason = ServiceState.FAILED, hosted.error
        else:
            slot = hosted.default_slot
            assert slot is not None
            state, reason = slot.state, slot.reason
        return ServiceStatus(hosted.name, state, reason, model_ids, runtime)

    def resolve(self, task: str, service_hint: str | None = None) -> tuple[str, TaskSpec]:
        route = self._routes.get(task)
        if route is None:
            offered = ", ".join(sorted(self._routes)) or "none"
            hint = f" (meta service={service_hint!r})" if service_hint else ""
            raise TaskNotFound(
                f"no service on this node offers task {task!r}{hint}; tasks offered: {offered}"
            )
        return route[0], route[1].spec

    # ------------------------------------------------------------------ protocol: inference

    async def run(self, request: InferenceRequest) -> AsyncIterator[InferenceResult]:
        name, spec = self.resolve(request.task, request.meta.get("service"))
        hosted = self._services[name]
        task = hosted.tasks[request.task]
        self._admit(hosted)
        _check_mime(spec, request.mime)
        slot = self._pick_model(hosted, request)
        hosted.in_flight += 1
        try:
            async with self._manager.lease(slot, task.spec.name) as lease:
                async for result in self._invoke(task, request, lease):
                    yield result
        finally:
            hosted.in_flight -= 1

    async def infer(self, request: InferenceRequest) -> InferenceResult:
        final: InferenceResult | None = None
        async for result in self.run(request):
            final = result
        if final is None:
            raise InferenceFailed(f"task {request.task!r} produced no result")
        return final

    def _admit(self, hosted: _Hosted) -> None:
        if not self._accepting:
            raise ServiceUnavailable("the service host is stopping")
        if hosted.held is not None:
            state, reason = hosted.held
            raise ServiceUnavailable(
                f"service {hosted.name} is {state.value}" + (f": {reason}" if reason else "")
            )
        if hosted.service is None or hosted.error:
            raise ServiceUnavailable(f"service {hosted.name} is unavailable: {hosted.error}")
        limit = max(1, self.settings.queue_size) + max(1, self.settings.max_concurrency_per_model)
        if hosted.in_flight >= limit:
            raise Overloaded(
                f"service {hosted.name} has {hosted.in_flight} requests in progress (limit {limit}); "
                "try again later"
            )

    def _pick_model(self, hosted: _Hosted, request: InferenceRequest) -> ModelSlot:
        wanted = (request.meta.get("model") or "").strip()
        if not wanted:
            slot = hosted.default_slot
            assert slot is not None
            return slot
        for slot in hosted.slots.values():
            if wanted in (slot.alias, slot.spec.model, slot.model_id):
                return slot
        offered = ", ".join(hosted.slots)
        raise InvalidInput(
            f"meta 'model' {wanted!r} is not a model of service {hosted.name}; models: {offered}"
        )

    async def _invoke(
        self, task: Task, request: InferenceRequest, lease: ModelLease
    ) -> AsyncIterator[InferenceResult]:
        spec = task.spec
        try:
            if task.kind is HandlerKind.FUNCTION:
                yield to_result(spec, await lease.run(task.handler, request, lease))
            elif task.kind is HandlerKind.COROUTINE:
                yield to_result(spec, await task.handler(request, lease))
            elif task.kind is HandlerKind.ASYNC_GENERATOR:
                async for result in _last_is_final(spec, task.handler(request, lease)):
                    yield result
            else:
                async for result in _last_is_final(spec, _step_sync_generator(task, request, lease)):
                    yield result
        except ServiceError:
            raise
        except Exception as exc:
            log.exception("task %s failed", spec.name)
            raise InferenceFailed(f"task {spec.name} failed: {type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ protocol: lifecycle

    async def start(self) -> None:
        self._accepting = True
        if self._started:
            return
        self._started = True
        for hosted in self._services.values():
            slot = hosted.default_slot
            if hosted.spec.preload and slot is not None and hosted.service is not None:
                self._manager.tasks.spawn(f"preload:{slot.key}", self._preload(slot))

    async def _preload(self, slot: ModelSlot) -> None:
        try:
            await self._manager.ensure_loaded(slot)
        except ServiceUnavailable as exc:
            log.warning("preloading %s failed: %s", slot.key, exc)

    async def stop(self, grace_s: float = 10.0) -> None:
        if not self._accepting and not self._started:
            return
        self._accepting = False
        self._started = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while any(h.in_flight for h in self._services.values()) and loop.time() < deadline:
            await asyncio.sleep(0.02)  # let requests in progress finish (bounded)
        busy = {h.name: h.in_flight for h in self._services.values() if h.in_flight}
        if busy:
            log.warning("stopping with requests still in progress: %s", busy)
        await self._manager.close()

    def hold(self, service: str, state: ServiceState | None, reason: str = "") -> None:
        hosted = self._services.get(service)
        if hosted is None:
            raise TaskNotFound(f"no service named {service!r} on this host")
        hosted.held = None if state is None else (state, reason)
        if state is None and hosted.slots and _loop_running():
            # its files may just have been downloaded: announced once the checks are done
            checks = [self._manager.check_soon(slot) for slot in hosted.slots.values()]
            self._manager.tasks.spawn(f"announce:{hosted.name}", self._announce_after(hosted, checks))
            return
        if state is None:  # no loop yet (a host set up before it runs): nothing to block
            for slot in hosted.slots.values():
                self._manager.check(slot)
        self._notify(hosted)

    async def _announce_after(self, hosted: _Hosted, checks: list[asyncio.Task[None]]) -> None:
        await asyncio.wait(checks)
        self._notify(hosted)

    def add_status_listener(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    async def reconfigure(self, specs: Sequence[ServiceSpec]) -> None:
        """Host exactly ``specs`` from now on; unchanged services keep their loaded models.

        Removed (or changed) services stop taking requests at once, are reported once as
        DISABLED, and their models unload when their last request finishes."""
        wanted = {spec.name: spec for spec in specs}
        if len(wanted) != len(specs):
            raise ValueError("a service is configured twice")
        kept = {n: h for n, h in self._services.items() if n in wanted and wanted[n] == h.spec}
        gone = [h for n, h in self._services.items() if n not in kept]
        routes = dict(self._routes)
        for hosted in gone:
            for name in hosted.tasks:
                self._routes.pop(name, None)
        try:
            added = {spec.name: self._build(spec) for spec in specs if spec.name not in kept}
        except ValueError:
            self._routes = routes  # a task clash: keep serving what was there
            raise
        new_slots = [slot for hosted in added.values() for slot in self._register(hosted)]
        self._services = {spec.name: kept.get(spec.name) or added[spec.name] for spec in specs}
        if new_slots:  # off the loop; a request meanwhile waits for its model's check
            await asyncio.wait([self._manager.check_soon(slot) for slot in new_slots])
        for hosted in gone:
            for slot in hosted.slots.values():
                await self._manager.remove(slot)
            if hosted.name not in self._services:
                disabled = ServiceStatus(hosted.name, ServiceState.DISABLED, "not enabled in the config")
                for listener in list(self._listeners):
                    listener(disabled)
        for hosted in added.values():
            hosted.last_status = None
            hosted.announced = True
            self._notify(hosted)
            slot = hosted.default_slot
            if self._started and hosted.spec.preload and slot is not None and hosted.service is not None:
                self._manager.tasks.spawn(f"preload:{slot.key}", self._preload(slot))

    # ------------------------------------------------------------------ internals

    def _slot_changed(self, slot: ModelSlot) -> None:
        hosted = self._services.get(slot.service_name)
        if hosted is not None and hosted.announced and hosted.slots.get(slot.alias) is slot:
            self._notify(hosted)

    def _notify(self, hosted: _Hosted) -> None:
        status = self._status(hosted)
        if status == hosted.last_status:
            return
        hosted.last_status = status
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:
                log.exception("status listener failed")

    # for tests, benchmarks and the node's diagnostics
    def model_slots(self, service: str) -> dict[str, ModelSlot]:
        return dict(self._services[service].slots)

    @property
    def background_tasks(self) -> list[str]:
        return self._manager.tasks.names


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _check_mime(spec: TaskSpec, mime: str) -> None:
    base = mime.split(";", 1)[0].strip().lower()
    if base in _ALWAYS_ACCEPTED_MIMES or base in spec.input_mimes:
        return
    if base.startswith("image/") and any(m.startswith("image/") for m in spec.input_mimes):
        return  # the decoder reads the real format from the bytes and names what it accepts
    raise InvalidInput(
        f"task {spec.name} does not take {mime!r}; accepted: {', '.join(spec.input_mimes) or 'none'}"
    )


async def _step_sync_generator(
    task: Task, request: InferenceRequest, lease: ModelLease
) -> AsyncIterator[Any]:
    generator = task.handler(request, lease)  # calling a generator function runs none of its code
    done = object()
    try:
        while True:
            item = await lease.run(next, generator, done)
            if item is done:
                return
            yield item
    finally:
        await lease.offload(generator.close)


async def _last_is_final(spec: TaskSpec, items: AsyncIterator[Any]) -> AsyncIterator[InferenceResult]:
    """Every item but the last as a partial result, the last one as final."""
    previous: Any = None
    have = False
    async for item in items:
        if have:
            yield to_result(spec, previous, final=False)
        previous, have = item, True
    if not have:
        raise InferenceFailed(f"task {spec.name} produced no result")
    yield to_result(spec, previous, final=True)
