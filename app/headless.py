"""Run a node without a display: ``asyncio.run`` until SIGINT/SIGTERM, then a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from app.core.node import Node

log = logging.getLogger(__name__)

STOP_GRACE_S = 3.0  # leaves room inside the 5 s shutdown budget


async def serve_until_signalled(node: Node) -> None:
    """Start ``node``, wait for SIGINT/SIGTERM (or ``node.stop()`` from elsewhere), stop it."""
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    installed: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: no signal handlers
            loop.add_signal_handler(sig, stop_requested.set)
            installed.append(sig)
    try:
        await node.start()
        waiter = asyncio.create_task(stop_requested.wait(), name="headless:wait-signal")
        stopped = asyncio.create_task(node.wait_stopped(), name="headless:wait-stopped")
        await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, stopped):
            task.cancel()
        log.info("stopping the node")
    finally:
        await node.stop(grace=STOP_GRACE_S)
        for sig in installed:
            loop.remove_signal_handler(sig)


def run_headless(node: Node) -> None:
    asyncio.run(serve_until_signalled(node))
