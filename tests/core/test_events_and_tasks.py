from __future__ import annotations

import asyncio

from app.core.events import EventBus
from app.core.tasks import TaskTracker


async def test_bus_fans_out_to_every_subscriber_in_order() -> None:
    bus = EventBus()
    got: dict[str, list[int]] = {"a": [], "b": []}

    async def collect(name: str) -> None:
        async for event in bus.subscribe():
            got[name].append(event)

    tasks = [asyncio.create_task(collect(n)) for n in got]
    await asyncio.sleep(0)
    for i in range(5):
        bus.publish(i)
    await asyncio.sleep(0)
    bus.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert got == {"a": [0, 1, 2, 3, 4], "b": [0, 1, 2, 3, 4]}
    assert bus.subscriber_count == 0


async def test_slow_subscriber_loses_oldest_events_not_memory() -> None:
    bus = EventBus(queue_size=3)
    stream = bus.subscribe()
    first = asyncio.create_task(stream.__anext__())
    await asyncio.sleep(0)
    for i in range(10):
        bus.publish(i)
    assert await first == 7  # 0..6 were dropped: the queue holds the newest three
    assert await stream.__anext__() == 8
    assert await stream.__anext__() == 9
    bus.close()


async def test_tracker_names_tasks_and_cancels_them_on_close() -> None:
    tracker = TaskTracker("unit")
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = tracker.spawn("sleeper", forever())
    await started.wait()
    assert tracker.names == ["unit:sleeper"]
    await tracker.close(timeout=1)
    assert task.cancelled()
    assert tracker.names == []


async def test_a_subscription_starts_when_made_and_ends_when_closed_or_dropped() -> None:
    import gc

    bus = EventBus(queue_size=4)
    stream = bus.subscribe()
    bus.publish("before the first read")  # not lost: the subscription exists already
    assert await stream.__anext__() == "before the first read"
    stream.close()
    assert bus.subscriber_count == 0
    dropped = bus.subscribe()
    assert bus.subscriber_count == 1
    del dropped  # a consumer that walked away does not stay subscribed
    gc.collect()
    assert bus.subscriber_count == 0
