"""A one-off look at the LAN without a running node: browse for a while, probe, return the table.

Used by ``lumen-hub peers``. It opens its own AsyncZeroconf, so it works whether or not a node
runs on this machine (a local node shows up like any other).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from zeroconf.asyncio import AsyncZeroconf

from app.core.cluster.addresses import zeroconf_interfaces
from app.core.cluster.discovery import Discovery
from app.core.cluster.info_prober import NodeInfoProber
from app.core.cluster.peers import PeerTable
from app.core.cluster.prober import PeerProber
from app.core.events import PeerInfo
from app.core.tasks import TaskTracker


async def scan_peers(
    types: Sequence[str],
    *,
    timeout: float = 3.0,
    interfaces: Sequence[str] = ("all",),
    probe_timeout: float = 1.0,
    prober: PeerProber | None = None,
) -> tuple[PeerInfo, ...]:
    """Browse ``types`` for ``timeout`` seconds, probe every node found once, return them."""
    tasks = TaskTracker("peers-scan")
    table = PeerTable(
        prober=prober or NodeInfoProber(),
        tasks=tasks,
        type_order=types,
        probe_interval_s=3600.0,  # no periodic loop: one probe on discovery, one at the end
        probe_timeout_s=probe_timeout,
        expiry_s=3600.0,
    )
    aiozc = AsyncZeroconf(interfaces=zeroconf_interfaces(interfaces))
    discovery = Discovery(aiozc, types, table, own_node_id=None, own_server=None, tasks=tasks)
    try:
        discovery.start()
        await asyncio.sleep(timeout)
        await table.probe_all()
        return table.peers()
    finally:
        with contextlib.suppress(Exception):
            await discovery.stop()
        await tasks.close(timeout=probe_timeout + 1.0)
        await table.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(aiozc.async_close(), 2.0)
