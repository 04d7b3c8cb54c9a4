"""The Go client (grpc-go, behaving as the Lumen Go SDK's multi-node client) discovers two real
nodes over mDNS — advertised by the nodes themselves — and routes tasks to both: each node that
offers a task answers some of its requests, and a task only B hosts, sent to A (which advertises
its cluster), is answered by B through A."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.core.node import Node
from tests.cluster.conftest import mdns_type, nodes  # noqa: F401 (fixtures)
from tests.cluster.routing_support import routable, start_node
from tests.interop.go_build import build_probe, require_go

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def wireprobe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_go()
    return build_probe(tmp_path_factory.mktemp("go"))


async def test_the_go_client_discovers_two_nodes_and_routes_to_both(
    wireprobe: Path,
    nodes: list[Node],  # noqa: F811
    mdns_type: str,  # noqa: F811
    tmp_path: Path,
    big_webp: bytes,
) -> None:
    a = await start_node(nodes, mdns_type, "a", ["clip"], node={"advertise_cluster": True})
    b = await start_node(nodes, mdns_type, "b", ["clip", "ocr"])
    await routable(a, "ocr")
    image = tmp_path / "big.webp"
    image.write_bytes(big_webp)
    process = await asyncio.create_subprocess_exec(
        str(wireprobe),
        "-all",
        "-service",
        mdns_type,
        "-iface",
        "127.0.0.1",
        "-expect",
        "2",
        "-rounds",
        "2",
        "-tasks",
        "semantic_text_embed,semantic_image_embed,ocr",
        "-image",
        str(image),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    lines = [line for line in out.decode().splitlines() if line.startswith("WIREPROBE-SUMMARY ")]
    assert process.returncode == 0 and lines, out.decode() + err.decode()
    summary = json.loads(lines[-1].removeprefix("WIREPROBE-SUMMARY "))

    names = {n.snapshot().node_id: n.cluster.main_instance_name for n in (a, b)}
    found = {n["instance"]: n for n in summary["nodes"]}
    assert set(found) == set(names.values()), summary["nodes"]
    a_name, b_name = names[a.snapshot().node_id], names[b.snapshot().node_id]
    assert found[a_name]["services"] == ["clip", "ocr"]  # a lists b's ocr (advertise_cluster)
    assert found[b_name]["services"] == ["clip", "ocr"]
    assert (found[a_name]["port"], found[b_name]["port"]) == (a.snapshot().port, b.snapshot().port)

    calls = summary["calls"]
    assert calls and all(not c.get("error") and not c.get("code") for c in calls), calls
    a_id, b_id = a.snapshot().node_id, b.snapshot().node_id
    for task in ("semantic_text_embed", "semantic_image_embed"):
        answered = {(c["sent_to"], c["node_id"], c["served_by"]) for c in calls if c["task"] == task}
        assert answered == {(a_name, a_id, ""), (b_name, b_id, "")}  # both nodes answered directly
    ocr = {(c["sent_to"], c["node_id"], c["served_by"]) for c in calls if c["task"] == "ocr"}
    assert ocr == {(a_name, b_id, b_id), (b_name, b_id, "")}  # through a, b answered
    # the big image went to each node in 256 KiB chunks and arrived whole
    image_calls = [c for c in b.host.services["clip"].calls if c.task == "semantic_image_embed"]
    assert image_calls and all(c.payload == big_webp for c in image_calls)
