"""The service framework: handler kinds, streamed results, capability derivation, routing."""

import asyncio
import functools
import threading
from pathlib import Path

import pytest

from services.api import (
    HostSettings,
    InferenceFailed,
    InferenceRequest,
    InferenceResult,
    ModelSpec,
    ServiceSpec,
    ServiceState,
    TaskSpec,
)
from services.host import ServiceHost
from services.service import HandlerKind, ModelUnavailable, Service, Task, handler_kind


class _Echo:
    runtime = "echo-cpu"

    def __init__(self) -> None:
        self.closed = False
        self.threads: list[str] = []

    def close(self) -> None:
        self.closed = True


class EchoService(Service):
    """A service with one task per handler kind; it records which thread ran each handler."""

    name = "echo"

    def tasks(self):
        return [
            Task(TaskSpec("echo_function", ("text/plain",), "echo_v1", aliases=("echo_fn",)), self.function),
            Task(TaskSpec("echo_coroutine", ("text/plain",), "echo_v1", limits={"max": "3"}), self.coroutine),
            Task(TaskSpec("echo_generator", ("text/plain",), "echo_v1"), self.generator),
            Task(TaskSpec("echo_async_generator", ("text/plain",), "echo_v1"), self.async_generator),
            Task(TaskSpec("echo_fail", ("text/plain",), "echo_v1"), self.fail),
            Task(TaskSpec("echo_result", ("text/plain",), "echo_v1"), self.result),
        ]

    def check(self, model: ModelSpec) -> None:
        if model.model == "missing":
            raise ModelUnavailable("weights.bin is missing")

    def load(self, model: ModelSpec) -> _Echo:
        return _Echo()

    def precision(self, model: ModelSpec) -> str:
        return model.precision or "int8"

    def function(self, request, model):
        return {"text": request.payload.decode(), "thread": threading.current_thread().name}

    async def coroutine(self, request, model):
        value = await model.run(lambda: threading.current_thread().name)
        return {"text": request.payload.decode(), "thread": value}

    def generator(self, request, model):
        for i in range(3):
            yield {"part": i, "thread": threading.current_thread().name}

    async def async_generator(self, request, model):
        for i in range(3):
            await asyncio.sleep(0)
            yield {"part": i}

    def fail(self, request, model):
        raise ZeroDivisionError("boom")

    async def result(self, request, model):
        return InferenceResult("echo_v1", {"ok": True}, meta={"x": "y"})


def _spec(*models: str, name: str = "echo") -> ServiceSpec:
    return ServiceSpec(
        name=name,
        models=tuple(ModelSpec(f"m{i}", m, "onnx", path=Path("/nowhere")) for i, m in enumerate(models)),
        default_model="m0",
    )


def test_handler_kinds_are_detected():
    def plain(r, m): ...

    async def coro(r, m): ...

    def gen(r, m):
        yield 1

    async def agen(r, m):
        yield 1

    class Callable:
        async def __call__(self, r, m): ...

    service = EchoService(_spec("a"), HostSettings())
    assert handler_kind(plain) is HandlerKind.FUNCTION
    assert handler_kind(coro) is HandlerKind.COROUTINE
    assert handler_kind(gen) is HandlerKind.GENERATOR
    assert handler_kind(agen) is HandlerKind.ASYNC_GENERATOR
    assert handler_kind(functools.partial(agen, None)) is HandlerKind.ASYNC_GENERATOR
    assert handler_kind(service.coroutine) is HandlerKind.COROUTINE  # bound method
    assert handler_kind(Callable()) is HandlerKind.COROUTINE
    assert HandlerKind.GENERATOR.streams and not HandlerKind.FUNCTION.streams


async def test_each_handler_kind_runs_where_it_should():
    host = ServiceHost([_spec("a")], HostSettings(), registry={"echo": EchoService})
    try:
        fn = await host.infer(InferenceRequest("echo_fn", b"hi", "text/plain"))
        assert fn.data["text"] == "hi" and fn.data["thread"].startswith("lumen-infer")  # never on the loop
        coro = await host.infer(InferenceRequest("echo_coroutine", b"yo"))
        assert coro.data["thread"].startswith("lumen-infer")
        parts = [r async for r in host.run(InferenceRequest("echo_generator", b""))]
        assert [p.data["part"] for p in parts] == [0, 1, 2]
        assert [p.final for p in parts] == [False, False, True]
        assert all(p.data["thread"].startswith("lumen-infer") for p in parts)
        aparts = [r async for r in host.run(InferenceRequest("echo_async_generator", b""))]
        assert [p.final for p in aparts] == [False, False, True]
        final = await host.infer(InferenceRequest("echo_async_generator", b""))
        assert final.final and final.data == {"part": 2}
        result = await host.infer(InferenceRequest("echo_result", b""))
        assert result.meta == {"x": "y"}
        with pytest.raises(InferenceFailed, match="echo_fail failed: ZeroDivisionError: boom"):
            await host.infer(InferenceRequest("echo_fail", b""))
    finally:
        await host.stop()


def test_capabilities_are_derived_from_declarations():
    host = ServiceHost(
        [_spec("a", "b")], HostSettings(max_concurrency_per_model=3), registry={"echo": EchoService}
    )
    (cap,) = host.capabilities()
    assert cap.service_name == "echo"
    assert cap.model_ids == ("a", "b")
    assert cap.runtime == "onnxrt-cpu"  # predicted before anything is loaded
    assert cap.max_concurrency == 3
    assert cap.precisions == ("int8",)
    assert cap.protocol_version == "1.0.0"
    names = [t.name for t in cap.tasks]
    assert names[:2] == ["echo_function", "echo_coroutine"]
    assert cap.tasks[0].aliases == ("echo_fn",)
    assert cap.tasks[1].limits == {"max": "3"}
    assert cap.extra["state"] == "not_loaded"
    assert host.resolve("echo_fn") == ("echo", cap.tasks[0])


async def test_runtime_label_comes_from_the_loaded_model():
    host = ServiceHost([_spec("a")], HostSettings(), registry={"echo": EchoService})
    try:
        await host.infer(InferenceRequest("echo_fn", b""))
        assert host.capabilities()[0].runtime == "echo-cpu"
        assert host.statuses()[0].runtime == "echo-cpu"
    finally:
        await host.stop()


def test_a_task_name_belongs_to_one_service():
    class Twin(EchoService):
        name = "twin"

    with pytest.raises(ValueError, match="'echo_function' is offered by both 'echo' and 'twin'"):
        ServiceHost(
            [_spec("a"), _spec("a", name="twin")],
            HostSettings(),
            registry={"echo": EchoService, "twin": Twin},
        )


def test_unknown_service_and_failed_check_show_as_failed():
    host = ServiceHost(
        [_spec("a", name="face"), _spec("missing")], HostSettings(), registry={"echo": EchoService}
    )
    face, echo = host.statuses()
    assert face.state is ServiceState.FAILED and "no service named 'face'" in face.reason
    assert echo.state is ServiceState.FAILED and echo.reason == "weights.bin is missing"
    caps = {c.service_name: c for c in host.capabilities()}
    assert caps["face"].tasks == () and caps["face"].extra["state"] == "failed"
    assert caps["echo"].extra["reason"] == "weights.bin is missing"


def test_the_default_registry_has_the_four_services_with_distinct_tasks(tmp_path):
    from services.host import builtin_registry

    registry = builtin_registry()
    assert set(registry) == {"clip", "bioclip", "face", "ocr"}
    specs = [ServiceSpec(name, (ModelSpec("default", "m", "onnx", tmp_path / name),)) for name in registry]
    host = ServiceHost(specs, HostSettings())  # a task claimed twice would raise here
    tasks = {c.service_name: [t.name for t in c.tasks] for c in host.capabilities()}
    assert tasks["face"] == ["face_recognition", "face_detect"] and tasks["ocr"] == ["ocr"]
