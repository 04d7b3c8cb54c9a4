"""The model lifecycle: lazy loading, sharing, idle unloading, an LRU bound, concurrency limits
and dynamic batching.

* One :class:`ModelSlot` per configured model (service + alias). Its state is NOT_LOADED,
  LOADING, READY or FAILED (with a reason); every change is reported through ``on_change``.
* :meth:`ModelManager.lease` loads the model on first use (concurrent callers wait for the same
  load), and keeps it loaded while leased. All tasks of a service share the one loaded instance.
* A model left unused for ``model_idle_ttl_s`` is unloaded (0 = never). Before a load, the least
  recently used idle models are unloaded until fewer than ``max_loaded_models`` remain (models
  in use, loaded or loading, are never evicted; if all are busy the load goes ahead and idle
  models are unloaded as soon as there are any, until the bound holds again).
* Inference runs in an executor, at most ``max_concurrency_per_model`` calls at once per model.
* :meth:`ModelLease.batched` collects concurrent items for one batch function: a batch starts
  when ``batch_max_size`` items wait, or ``batch_max_wait_ms`` after the first arrived, or at
  once when no other request of the tasks that use that batch is still on its way (a lone
  request never waits, nor does a text query while images are being decoded); it is taken
  only once a concurrency slot is free, so items arriving meanwhile join it.

Checks, loading, preprocessing and inference never run on the event loop (the one exception:
the first check of a host built before its loop runs).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.api import HostSettings, ModelSpec, ServiceState, ServiceUnavailable
from services.memory import release_free_memory
from services.runtimes.base import RuntimeUnavailable
from services.service import LoadedModel, ModelUnavailable, Service
from services.tasks import TaskTracker

log = logging.getLogger(__name__)

RECENT_BATCHES = 1024  # batch sizes a Batcher remembers (for benchmarks and diagnostics)

T = TypeVar("T")
FAILED_LOAD_RETRY_S = 10.0


@dataclass(eq=False)
class ModelSlot:
    """One configured model of one service, loaded or not."""

    service_name: str
    alias: str
    spec: ModelSpec
    service: Service
    semaphore: asyncio.Semaphore
    state: ServiceState = ServiceState.NOT_LOADED
    reason: str = ""
    retry: bool = True  # a FAILED slot may be checked / loaded again later
    load_failed: bool = False  # FAILED while loading (retried after a delay), not in the check
    failed_at: float = 0.0
    instance: LoadedModel | None = None
    runtime: str = ""
    active_by_task: Counter[str] = field(default_factory=Counter)  # leases held, per task name
    last_used: float = 0.0
    load_task: asyncio.Task[None] | None = None
    check_task: asyncio.Task[None] | None = None
    predicted_runtime: str = ""  # the runtime label before a load, found by the last check
    idle_handle: asyncio.TimerHandle | None = None
    batchers: dict[str, Batcher] = field(default_factory=dict)
    batch_tasks: dict[str, set[str]] = field(default_factory=dict)  # batch key -> tasks seen using it
    loads: int = 0  # how many times it was loaded (for tests and logs)
    removed: bool = False  # no longer configured: unloaded as soon as nobody holds it

    @property
    def active(self) -> int:
        """Leases held (counted while they wait for the load too: the model is not idle)."""
        return sum(self.active_by_task.values())

    @property
    def key(self) -> str:
        return f"{self.service_name}/{self.alias}"

    @property
    def model_id(self) -> str:
        return self.service.model_id(self.spec)


class ModelLease:
    """A handler's handle on a loaded model (valid while the handler runs)."""

    def __init__(self, manager: ModelManager, slot: ModelSlot, task: str = "") -> None:
        self._manager = manager
        self._slot = slot
        self.task = task
        assert slot.instance is not None
        self.model: Any = slot.instance
        self.spec = slot.spec
        self.model_id = slot.model_id

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the inference executor, within the model's concurrency limit."""
        async with self._slot.semaphore:
            return await self._manager.in_executor(fn, *args)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the preprocessing executor (decoding, resizing; no model needed)."""
        return await self._manager.in_prep_executor(fn, *args)

    async def batched(self, key: str, fn: Callable[[list[Any]], Sequence[T]], item: Any) -> T:
        """Submit ``item`` to the batch function ``fn(items) -> results`` (one result per item,
        in order). Concurrent submissions under the same ``key`` are run as one batch.

        A batch waits for more items only while requests of the tasks that submit under ``key``
        are still on their way: a text query is not held back by images being decoded."""
        tasks = self._slot.batch_tasks.setdefault(key, set())
        tasks.add(self.task)
        batcher = self._slot.batchers.get(key)
        if batcher is None:
            settings = self._manager.settings
            batcher = Batcher(
                fn,
                max_size=settings.batch_max_size,
                max_wait_s=settings.batch_max_wait_ms / 1000.0,
                semaphore=self._slot.semaphore,
                run=self._manager.executor_future,
                spawn=self._manager.tasks.spawn,
                name=f"{self._slot.key}:{key}",
                callers=lambda slot=self._slot, tasks=tasks: sum(slot.active_by_task[t] for t in tasks),
                runs_at_once=self._manager.batch_runs_at_once(self._slot),
            )
            self._slot.batchers[key] = batcher
        return await batcher.submit(item)


class Batcher:
    """Dynamic batching for one batch function (see the module docstring)."""

    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[Any]],
        *,
        max_size: int,
        max_wait_s: float,
        semaphore: asyncio.Semaphore,
        run: Callable[..., Awaitable[Any]],
        spawn: Callable[[str, Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        name: str,
        callers: Callable[[], int] = lambda: 1 << 30,
        runs_at_once: int = 0,
    ) -> None:
        self._fn = fn
        # batches of this key running at once (0: only the model's limit); on a CPU runtime the
        # threads of one run fill the CPUs, so a second batch of the same key would only slow
        # both, while other keys (a text query beside an image batch) may still run
        self._own = asyncio.Semaphore(runs_at_once) if runs_at_once > 0 else None
        self._callers = callers
        self._max_size = max(1, max_size)
        self._max_wait_s = max(0.0, max_wait_s)
        self._semaphore = semaphore
        self._run = run
        self._spawn = spawn
        self._name = name
        self._pending: list[tuple[Any, asyncio.Future[Any], float]] = []
        self._arrived = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._running_items = 0
        self.batch_sizes: deque[int] = deque(maxlen=RECENT_BATCHES)  # diagnostics, bounded

    def _on_their_way(self) -> int:
        """Callers that hold the model for this batch's tasks but have not submitted yet (e.g.
        still decoding their images): only for them is waiting for a fuller batch worth it."""
        return self._callers() - len(self._pending) - self._running_items

    def _more_may_come(self) -> bool:
        return self._on_their_way() > 0

    async def submit(self, item: Any) -> Any:
        if self._alone():
            return await self._run_alone(item)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((item, future, loop.time()))
        self._arrived.set()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = self._spawn(f"batch:{self._name}", self._dispatch())
        return await future

    def _alone(self) -> bool:
        """Nothing waits, no other caller is on its way and a slot is free: the batch would be
        this item alone, taken at once; it runs without the dispatcher's two task hops."""
        return (
            not self._pending
            and self._callers() - self._running_items <= 1
            and not self._semaphore.locked()
            and (self._own is None or not self._own.locked())
            and (self._dispatcher is None or self._dispatcher.done())
        )

    async def _acquire(self) -> None:
        if self._own is not None:
            await self._own.acquire()
        try:
            await self._semaphore.acquire()
        except BaseException:
            if self._own is not None:
                self._own.release()
            raise

    def _release(self) -> None:
        self._semaphore.release()
        if self._own is not None:
            self._own.release()

    async def _run_alone(self, item: Any) -> Any:
        await self._acquire()  # both are free (see _alone): no wait
        self._running_items += 1
        self.batch_sizes.append(1)

        def release(_: object) -> None:
            self._running_items -= 1
            self._release()

        work = asyncio.ensure_future(self._run(self._fn, [item]))
        work.add_done_callback(release)  # a cancelled caller leaves the slot taken until the work ends
        results = await asyncio.shield(work)
        if len(results) != 1:
            raise RuntimeError(f"batch function returned {len(results)} results for 1 item")
        return results[0]

    async def _dispatch(self) -> None:
        try:
            await self._dispatch_pending()
        except asyncio.CancelledError:  # the host is closing: nobody may wait forever
            for _, future, _ in self._pending:
                if not future.done():
                    future.set_exception(ServiceUnavailable("the service host is stopping"))
            self._pending.clear()
            raise

    async def _dispatch_pending(self) -> None:
        while self._pending:
            deadline = self._pending[0][2] + self._max_wait_s
            await self._wait_while(
                lambda: len(self._pending) < self._max_size and self._more_may_come(), deadline
            )
            await self._acquire()
            try:
                await self._balance()
            except BaseException:
                self._release()
                raise
            batch = self._pending[: self._max_size]
            del self._pending[: self._max_size]
            batch = [entry for entry in batch if not entry[1].done()]  # drop cancelled callers
            if not batch:
                self._release()
                continue
            self._spawn(f"batch-run:{self._name}", self._run_batch(batch))

    async def _balance(self) -> None:
        """With a slot taken: while fewer items wait than callers are still on their way, wait
        for some of them (at most ``max_wait`` from now). Otherwise streams that keep requests
        coming settle into whatever split they started with, e.g. batches of 2 and 6 taking
        turns, and a small batch runs while most callers decode; equal groups keep the model
        busy with one while the other decodes (8 streams on 2 CPUs: 4 + 4 ran ~15 % faster
        than 2 + 6 or 1 + 7, measured with bench/infer.py's model)."""
        deadline = asyncio.get_running_loop().time() + self._max_wait_s
        await self._wait_while(
            lambda: len(self._pending) < min(self._max_size, self._on_their_way()), deadline
        )

    async def _wait_while(self, wanted: Callable[[], bool], deadline: float) -> None:
        """Wait for submissions while ``wanted()`` holds, until the loop time ``deadline``."""
        loop = asyncio.get_running_loop()
        while wanted() and (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return

    async def _run_batch(self, batch: list[tuple[Any, asyncio.Future[Any], float]]) -> None:
        self._running_items += len(batch)
        try:
            self.batch_sizes.append(len(batch))
            results = await self._run(self._fn, [item for item, _, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # handed to every waiting caller
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future, _), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        finally:
            self._running_items -= len(batch)
            self._release()


class ModelManager:
    """Owns every :class:`ModelSlot`, the executors and the idle / LRU policy."""

    def __init__(self, settings: HostSettings, *, on_change: Callable[[ModelSlot], None]) -> None:
        self.settings = settings
        self._on_change = on_change
        self.slots: list[ModelSlot] = []
        self.tasks = TaskTracker("service-host")
        self._infer_pool: ThreadPoolExecutor | None = None
        self._prep_pool: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ slots

    def add(self, service_name: str, spec: ModelSpec, service: Service) -> ModelSlot:
        """Register a model; NOT_LOADED until :meth:`check` (or :meth:`check_soon`) says otherwise."""
        slot = ModelSlot(
            service_name=service_name,
            alias=spec.alias,
            spec=spec,
            service=service,
            semaphore=asyncio.Semaphore(max(1, self.settings.max_concurrency_per_model)),
        )
        self.slots.append(slot)
        return slot

    async def remove(self, slot: ModelSlot) -> None:
        """Forget ``slot`` (its service was disabled or its model changed). It is unloaded now if
        idle, else as soon as the last request using it finishes."""
        if slot not in self.slots:
            return
        self.slots.remove(slot)
        slot.removed = True
        self._cancel_idle(slot)
        if slot.load_task is not None:
            await asyncio.wait({slot.load_task})
        if slot.active == 0:
            await self.unload(slot)

    def check(self, slot: ModelSlot) -> None:
        """Run the service's availability check here and now: FAILED (with reason) or NOT_LOADED.

        Blocking (file reads, runtime probes): only for a host built before its loop runs;
        on the loop use :meth:`check_soon` / :meth:`check_async`."""
        if _needs_check(slot):
            self._apply_check(slot, _run_check(slot.service, slot.spec))

    def check_soon(self, slot: ModelSlot) -> asyncio.Task[None]:
        """The check of ``slot`` as a tracked task ``check:{key}`` (one at a time per slot)."""
        if slot.check_task is None:
            task = self.tasks.spawn(f"check:{slot.key}", self.check_async(slot))
            task.add_done_callback(functools.partial(_forget_check, slot))  # even if never started
            slot.check_task = task
        return slot.check_task

    async def check_async(self, slot: ModelSlot) -> None:
        """:meth:`check` with the check in the preprocessing executor; applied on the loop."""
        if _needs_check(slot):
            outcome = await self.in_prep_executor(_run_check, slot.service, slot.spec)
            if _needs_check(slot):  # a load may have started meanwhile
                self._apply_check(slot, outcome)

    def _apply_check(self, slot: ModelSlot, outcome: CheckOutcome) -> None:
        if outcome.runtime_label:
            slot.predicted_runtime = outcome.runtime_label
        if outcome.failure is not None:
            reason, retry = outcome.failure
            self._fail(slot, reason, retry=retry)
        elif slot.state is not ServiceState.NOT_LOADED or slot.reason:
            slot.failed_at = 0.0
            self._set(slot, ServiceState.NOT_LOADED, "")

    @property
    def loaded(self) -> list[ModelSlot]:
        return [s for s in self.slots if s.state is ServiceState.READY]

    # ------------------------------------------------------------------ executors

    def _pools(self) -> tuple[ThreadPoolExecutor, ThreadPoolExecutor]:
        if self._infer_pool is None or self._prep_pool is None:
            s = self.settings
            workers = max(2, s.max_loaded_models * max(1, s.max_concurrency_per_model) + 1)
            self._infer_pool = ThreadPoolExecutor(workers, thread_name_prefix="lumen-infer")
            self._prep_pool = ThreadPoolExecutor(4, thread_name_prefix="lumen-prep")
        return self._infer_pool, self._prep_pool

    async def in_executor(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.executor_future(fn, *args)

    def batch_runs_at_once(self, slot: ModelSlot) -> int:
        """Batches of one key that may run at once on ``slot``'s loaded model: on a CPU runtime
        as many as its threads fit in the CPUs (1 on small machines), else only the model's
        concurrency limit (0)."""
        if not slot.runtime.endswith("-cpu"):
            return 0
        from services.runtimes.onnx import cpu_runs_at_once

        return cpu_runs_at_once(self.settings.intra_op_threads)

    def executor_future(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` submitted to the inference executor (no task wraps the future)."""
        return asyncio.get_running_loop().run_in_executor(self._pools()[0], fn, *args)

    async def in_prep_executor(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pools()[1], fn, *args)

    # ------------------------------------------------------------------ leases and loading

    @asynccontextmanager
    async def lease(self, slot: ModelSlot, task: str = "") -> AsyncIterator[ModelLease]:
        slot.active_by_task[task] += 1  # counted while it waits for the load too
        try:
            await self.ensure_loaded(slot)
            self._cancel_idle(slot)
            slot.last_used = time.monotonic()
            yield ModelLease(self, slot, task)
        finally:
            slot.active_by_task[task] -= 1
            if not slot.active_by_task[task]:
                del slot.active_by_task[task]
            slot.last_used = time.monotonic()
            if slot.active == 0 and slot.removed:
                self._unload_soon(slot)
            elif slot.active == 0:
                self._restore_bound()
                self._schedule_idle(slot)

    async def ensure_loaded(self, slot: ModelSlot) -> None:
        if slot.check_task is not None:  # e.g. just released from a hold: its verdict first
            await _wait_shared(slot.check_task)
        if slot.state is ServiceState.READY:
            return
        if slot.state is ServiceState.FAILED:
            unavailable = ServiceUnavailable(f"{slot.key} is not available: {slot.reason}")
            if not slot.retry:
                raise unavailable
            if slot.load_failed:
                if time.monotonic() - slot.failed_at < FAILED_LOAD_RETRY_S:
                    raise unavailable
            else:
                await _wait_shared(self.check_soon(slot))  # the missing files may have arrived
                if slot.state is ServiceState.FAILED:
                    raise ServiceUnavailable(f"{slot.key} is not available: {slot.reason}")
        if slot.removed:
            raise ServiceUnavailable(f"{slot.key} is no longer configured on this node")
        if slot.load_task is None:
            slot.load_task = self.tasks.spawn(f"load:{slot.key}", self._load(slot))
        await _wait_shared(slot.load_task)
        if slot.state is not ServiceState.READY:
            raise ServiceUnavailable(f"{slot.key} is not available: {slot.reason or slot.state.value}")

    async def _load(self, slot: ModelSlot) -> None:
        try:
            self._set(slot, ServiceState.LOADING, "")
            await self._make_room(slot)
            started = time.monotonic()
            try:
                instance = await self._load_in_executor(slot)
            except ModelUnavailable as exc:
                self._fail(slot, exc.reason, retry=exc.retry)
                return
            except RuntimeUnavailable as exc:
                self._fail(slot, str(exc), retry=False)
                return
            except Exception as exc:
                log.warning("loading %s failed", slot.key, exc_info=True)
                self._fail(slot, f"loading failed: {exc}", retry=True, in_load=True)
                return
            slot.instance = instance
            slot.runtime = getattr(instance, "runtime", "") or slot.runtime
            slot.loads += 1
            slot.last_used = time.monotonic()
            log.info("loaded %s on %s in %.2fs", slot.key, slot.runtime, slot.last_used - started)
            self._set(slot, ServiceState.READY, "")
            self._restore_bound(keep=slot)
            if slot.active == 0:
                self._schedule_idle(slot)
        finally:
            slot.load_task = None

    async def _load_in_executor(self, slot: ModelSlot) -> LoadedModel:
        """``service.load`` in the inference executor. Cancelled (the host is closing), the
        thread still finishes the load: the model it returns is closed there and then."""
        future = self._pools()[0].submit(_load_and_release, slot.service, slot.spec)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(functools.partial(_close_abandoned, slot.key))
            raise

    async def _make_room(self, loading: ModelSlot) -> None:
        """Before loading ``loading``: unload idle models (least recently used first) until fewer
        than the limit are loaded or loading besides it."""
        limit = max(1, self.settings.max_loaded_models)
        while len(occupying := self._occupying(besides=loading)) >= limit:
            victim = self._idle_victim()
            if victim is None:
                log.warning(
                    "all %d loaded or loading models are busy; loading %s above the limit",
                    len(occupying),
                    loading.key,
                )
                return
            log.info("unloading %s (least recently used) to make room for %s", victim.key, loading.key)
            await self.unload(victim)

    def _restore_bound(self, keep: ModelSlot | None = None) -> None:
        """Unload idle models (least recently used first, never ``keep``) while more than the
        limit are loaded or loading (loads that went ahead above it while all were busy)."""
        limit = max(1, self.settings.max_loaded_models)
        while len(self._occupying()) > limit:
            victim = self._idle_victim(besides=keep)
            if victim is None:
                return
            log.info("unloading %s (least recently used): more than %d models loaded", victim.key, limit)
            self._unload_soon(victim)

    def _occupying(self, besides: ModelSlot | None = None) -> list[ModelSlot]:
        """The slots holding a model in memory, or about to (READY or LOADING)."""
        busy = (ServiceState.READY, ServiceState.LOADING)
        return [s for s in self.slots if s is not besides and s.state in busy]

    def _idle_victim(self, besides: ModelSlot | None = None) -> ModelSlot | None:
        idle = [s for s in self.slots if s is not besides and s.state is ServiceState.READY and s.active == 0]
        return min(idle, key=lambda s: s.last_used, default=None)

    async def unload(self, slot: ModelSlot) -> None:
        """Unload ``slot`` now (it must not be in use)."""
        held = self._detach(slot)
        if held:
            await self._close(slot, held)

    def _unload_soon(self, slot: ModelSlot) -> None:
        """Unload an unused ``slot``: detached at once, in the same step that saw it unused (a
        request arriving later loads it again instead of getting a model being closed)."""
        held = self._detach(slot)
        if held:
            self.tasks.spawn(f"unload:{slot.key}", self._close(slot, held))

    def _detach(self, slot: ModelSlot) -> list[LoadedModel]:
        """Take the loaded model off ``slot``: in a one-item list (empty if none), which the close
        empties — the only reference left, so the model is freed *before* memory is handed back."""
        self._cancel_idle(slot)
        held = [slot.instance] if slot.instance is not None else []
        slot.instance = None
        slot.batchers.clear()  # their batch functions are bound to the model
        if slot.state is ServiceState.READY:
            self._set(slot, ServiceState.NOT_LOADED, "")
        return held

    async def _close(self, slot: ModelSlot, held: list[LoadedModel]) -> None:
        await self.in_executor(_close_and_release, held)
        log.info("unloaded %s", slot.key)

    # ------------------------------------------------------------------ idle TTL

    def _schedule_idle(self, slot: ModelSlot) -> None:
        ttl = self.settings.model_idle_ttl_s
        if ttl <= 0 or slot.state is not ServiceState.READY:
            return
        self._cancel_idle(slot)
        slot.idle_handle = asyncio.get_running_loop().call_later(ttl, self._idle_expired, slot)

    def _cancel_idle(self, slot: ModelSlot) -> None:
        if slot.idle_handle is not None:
            slot.idle_handle.cancel()
            slot.idle_handle = None

    def _idle_expired(self, slot: ModelSlot) -> None:
        slot.idle_handle = None
        if slot.active == 0 and slot.state is ServiceState.READY:
            log.info("unloading %s after %.0fs idle", slot.key, self.settings.model_idle_ttl_s)
            self._unload_soon(slot)

    # ------------------------------------------------------------------ shutdown

    async def close(self, timeout: float = 10.0) -> None:
        """Wait (bounded) for loads in progress, unload every model, stop the executors."""
        loading = [s.load_task for s in self.slots if s.load_task is not None]
        if loading:
            await asyncio.wait(loading, timeout=timeout)
        for slot in self.slots:
            self._cancel_idle(slot)
            if slot.instance is not None:
                await self.unload(slot)
        await self.tasks.close()
        for pool in (self._infer_pool, self._prep_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._infer_pool = self._prep_pool = None

    # ------------------------------------------------------------------ state

    def _fail(self, slot: ModelSlot, reason: str, *, retry: bool, in_load: bool = False) -> None:
        slot.retry = retry
        slot.load_failed = in_load
        slot.failed_at = time.monotonic()
        self._set(slot, ServiceState.FAILED, reason)

    def _set(self, slot: ModelSlot, state: ServiceState, reason: str) -> None:
        if (slot.state, slot.reason) == (state, reason):
            return
        slot.state = state
        slot.reason = reason
        self._on_change(slot)


@dataclass(frozen=True)
class CheckOutcome:
    """What a service's check found: ``failure`` is (reason, retry) or None; the predicted
    runtime label comes along (probing providers is blocking too)."""

    failure: tuple[str, bool] | None
    runtime_label: str


async def _wait_shared(task: asyncio.Task[None]) -> None:
    """Wait for a load or check other requests share (a caller giving up does not cancel it).
    Cancelled by the host stopping, it is ServiceUnavailable to the waiting request."""
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        current = asyncio.current_task()
        cancelling = getattr(current, "cancelling", lambda: 0)  # Python 3.11+
        if task.cancelled() and not cancelling():
            raise ServiceUnavailable("the service host is stopping; try again once it runs") from None
        raise


def _forget_check(slot: ModelSlot, task: asyncio.Task[None]) -> None:
    if slot.check_task is task:
        slot.check_task = None


def _needs_check(slot: ModelSlot) -> bool:
    if slot.removed or slot.state in (ServiceState.READY, ServiceState.LOADING):
        return False
    return not (slot.state is ServiceState.FAILED and (not slot.retry or slot.load_failed))


def _run_check(service: Service, spec: ModelSpec) -> CheckOutcome:
    """Blocking: ``service.check`` and the runtime label (an executor runs it)."""
    return CheckOutcome(_check_failure(service, spec), _runtime_label(service, spec))


def _check_failure(service: Service, spec: ModelSpec) -> tuple[str, bool] | None:
    try:
        service.check(spec)
    except ModelUnavailable as exc:
        return exc.reason, exc.retry
    except RuntimeUnavailable as exc:
        return str(exc), False
    except Exception as exc:  # a broken check is a FAILED model, not a crashed host
        log.exception("checking %s/%s failed", service.name, spec.alias)
        return f"checking the model failed: {exc}", True
    return None


def _runtime_label(service: Service, spec: ModelSpec) -> str:
    try:
        return service.runtime_label(spec)
    except Exception:  # a label is cosmetic; never fail a check on it
        return spec.runtime


def _close_abandoned(key: str, future: Future[LoadedModel]) -> None:
    """Close a model whose load finished after the load was given up (runs in its thread)."""
    if future.cancelled() or future.exception() is not None:
        return
    log.info("closing %s: loaded after the host stopped waiting for it", key)
    try:
        _close_and_release([future.result()])
    except Exception:  # nobody waits for this callback: say it here
        log.exception("closing %s (loaded after the host stopped waiting) failed", key)


def _load_and_release(service: Service, spec: ModelSpec) -> LoadedModel:
    """Load, then hand the load's freed temporaries back to the OS (services.memory)."""
    instance = service.load(spec)
    release_free_memory()
    return instance


def _close_and_release(held: list[LoadedModel]) -> None:
    """Close the model in ``held`` (taking it out), free it, hand the memory back to the OS."""
    instance = held.pop()
    instance.close()
    del instance  # the last reference: tokenizer, datasets and the rest go now, not after the trim
    gc.collect()
    release_free_memory()
