"""The per-service health rule (app/core/grpc/health_policy.py) and the capability gate."""

from __future__ import annotations

import grpc

from app.core.grpc.health_policy import ServiceHealth
from app.core.grpc.status_map import capabilities_failure, failure_after_unavailable
from services.api import ServiceState, ServiceStatus, ServiceUnavailable

S = ServiceState


def _decisions(health: ServiceHealth, name: str, states: list[ServiceState]) -> list[bool]:
    return [health.serving(ServiceStatus(name, state)) for state in states]


def test_servable_on_demand_is_serving_and_a_demand_load_stays_serving() -> None:
    health = ServiceHealth()
    assert _decisions(health, "clip", [S.NOT_LOADED, S.LOADING, S.READY, S.NOT_LOADED, S.LOADING]) == [
        True,
        True,
        True,
        True,
        True,
    ]


def test_downloading_failed_disabled_are_not_serving_and_loading_after_them_neither() -> None:
    health = ServiceHealth()
    states = [S.DOWNLOADING, S.LOADING, S.READY, S.FAILED, S.LOADING, S.NOT_LOADED, S.DISABLED]
    assert _decisions(health, "ocr", states) == [False, False, True, False, False, True, False]


def test_a_loading_service_seen_first_is_not_serving() -> None:
    assert _decisions(ServiceHealth(), "face", [S.LOADING, S.READY]) == [False, True]


def test_a_preloading_service_warms_up_until_ready_then_behaves_like_the_others() -> None:
    health = ServiceHealth()
    health.warm_up(["clip"])
    assert _decisions(health, "clip", [S.NOT_LOADED, S.LOADING, S.READY, S.NOT_LOADED, S.LOADING]) == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert health.warming == frozenset()


def test_a_preload_that_fails_ends_the_warm_up() -> None:
    health = ServiceHealth()
    health.warm_up(["bioclip"])
    assert _decisions(health, "bioclip", [S.LOADING, S.FAILED, S.NOT_LOADED]) == [False, False, True]


def test_capabilities_are_withheld_only_while_nothing_can_serve_yet() -> None:
    down = ServiceStatus("clip", S.DOWNLOADING)
    loading = ServiceStatus("ocr", S.LOADING)
    failed = ServiceStatus("face", S.FAILED, "no files")
    withheld = capabilities_failure([down, loading], None)
    assert withheld is not None and withheld.code is grpc.StatusCode.UNAVAILABLE
    assert "clip downloading" in withheld.message and "ocr loading" in withheld.message
    assert capabilities_failure([down, failed], None) is None  # a clear error beats waiting forever
    assert capabilities_failure([], None) is None
    gate = capabilities_failure([ServiceStatus("clip", S.READY)], "the node is stopping")
    assert (
        gate is not None
        and gate.code is grpc.StatusCode.UNAVAILABLE
        and gate.message == "the node is stopping"
    )


def test_unavailable_from_a_failed_service_is_failed_precondition() -> None:
    exc = ServiceUnavailable("clip/default is not available: model folder missing")
    failed = failure_after_unavailable(exc, ServiceStatus("clip", S.FAILED, "model folder missing"))
    assert failed.code is grpc.StatusCode.FAILED_PRECONDITION and "model folder missing" in failed.message
    loading = failure_after_unavailable(exc, ServiceStatus("clip", S.DOWNLOADING))
    assert loading.code is grpc.StatusCode.UNAVAILABLE
