"""A peer that vanishes without a goodbye (killed, crashed, unplugged) leaves the table once it
has not answered the prober for ``node.cluster.expiry_s``, and comes back when it answers."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from app.core.events import PeerChange, PeerChanged
from app.core.node import Node
from tests.cluster.conftest import (
    PYTHON,
    config_yaml,
    node_config,
    node_id,
    peer_ids,
    subprocess_env,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)


async def _spawn_node(config_path: Path, home: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "app.main",
        "start",
        "--headless",
        "--config",
        str(config_path),
        env=subprocess_env(home),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_killed_peer_expires_and_returns_when_it_answers_again(
    nodes: list[Node], mdns_type: str, tmp_path: Path, home: Path
) -> None:
    a = Node(node_config(mdns_type), node_id=node_id("a"))
    nodes.append(a)
    await a.start()
    events: list[PeerChanged] = []

    async def watch() -> None:
        async for event in a.events():
            if isinstance(event, PeerChanged):
                events.append(event)

    watcher = asyncio.create_task(watch())
    b_config = config_yaml(node_config(mdns_type), tmp_path / "b.yaml")
    b = await _spawn_node(b_config, home)
    try:
        await wait_for(
            lambda: a.snapshot().peers and a.snapshot().peers[0].rtt_ms is not None,
            timeout=20,
            what="a lists b with an RTT",
        )
        (b_id,) = peer_ids(a)
        b.send_signal(signal.SIGKILL)  # no goodbye: the mDNS records stay in a's cache
        await b.wait()
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        await wait_for(lambda: not a.snapshot().peers, timeout=10, what="b expired")
        silent = loop.time() - killed_at
        expiry = a.config.node.cluster.expiry_s
        assert silent >= expiry * 0.5  # it left because it stopped answering, not at once
        assert a.cluster.table.unanswering() == (b_id,)  # still advertised, just not answering
        removed = await wait_for(
            lambda: [e for e in events if e.change is PeerChange.REMOVED], what="the REMOVED event"
        )
        assert removed[-1].peer.node_id == b_id

        # the same node (same persisted id, same port) starts again: listed again
        b = await _spawn_node(b_config, home)
        await wait_for(lambda: peer_ids(a) == {b_id}, timeout=20, what="b back")
        assert a.cluster.table.unanswering() == ()
    finally:
        watcher.cancel()
        if b.returncode is None:
            b.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(b.wait(), 10)
            except asyncio.TimeoutError:
                b.kill()
                await b.wait()
