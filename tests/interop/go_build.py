"""Build the Go interop programs under tests/interop/go into a temporary folder.

The module's go.mod/go.sum are committed; the Go protobuf code is generated at build time from
proto/ (protoc from grpcio-tools, protoc-gen-go and protoc-gen-go-grpc from the module's own
``tool`` requirements), so it can never drift from the Python side. The Go module cache is the
user's default one (downloads happen once through the Go module proxy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GO_MODULE = ROOT / "tests" / "interop" / "go"


def go_env() -> dict[str, str]:
    return {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false", "CGO_ENABLED": "0"}


def require_go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain (`go`) is not installed; the Go interop tests need it")
    return go


def _run(args: list[str], cwd: Path, timeout: float = 600) -> None:
    result = subprocess.run(args, cwd=cwd, env=go_env(), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


def build_probe(work: Path, program: str = "wireprobe") -> Path:
    """``work/bin/<program>`` built from a copy of the Go module with freshly generated stubs."""
    go = require_go()
    module = work / "module"
    shutil.copytree(GO_MODULE, module, ignore=shutil.ignore_patterns("homenativev1", "nodev1", "bin", "sdk"))
    bin_dir = work / "bin"
    bin_dir.mkdir()
    _run(
        [
            go,
            "build",
            "-o",
            str(bin_dir),
            "google.golang.org/protobuf/cmd/protoc-gen-go",
            "google.golang.org/grpc/cmd/protoc-gen-go-grpc",
        ],
        module,
    )
    from grpc_tools import protoc

    include = Path(protoc.__file__).parent / "_proto"
    _run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"-I{include}",
            f"--plugin=protoc-gen-go={bin_dir / 'protoc-gen-go'}",
            f"--plugin=protoc-gen-go-grpc={bin_dir / 'protoc-gen-go-grpc'}",
            f"--go_out={module}",
            "--go_opt=module=lumennode/interop",
            f"--go-grpc_out={module}",
            "--go-grpc_opt=module=lumennode/interop",
            "home_native/v1/ml_service.proto",
        ],
        module,
    )
    _run([go, "build", "-o", str(bin_dir / program), f"./cmd/{program}"], module)
    return bin_dir / program
