"""`lumen-hub start` as a user runs it: a real process, a real health check, a real Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.core.conftest import PYTHON, ROOT, free_port, write_config


def _health(port: int, service: str = "", timeout: float = 1.0) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status


def _wait_serving(proc: subprocess.Popen[str], port: int, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"node exited early ({proc.returncode}):\n{out}\n{err}")
        try:
            if _health(port) == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("node never reported SERVING")


def _start(config: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "app.main", "start", "--headless", "--config", str(config), *extra],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_start_serves_health_and_stops_cleanly_on_ctrl_c(tmp_path: Path, isolated_home: dict) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yaml", port, tmp_path / "cache")
    proc = _start(config, isolated_home)
    try:
        _wait_serving(proc, port)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=5)  # the bound: a graceful stop within 5 s
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "running on" in err  # the start banner names the address
    with pytest.raises(grpc.RpcError):
        _health(port, timeout=0.5)
    # the log file in the platform log dir received the same lines
    logs = list(Path(isolated_home["XDG_STATE_HOME"]).rglob("lumen-node.log")) + list(
        Path(isolated_home["XDG_CACHE_HOME"]).rglob("lumen-node.log")
    )
    assert logs and "running on" in logs[0].read_text()


def test_sigterm_also_stops_the_node(tmp_path: Path, isolated_home: dict) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yaml", port, tmp_path / "cache")
    proc = _start(config, isolated_home)
    try:
        _wait_serving(proc, port)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0


def test_port_flag_overrides_config(tmp_path: Path, isolated_home: dict) -> None:
    config = write_config(tmp_path / "config.yaml", free_port(), tmp_path / "cache")
    port = free_port()
    proc = _start(config, isolated_home, "--port", str(port))
    try:
        _wait_serving(proc, port)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=5)


def test_second_node_on_an_occupied_port_fails_naming_the_port(tmp_path: Path, isolated_home: dict) -> None:
    port = free_port()
    config = write_config(tmp_path / "config.yaml", port, tmp_path / "cache")
    first = _start(config, isolated_home)
    try:
        _wait_serving(first, port)
        second = _start(config, isolated_home)
        out, err = second.communicate(timeout=30)
        assert second.returncode == 1
        assert f"port {port}" in err and "already in use" in err
        assert "--port" in err  # says what to do
        assert _health(port) == health_pb2.HealthCheckResponse.SERVING  # the first one is unharmed
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=5)


def test_start_with_a_missing_config_file_fails_clearly(tmp_path: Path, isolated_home: dict) -> None:
    proc = _start(tmp_path / "missing.yaml", isolated_home)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "missing.yaml" in err and "lumen-hub init" in err


def test_version_flag() -> None:
    out = subprocess.run([PYTHON, "-m", "app.main", "--version"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("lumen-hub ")


def test_no_command_is_a_usage_error() -> None:
    out = subprocess.run([PYTHON, "-m", "app.main"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2
