"""How long until a starting node is in a peer's table, measured side by side in one run.

1. Node: ``Node.start()`` of node B until node A's peer table lists B (mDNS registration with
   probing and the name check, A's browser, resolve, validation). Median of 10 (3 with --quick).
   Target: <= 1.5 s.
2. Baseline: the same with bare python-zeroconf (register with probing → a browser's Added),
   the floor any mDNS-based node pays; the ratio node/baseline is what our code adds.

Both run on 127.0.0.1 in one process on a random service type, so the LAN is not disturbed.
(The forwarded-request latency part of the issue comes with routing, in phase 2.)

    python bench/cluster.py [--quick] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zeroconf import ServiceStateChange  # noqa: E402
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf  # noqa: E402

from app.core.config import build_config  # noqa: E402
from app.core.node import Node  # noqa: E402

TARGET_S = 1.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(mdns_type: str):
    return build_config(
        {
            "node": {
                "host": "127.0.0.1",
                "port": free_port(),
                "http_port": 0,
                "mdns": {"types": [mdns_type]},
                "cluster": {"probe_interval_s": 0.5, "expiry_s": 3.0},
            }
        }
    )


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("peer never showed up")
        await asyncio.sleep(0.002)


async def node_runs(runs: int) -> list[float]:
    mdns_type = f"_lb{secrets.token_hex(4)}._tcp.local."
    observer = Node(config(mdns_type), node_id=secrets.token_hex(16))
    await observer.start()
    times: list[float] = []
    try:
        for _ in range(runs):
            node = Node(config(mdns_type), node_id=secrets.token_hex(16))
            wanted = node.snapshot().node_id
            start = time.perf_counter()
            await node.start()
            await wait_until(lambda wanted=wanted: observer.cluster.table.get(wanted) is not None)
            times.append(time.perf_counter() - start)
            await node.stop()
            await wait_until(lambda wanted=wanted: observer.cluster.table.get(wanted) is None)
    finally:
        await observer.stop()
    return times


async def baseline_runs(runs: int) -> list[float]:
    mdns_type = f"_lb{secrets.token_hex(4)}._tcp.local."
    observer = AsyncZeroconf(interfaces=["127.0.0.1"])
    seen: dict[str, asyncio.Event] = {}

    def on_change(zeroconf, service_type, name, state_change) -> None:
        if state_change is ServiceStateChange.Added and name in seen:
            seen[name].set()

    browser = AsyncServiceBrowser(observer.zeroconf, [mdns_type], handlers=[on_change])
    times: list[float] = []
    try:
        for i in range(runs):
            name = f"baseline-{i}-{secrets.token_hex(2)}.{mdns_type}"
            seen[name] = asyncio.Event()
            start = time.perf_counter()
            zc = AsyncZeroconf(interfaces=["127.0.0.1"])
            info = AsyncServiceInfo(
                mdns_type,
                name,
                port=free_port(),
                properties={"v": "0"},
                server=f"baseline-{i}.local.",
                parsed_addresses=["127.0.0.1"],
            )
            await zc.async_register_service(info, allow_name_change=True)
            await asyncio.wait_for(seen[name].wait(), 10)
            times.append(time.perf_counter() - start)
            await zc.async_close()
    finally:
        await browser.async_cancel()
        await observer.async_close()
    return times


def describe(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return f"median {statistics.median(times):.3f} s  min {ordered[0]:.3f} s  p90 {p90:.3f} s"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 10")
    parser.add_argument("--runs", type=int, help="number of runs (default 10, 3 with --quick)")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 10)
    logging.basicConfig(level=logging.ERROR)

    print(f"cluster discovery: time from start until a peer lists the node ({runs} runs each)")
    baseline = await baseline_runs(runs)
    node = await node_runs(runs)
    ratio = statistics.median(node) / statistics.median(baseline)
    print(f"  bare zeroconf register -> browser Added : {describe(baseline)}")
    print(f"  Node.start() -> peer table lists it      : {describe(node)}")
    print(f"  ratio node/baseline (median)             : {ratio:.2f}")
    verdict = "meets" if statistics.median(node) <= TARGET_S else "MISSES"
    print(f"  target median <= {TARGET_S:.1f} s: {verdict}")
    print("  (figures are noisy on a shared machine; mDNS probing alone is ~1.2 s by RFC 6762)")


if __name__ == "__main__":
    asyncio.run(main())
