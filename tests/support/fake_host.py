"""A service host double for tests of the hub, node API and cluster (no models involved).

It implements :class:`services.api.ServiceHostProtocol` faithfully enough to exercise routing,
errors, states and concurrency: each fake service answers its tasks with a deterministic
result computed from the payload (so a test can tell which node/service answered), can be
held in any state, can be slowed down, and has a bounded queue.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from services.api import (
    CapabilityInfo,
    InferenceRequest,
    InferenceResult,
    InvalidInput,
    Overloaded,
    ServiceSpec,
    ServiceState,
    ServiceStatus,
    ServiceUnavailable,
    StatusListener,
    TaskNotFound,
    TaskSpec,
)

TEXT = ("text/plain",)
IMAGES = ("image/webp", "image/jpeg", "image/png")


def looks_like_image(payload: bytes) -> bool:
    """True for the signatures of WebP, JPEG, PNG and AVIF (what a real decoder would accept)."""
    return (
        (payload[:4] == b"RIFF" and payload[8:12] == b"WEBP")
        or payload[:3] == b"\xff\xd8\xff"
        or payload[:8] == b"\x89PNG\r\n\x1a\n"
        or (payload[4:8] == b"ftyp" and payload[8:12] in (b"avif", b"avis"))
    )


# The tasks each built-in service offers, as the real services declare them.
DEFAULT_TASKS: dict[str, tuple[TaskSpec, ...]] = {
    "clip": (
        TaskSpec("semantic_text_embed", TEXT, "embedding_v1", aliases=("clip_text_embed",)),
        TaskSpec("semantic_image_embed", IMAGES, "embedding_v1", aliases=("clip_image_embed",)),
        TaskSpec("clip_classify", IMAGES, "labels_v1"),
    ),
    "bioclip": (TaskSpec("bioclip_classify", IMAGES, "labels_v1"),),
    "face": (
        TaskSpec("face_recognition", IMAGES, "face_v1", aliases=("face_detect_and_embed",)),
        TaskSpec("face_detect", IMAGES, "face_v1"),
    ),
    "ocr": (TaskSpec("ocr", IMAGES, "ocr_v1"),),
}


@dataclass
class FakeService:
    name: str
    tasks: tuple[TaskSpec, ...]
    model_id: str = ""
    state: ServiceState = ServiceState.READY
    reason: str = ""
    delay_s: float = 0.0
    max_queue: int = 64
    in_flight: int = 0
    partials: int = 0  # partial results streamed before the final one
    cancelled: int = 0  # requests whose work was cancelled (client cancel, deadline)
    calls: list[InferenceRequest] = field(default_factory=list)


class FakeHost:
    """``FakeHost(["clip", "ocr"], tag="B")``: results carry ``tag`` so tests see who answered."""

    def __init__(
        self,
        services: Sequence[str] = ("clip",),
        *,
        tag: str = "fake",
        dim: int = 8,
        check_images: bool = False,
    ) -> None:
        self.tag = tag
        self.dim = dim
        self.check_images = check_images  # refuse image payloads without a WebP/JPEG/PNG/AVIF signature
        self.services: dict[str, FakeService] = {
            name: FakeService(name, DEFAULT_TASKS[name], model_id=f"{name}-fake-{tag}") for name in services
        }
        self._listeners: list[StatusListener] = []
        self._holds: dict[str, tuple[ServiceState, str]] = {}
        self.started = False

    # ------------------------------------------------------------------ protocol

    def capabilities(self) -> list[CapabilityInfo]:
        return [
            CapabilityInfo(
                service_name=s.name,
                model_ids=(s.model_id,),
                runtime="fake-cpu",
                max_concurrency=2,
                precisions=("fp32",),
                tasks=s.tasks,
            )
            for s in self.services.values()
        ]

    def statuses(self) -> list[ServiceStatus]:
        return [self._status(s) for s in self.services.values()]

    def resolve(self, task: str, service_hint: str | None = None) -> tuple[str, TaskSpec]:
        matches = [
            (s.name, spec)
            for s in self.services.values()
            for spec in s.tasks
            if task in (spec.name, *spec.aliases)
        ]
        if not matches:
            raise TaskNotFound(f"no service on this node offers task {task!r}")
        for name, spec in matches:
            if name == service_hint:
                return name, spec
        return matches[0]

    async def run(self, request: InferenceRequest) -> AsyncIterator[InferenceResult]:
        name, spec = self.resolve(request.task, request.meta.get("service"))
        service = self.services[name]
        state, reason = self._holds.get(name, (service.state, service.reason))
        if state is not ServiceState.READY:
            raise ServiceUnavailable(f"service {name} is {state.value}" + (f": {reason}" if reason else ""))
        if service.in_flight >= service.max_queue:
            raise Overloaded(f"service {name} has {service.in_flight} requests queued; try again later")
        if not request.payload:
            raise InvalidInput("empty payload")
        if self.check_images and spec.input_mimes != TEXT and not looks_like_image(request.payload):
            raise InvalidInput(
                f"the payload is not a decodable image; {spec.name} accepts {', '.join(IMAGES)}"
            )
        service.calls.append(request)
        service.in_flight += 1
        try:
            if service.delay_s:
                await asyncio.sleep(service.delay_s)
            result = self._result(spec, service, request.payload)
            for index in range(service.partials):
                yield InferenceResult(spec.output_schema, {**result, "partial": index}, final=False)
            yield InferenceResult(spec.output_schema, result)
        except asyncio.CancelledError:
            service.cancelled += 1
            raise
        finally:
            service.in_flight -= 1

    async def infer(self, request: InferenceRequest) -> InferenceResult:
        final: InferenceResult | None = None
        async for result in self.run(request):
            final = result
        assert final is not None
        return final

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    def hold(self, service: str, state: ServiceState | None, reason: str = "") -> None:
        if state is None:
            self._holds.pop(service, None)
        else:
            self._holds[service] = (state, reason)
        self._notify(self.services[service])

    def add_status_listener(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    async def reconfigure(self, specs: Sequence[ServiceSpec]) -> None:
        wanted = [spec.name for spec in specs]
        removed = [name for name in self.services if name not in wanted]
        services = {
            name: self.services.get(name)
            or FakeService(name, DEFAULT_TASKS[name], model_id=f"{name}-fake-{self.tag}")
            for name in wanted
        }
        added = [name for name in wanted if name not in self.services]
        self.services = services
        for name in removed:
            self._holds.pop(name, None)
            status = ServiceStatus(name, ServiceState.DISABLED, "disabled in the config")
            for listener in self._listeners:
                listener(status)
        for name in added:
            self._notify(self.services[name])

    # ------------------------------------------------------------------ test controls

    def set_state(self, service: str, state: ServiceState, reason: str = "") -> None:
        self.services[service].state = state
        self.services[service].reason = reason
        self._notify(self.services[service])

    # ------------------------------------------------------------------ internals

    def _status(self, service: FakeService) -> ServiceStatus:
        state, reason = self._holds.get(service.name, (service.state, service.reason))
        return ServiceStatus(service.name, state, reason, (service.model_id,), "fake-cpu")

    def _notify(self, service: FakeService) -> None:
        for listener in self._listeners:
            listener(self._status(service))

    def _result(self, spec: TaskSpec, service: FakeService, payload: bytes) -> dict[str, object]:
        digest = hashlib.sha256(payload).digest()
        if spec.output_schema == "embedding_v1":
            raw = [digest[i % len(digest)] - 127.5 for i in range(self.dim)]
            norm = sum(v * v for v in raw) ** 0.5 or 1.0
            return {
                "vector": [v / norm for v in raw],
                "dim": self.dim,
                "model_id": service.model_id,
                "node": self.tag,
            }
        if spec.output_schema == "labels_v1":
            return {"labels": [{"label": f"label-{digest[0]}", "score": 0.9}], "model_id": service.model_id}
        if spec.output_schema == "face_v1":
            return {"faces": [], "count": 0, "model_id": service.model_id}
        return {"items": [], "count": 0, "model_id": service.model_id}


class SlowStartHost(FakeHost):
    """A FakeHost whose ``start()`` waits until ``release`` is set (a node still starting)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.release = asyncio.Event()

    async def start(self) -> None:
        await self.release.wait()
        await super().start()
