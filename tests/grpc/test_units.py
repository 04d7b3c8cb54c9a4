"""Result splitting, the status-code table, peer/token checks."""

from __future__ import annotations

import json

import grpc
import pytest

from app.core.config import ConfigError, ConfigIssue
from app.core.grpc.auth import authorize_control, bearer_token, peer_is_local
from app.core.grpc.results import result_messages
from app.core.grpc.status_map import (
    STATUS_FOR_KIND,
    PermissionDenied,
    control_failure_for,
    failure_for,
    failure_for_state,
)
from services.api import (
    DeadlineExceeded,
    ErrorKind,
    InferenceFailed,
    InvalidInput,
    Overloaded,
    ServiceState,
    ServiceStatus,
    ServiceUnavailable,
    TaskNotFound,
)


def test_a_small_final_result_is_one_final_message() -> None:
    [message] = result_messages(b'{"a":1}', schema="labels_v1", meta={"k": "v"}, correlation_id="c")
    assert message.is_final and message.total == 1 and message.seq == 0
    assert message.result_mime == "application/json;schema=labels_v1" and message.result_schema == "labels_v1"


def test_a_large_final_result_is_split_with_seq_total_offset_and_final_last() -> None:
    body = json.dumps({"vector": list(range(3000))}).encode()
    messages = result_messages(
        body, schema="embedding_v1", meta={"model_id": "m"}, correlation_id="", chunk_bytes=4096
    )
    assert len(messages) == -(-len(body) // 4096) > 2
    assert [m.is_final for m in messages] == [False] * (len(messages) - 1) + [True]
    assert [m.seq for m in messages] == list(range(len(messages)))
    assert {m.total for m in messages} == {len(messages)}
    assert [m.offset for m in messages] == [i * 4096 for i in range(len(messages))]
    assert all(m.meta["model_id"] == "m" and m.result_mime == messages[0].result_mime for m in messages)
    assert b"".join(m.result for m in messages) == body


def test_a_partial_result_is_not_final_and_not_chunked() -> None:
    [message] = result_messages(b"{}", schema="ocr_v1", meta={}, correlation_id="", final=False)
    assert not message.is_final and message.total == 0


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("bad"), grpc.StatusCode.INVALID_ARGUMENT),
        (TaskNotFound("none"), grpc.StatusCode.NOT_FOUND),
        (ServiceUnavailable("loading"), grpc.StatusCode.UNAVAILABLE),
        (Overloaded("full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (DeadlineExceeded("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (InferenceFailed("broken model"), grpc.StatusCode.INTERNAL),
        (TimeoutError(), grpc.StatusCode.DEADLINE_EXCEEDED),
    ],
)
def test_every_error_kind_has_one_status_code(error: Exception, code: grpc.StatusCode) -> None:
    assert failure_for(error).code is code
    assert set(STATUS_FOR_KIND) == set(ErrorKind)


def test_a_bug_is_internal_with_a_safe_message() -> None:
    failure = failure_for(KeyError("/secret/path/in/traceback"))
    assert failure.code is grpc.StatusCode.INTERNAL
    assert "secret" not in failure.message and "reference" in failure.message


def test_failed_and_disabled_services_are_not_unavailable() -> None:
    failed = failure_for_state(ServiceStatus("face", ServiceState.FAILED, "RKNN is not available here"))
    assert failed is not None and failed.code is grpc.StatusCode.FAILED_PRECONDITION
    assert "RKNN is not available here" in failed.message
    disabled = failure_for_state(ServiceStatus("ocr", ServiceState.DISABLED))
    assert disabled is not None and disabled.code is grpc.StatusCode.NOT_FOUND
    for state in (
        ServiceState.READY,
        ServiceState.LOADING,
        ServiceState.DOWNLOADING,
        ServiceState.NOT_LOADED,
    ):
        assert failure_for_state(ServiceStatus("clip", state)) is None


def test_control_failures() -> None:
    assert control_failure_for(PermissionDenied("no")).code is grpc.StatusCode.PERMISSION_DENIED
    assert control_failure_for(ValueError("unknown service")).code is grpc.StatusCode.INVALID_ARGUMENT
    config_error = ConfigError([ConfigIssue("node.port", "must be a port")])
    failure = control_failure_for(config_error)
    assert failure.code is grpc.StatusCode.FAILED_PRECONDITION and "node.port" in failure.message


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.8.9.1:5000", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:[::ffff:127.0.0.1]:5000", True),
        ("unix:/tmp/sock", True),
        ("ipv4:192.168.1.20:5000", False),
        ("ipv6:[fe80::1%eth0]:5000", False),
        ("ipv6:[::ffff:10.0.0.1]:5000", False),
        ("garbage", False),
    ],
)
def test_peer_is_local(peer: str, local: bool) -> None:
    assert peer_is_local(peer) is local


def test_bearer_token_and_authorization() -> None:
    assert bearer_token([("authorization", "Bearer s3cret")]) == "s3cret"
    assert bearer_token([("Authorization", "bearer  s3cret ")]) == "s3cret"
    assert bearer_token([("authorization", "Basic xyz")]) is None
    authorize_control("ipv4:127.0.0.1:1", None, None)
    authorize_control("ipv4:10.0.0.5:1", [("authorization", "Bearer s3cret")], "s3cret")
    with pytest.raises(PermissionDenied, match="wrong"):
        authorize_control("ipv4:10.0.0.5:1", [("authorization", "Bearer nope")], "s3cret")
    with pytest.raises(PermissionDenied, match="no admin token configured"):
        authorize_control("ipv4:10.0.0.5:1", [("authorization", "Bearer x")], None)
    with pytest.raises(PermissionDenied, match="only from this machine"):
        authorize_control("ipv4:10.0.0.5:1", None, "s3cret")


def test_results_are_encoded_compactly_with_numpy_values_and_valid_json() -> None:
    import numpy as np

    from app.core.grpc.results import result_json
    from services.api import InferenceResult

    vector = np.asarray([0.25, -0.5, 1e-7], dtype=np.float32)
    data = {"vector": vector, "dim": np.int64(3), "model_id": "m", "extra": float("nan"), "ids": (1, 2)}
    encoded = result_json(InferenceResult("embedding_v1", data))
    decoded = json.loads(encoded)
    assert b" " not in encoded and decoded["dim"] == 3 and decoded["ids"] == [1, 2]
    assert decoded["vector"] == pytest.approx([0.25, -0.5, 1e-7]) and decoded["extra"] is None
    listed = json.loads(result_json(InferenceResult("embedding_v1", {"vector": [0.1, 0.2]})))
    assert listed == {"vector": [0.1, 0.2]}  # shortest round-trip floats, as json writes them


def test_a_result_that_is_not_json_is_an_internal_failure_naming_the_schema() -> None:
    from app.core.grpc.results import result_json
    from services.api import InferenceResult

    with pytest.raises(InferenceFailed) as info:
        result_json(InferenceResult("ocr_v1", {"items": object()}))
    assert "ocr_v1" in info.value.message and failure_for(info.value).code is grpc.StatusCode.INTERNAL
