"""A small in-process event bus: immutable events fanned out to async subscribers.

Producers (service host, download manager, discovery) call :meth:`EventBus.publish` from the
event loop; each subscriber gets its own bounded queue. A slow subscriber loses its oldest
events rather than blocking producers or growing memory without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeEvent:
    """Base class of every event. ``topic`` groups events (``service``, ``download``, ``peer``)."""

    topic: str = field(default="node", init=False)


class EventBus:
    def __init__(self, queue_size: int = 1024) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Any]] = set()
        self._closed = False

    def publish(self, event: object) -> None:
        """Deliver ``event`` to every subscriber. Never blocks; must run on the loop thread."""
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[Any]:
        """Yield events published after this call until the bus closes."""
        queue: asyncio.Queue[Any] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            while not self._closed:
                event = await queue.get()
                if event is _CLOSE:
                    break
                yield event
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        self._closed = True
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(_CLOSE)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)


_CLOSE = object()
