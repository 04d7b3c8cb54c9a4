"""``lumen-hub peers`` browses on its own (no node of its own) and prints the peer table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.cli.cluster_cmds import format_table
from app.core.cluster.naming import auto_instance_name
from app.core.events import PeerInfo, PeerService
from app.core.node import Node
from tests.cluster.conftest import CLIP_AND_FACE, PYTHON, node_config, node_id, subprocess_env, wait_for

pytestmark = pytest.mark.timeout(60)


async def _peers(home: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "app.main",
        "peers",
        *args,
        env=subprocess_env(home),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_peers_lists_a_running_node(nodes: list[Node], mdns_type: str, home: Path) -> None:
    node = Node(node_config(mdns_type, services=CLIP_AND_FACE), node_id=node_id("e"))
    nodes.append(node)
    await node.start()
    await wait_for(
        lambda: node.cluster.advertiser and node.cluster.advertiser.registered_event.is_set(),
        what="registration",
    )
    table, as_json = await asyncio.gather(
        _peers(home, "--type", mdns_type, "--timeout", "2.5"),
        _peers(home, "--type", mdns_type, "--timeout", "2.5", "--json"),
    )
    code, out, err = table
    assert code == 0, err
    header, *rows = out.strip().splitlines()
    assert header.split() == ["NAME", "ADDRESS", "SERVICES", "RUNTIME", "STATE", "RTT"]
    assert len(rows) == 1, out
    cells = rows[0].split()
    assert cells[:5] == [
        auto_instance_name(node_id("e")),
        f"127.0.0.1:{node.snapshot().port}",
        "clip,face",
        "onnxrt",
        "ready",
    ]
    assert cells[6] == "ms" and float(cells[5]) > 0
    code, out, err = as_json
    assert code == 0, err
    (entry,) = json.loads(out)
    assert entry["node_id"] == node_id("e") and entry["address"] == f"127.0.0.1:{node.snapshot().port}"
    assert [s["name"] for s in entry["services"]] == ["clip", "face"] and entry["rtt_ms"] > 0


def test_peers_with_nothing_there_and_bad_arguments(
    mdns_type: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.main import main

    assert main(["peers", "--type", mdns_type, "--timeout", "0.3"]) == 0
    assert "No Lumen nodes found within 0.3 s" in capsys.readouterr().out
    assert main(["peers", "--type", mdns_type, "--timeout", "0.3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["peers", "--timeout", "0"]) == 2
    assert "--timeout must be more than 0" in capsys.readouterr().err
    assert main(["peers", "--type", "_nope"]) == 2
    assert "_name._tcp.local." in capsys.readouterr().err


def test_table_marks_services_not_ready_and_silent_peers() -> None:
    peer = PeerInfo(
        node_id="x",
        name="lumen-x",
        addresses=("10.0.0.2",),
        port=50051,
        runtime="rknn-rk3588",
        services=(PeerService("ocr", "ready"), PeerService("face", "loading")),
        state="starting",
    )
    lines = format_table([peer]).splitlines()
    assert lines[1].split() == [
        "lumen-x",
        "10.0.0.2:50051",
        "ocr,face(loading)",
        "rknn-rk3588",
        "starting",
        "no",
        "answer",
    ]
