"""The committed generated code (proto/gen) is exactly what scripts/gen_proto.py produces, and the
wire contract keeps the field numbers of DESIGN.md §3.1."""

from __future__ import annotations

import filecmp
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tree(base: Path) -> dict[str, bytes]:
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*.py"))}


def test_regeneration_changes_nothing(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev extra) generates the code")
    out = tmp_path / "gen"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--out", str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    committed = _tree(ROOT / "proto" / "gen")
    fresh = _tree(out)
    assert sorted(fresh) == sorted(committed), "file list differs: run `make proto` and commit"
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert not changed, f"regeneration changes {changed}: run `make proto` and commit proto/gen"
    assert filecmp.dircmp(out, ROOT / "proto" / "gen").diff_files == []


def test_generated_code_imports_as_one_package_from_anywhere(tmp_path: Path) -> None:
    script = (
        "from proto.gen.home_native.v1 import ml_service_pb2_grpc\n"
        "from proto.gen.lumen.node.v1 import node_pb2_grpc\n"
        "print(ml_service_pb2_grpc.__name__, node_pb2_grpc.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    )
    assert "proto.gen.home_native.v1.ml_service_pb2_grpc" in out.stdout


CONTRACT = {
    "Error": [(1, "code"), (2, "message"), (3, "detail")],
    "IOTask": [
        (1, "name"),
        (2, "input_mimes"),
        (3, "output_mimes"),
        (4, "limits"),
        (5, "tensor_preprocess_id"),
        (6, "tensor_batching_supported"),
    ],
    "Capability": [
        (1, "service_name"),
        (2, "model_ids"),
        (3, "runtime"),
        (4, "max_concurrency"),
        (5, "precisions"),
        (6, "extra"),
        (7, "tasks"),
        (8, "protocol_version"),
    ],
    "InferRequest": [
        (1, "correlation_id"),
        (2, "task"),
        (3, "payload"),
        (4, "meta"),
        (5, "payload_mime"),
        (6, "seq"),
        (7, "total"),
        (8, "offset"),
    ],
    "InferResponse": [
        (1, "correlation_id"),
        (2, "is_final"),
        (3, "result"),
        (4, "meta"),
        (5, "error"),
        (6, "seq"),
        (7, "total"),
        (8, "offset"),
        (9, "result_mime"),
        (10, "result_schema"),
    ],
}


def test_wire_contract_field_numbers() -> None:
    pb = importlib.import_module("proto.gen.home_native.v1.ml_service_pb2")
    assert pb.DESCRIPTOR.package == "home_native.v1"
    for name, fields in CONTRACT.items():
        message = pb.DESCRIPTOR.message_types_by_name[name]
        assert [(f.number, f.name) for f in message.fields] == fields, name
    codes = {v.number: v.name for v in pb.DESCRIPTOR.enum_types_by_name["ErrorCode"].values}
    assert codes == {
        0: "ERROR_CODE_UNSPECIFIED",
        1: "ERROR_CODE_INVALID_ARGUMENT",
        2: "ERROR_CODE_UNAVAILABLE",
        3: "ERROR_CODE_DEADLINE_EXCEEDED",
        4: "ERROR_CODE_INTERNAL",
    }
    service = pb.DESCRIPTOR.services_by_name["Inference"]
    methods = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert methods == {
        "Infer": (True, True),
        "GetCapabilities": (False, False),
        "StreamCapabilities": (False, True),
        "Health": (False, False),
    }
