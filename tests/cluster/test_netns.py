"""Discovery across real multicast: two network namespaces joined by a veth pair, a node in each.

Namespaces have no default route, so this also proves ``node.mdns.interfaces: all`` works where
``default`` fails (PLATFORM.md). Skipped (with the reason) where namespaces cannot be made.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import PYTHON, config_yaml, node_config, subprocess_env

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str, str]]:
    """Two namespaces ``a`` (10.77.0.1) and ``b`` (10.77.0.2) on one veth link; the suffix."""
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed (scripts/install_system_deps.sh installs it)")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (`ip netns add`)")
    suffix = secrets.token_hex(3)
    ns_a, ns_b = f"luma{suffix}", f"lumb{suffix}"
    veth_a, veth_b = f"vla{suffix}", f"vlb{suffix}"
    made: list[str] = []
    try:
        for ns in (ns_a, ns_b):
            result = _ip("netns", "add", ns)
            if result.returncode != 0:
                pytest.skip(f"`ip netns add` is not permitted here: {result.stderr.strip()}")
            made.append(ns)
        steps = [
            ("link", "add", veth_a, "type", "veth", "peer", "name", veth_b),
            ("link", "set", veth_a, "netns", ns_a),
            ("link", "set", veth_b, "netns", ns_b),
            ("-n", ns_a, "addr", "add", "10.77.0.1/24", "dev", veth_a),
            ("-n", ns_b, "addr", "add", "10.77.0.2/24", "dev", veth_b),
            ("-n", ns_a, "link", "set", veth_a, "up"),
            ("-n", ns_b, "link", "set", veth_b, "up"),
            ("-n", ns_a, "link", "set", "lo", "up"),
            ("-n", ns_b, "link", "set", "lo", "up"),
        ]
        for step in steps:
            result = _ip(*step)
            if result.returncode != 0:
                pytest.skip(f"`ip {' '.join(step)}` failed: {result.stderr.strip()}")
        yield ns_a, ns_b, veth_b
    finally:
        for ns in made:
            _ip("netns", "del", ns)


async def _in_ns(ns: str, home: Path, *args: str, capture: bool = False) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        ns,
        PYTHON,
        "-m",
        "app.main",
        *args,
        env=subprocess_env(home),
        stdout=asyncio.subprocess.PIPE if capture else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _scan(ns: str, home: Path, mdns_type: str) -> list[dict]:
    proc = await _in_ns(ns, home, "peers", "--type", mdns_type, "--timeout", "2.5", "--json", capture=True)
    out, err = await asyncio.wait_for(proc.communicate(), 40)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_nodes_in_two_namespaces_find_each_other_over_a_veth_link(
    namespaces: tuple[str, str, str], mdns_type: str, tmp_path: Path
) -> None:
    ns_a, ns_b, veth_b = namespaces
    procs = []
    try:
        for ns in (ns_a, ns_b):
            config = node_config(mdns_type, host="0.0.0.0", port=50051, mdns={"interface_poll_s": 0.5})
            home = tmp_path / ns
            home.mkdir()
            path = config_yaml(config, tmp_path / f"{ns}.yaml")
            procs.append(await _in_ns(ns, home, "start", "--headless", "--config", str(path)))
        scan_home = tmp_path / "scan"
        scan_home.mkdir()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 40
        while True:
            found = {entry["address"]: entry for entry in await _scan(ns_a, scan_home, mdns_type)}
            if {"10.77.0.1:50051", "10.77.0.2:50051"} <= set(found):
                break
            assert loop.time() < deadline, f"nodes did not find each other: {found}"
        b = found["10.77.0.2:50051"]
        assert b["rtt_ms"] is not None and b["rtt_ms"] > 0  # health-checked across the veth link
        assert b["state"] == "ready" and b["os"] == "linux"
        assert found["10.77.0.1:50051"]["node_id"] != b["node_id"]

        # a new address on b's interface is re-announced (interfaces are polled)
        assert _ip("-n", ns_b, "addr", "add", "10.78.0.2/24", "dev", veth_b).returncode == 0
        while True:
            entries = await _scan(ns_a, scan_home, mdns_type)
            b_now = next((e for e in entries if e["node_id"] == b["node_id"]), None)
            if b_now and "10.78.0.2" in b_now["addresses"]:
                break
            assert loop.time() < deadline + 20, f"new address never announced: {entries}"
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
