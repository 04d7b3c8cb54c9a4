"""Availability checks run off the event loop; loads cancelled at shutdown are closed;
reconfigure leaves no stray model slots."""

import asyncio
import threading
from pathlib import Path

import pytest

from services.api import InferenceRequest, ModelSpec, ServiceSpec, ServiceState, ServiceUnavailable, TaskSpec
from services.service import ModelUnavailable, Service, Task
from tests.services.conftest import wait_for_state


class _Probe:
    runtime = "probe-cpu"

    def __init__(self) -> None:
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


class ProbeService(Service):
    """Records the thread of every check and runtime probe; its files can go missing; its load
    can be held back."""

    name = "probe"
    task_name = "probe_echo"

    def __init__(self, spec, settings) -> None:
        super().__init__(spec, settings)
        self.missing = False
        self.check_threads: list[int] = []
        self.label_threads: list[int] = []
        self.load_gate: threading.Event | None = None
        self.loaded: list[_Probe] = []

    def tasks(self):
        return [Task(TaskSpec(self.task_name, ("text/plain",), "echo_v1"), self.echo)]

    def check(self, model: ModelSpec) -> None:
        self.check_threads.append(threading.get_ident())
        if self.missing:
            raise ModelUnavailable("weights.bin is missing; download it")

    def runtime_label(self, model: ModelSpec) -> str:
        self.label_threads.append(threading.get_ident())
        return "probe-cpu"

    def load(self, model: ModelSpec) -> _Probe:
        if self.load_gate is not None:
            self.load_gate.wait(5)
        instance = _Probe()
        self.loaded.append(instance)
        return instance

    def echo(self, request, model):
        return {"text": request.payload.decode()}


class OtherProbeService(ProbeService):
    name = "other"  # offers probe_echo too: a clash with ProbeService


class ThirdProbeService(ProbeService):
    name = "third"
    task_name = "third_echo"


def _spec(name: str = "probe") -> ServiceSpec:
    return ServiceSpec(name, (ModelSpec("default", "probe-model", "onnx", Path("/nowhere")),))


def _registry(services: dict[str, ProbeService]):
    def factory(cls):
        def make(spec, settings):
            services[spec.name] = cls(spec, settings)
            return services[spec.name]

        return make

    return {
        "probe": factory(ProbeService),
        "other": factory(OtherProbeService),
        "third": factory(ThirdProbeService),
    }


def _echo() -> InferenceRequest:
    return InferenceRequest(ProbeService.task_name, b"hi", "text/plain")


async def test_a_reconfigured_service_is_checked_off_the_loop(host_factory):
    services: dict[str, ProbeService] = {}
    host = host_factory([], registry=_registry(services))
    await host.reconfigure([_spec()])
    loop_thread = threading.get_ident()
    probe = services["probe"]
    assert probe.check_threads and loop_thread not in probe.check_threads
    assert probe.label_threads and loop_thread not in probe.label_threads
    assert host.statuses()[0].state is ServiceState.NOT_LOADED
    assert host.statuses()[0].runtime == "probe-cpu"


async def test_a_released_hold_checks_off_the_loop(host_factory):
    services: dict[str, ProbeService] = {}
    host = host_factory([_spec()], registry=_registry(services))
    probe = services["probe"]
    probe.check_threads.clear()
    probe.label_threads.clear()
    host.hold("probe", ServiceState.DOWNLOADING, "1 of 2 files")
    host.hold("probe", None)
    assert "service-host:check:probe/default" in host.background_tasks
    await wait_for_state(host, "probe", ServiceState.NOT_LOADED)
    for _ in range(100):
        if not host.background_tasks:
            break
        await asyncio.sleep(0.01)
    assert probe.check_threads and threading.get_ident() not in probe.check_threads
    assert threading.get_ident() not in probe.label_threads


async def test_a_request_to_a_failed_model_rechecks_off_the_loop(host_factory):
    services: dict[str, ProbeService] = {}
    host = host_factory([_spec()], registry=_registry(services))
    probe = services["probe"]
    probe.missing = True
    host.hold("probe", None)
    await wait_for_state(host, "probe", ServiceState.FAILED)
    probe.check_threads.clear()
    with pytest.raises(ServiceUnavailable, match="weights.bin is missing"):
        await host.infer(_echo())
    probe.missing = False  # the file arrives
    assert (await host.infer(_echo())).data == {"text": "hi"}
    assert len(probe.check_threads) == 2 and threading.get_ident() not in probe.check_threads


async def test_a_load_given_up_at_shutdown_closes_the_model_it_returns(host_factory):
    services: dict[str, ProbeService] = {}
    host = host_factory([_spec()], registry=_registry(services))
    probe = services["probe"]
    probe.load_gate = threading.Event()
    request = asyncio.ensure_future(host.infer(_echo()))
    await wait_for_state(host, "probe", ServiceState.LOADING)
    await host._manager.close(timeout=0.05)  # the load is still running: given up
    with pytest.raises(ServiceUnavailable, match="stopping"):  # the waiting request is told why
        await request
    probe.load_gate.set()  # ... and then it finishes
    for _ in range(200):
        if probe.loaded and probe.loaded[0].closed.is_set():
            break
        await asyncio.sleep(0.01)
    assert len(probe.loaded) == 1 and probe.loaded[0].closed.is_set()


async def test_a_reconfigure_refused_for_a_task_clash_leaves_no_model_behind(host_factory):
    services: dict[str, ProbeService] = {}
    host = host_factory([_spec()], registry=_registry(services))
    before = list(host._manager.slots)
    with pytest.raises(ValueError, match="'probe_echo' is offered by both"):
        await host.reconfigure([_spec(), _spec("third"), _spec("other")])
    assert host._manager.slots == before  # "third" was built, but nothing of it stays
    assert [s.name for s in host.statuses()] == ["probe"]
    assert (await host.infer(_echo())).data == {"text": "hi"}


def test_a_hold_released_before_the_loop_runs_checks_at_once():
    from services.api import HostSettings
    from services.host import ServiceHost

    services: dict[str, ProbeService] = {}
    host = ServiceHost([_spec()], HostSettings(), registry=_registry(services))
    services["probe"].missing = True
    host.hold("probe", None)  # e.g. a node set up from its config, before serving
    assert host.statuses()[0].state is ServiceState.FAILED
    assert "weights.bin is missing" in host.statuses()[0].reason


async def test_a_check_cancelled_by_stop_does_not_break_the_next_start(host_factory):
    services: dict[str, ProbeService] = {}
    host = host_factory([_spec()], registry=_registry(services))
    host.hold("probe", None)  # its check task has not run yet ...
    await host.stop()  # ... when the stop cancels it
    await host.start()
    assert (await host.infer(_echo())).data == {"text": "hi"}
