"""The download manager: a queue of model repositories fetched with bounded parallelism.

For each repository (a :class:`~app.core.downloads.selection.ModelRequest`) it tries the sources
in order (region first, the other hub as fallback, a local folder before both), fetches
``model_info.json``, selects the files the configured runtimes need, checks free disk space,
downloads missing files in parallel into staging (resuming partial files, verifying size and
SHA-256), then commits them into the cache. Progress is published as immutable
:class:`~app.core.events.DownloadProgress` / :class:`~app.core.events.FileProgress` events on the
bus and to listeners.

Everything blocking (HTTP, disk, hashing) runs in a private thread pool; the coroutines here only
coordinate. Per repository: :meth:`pause`, :meth:`resume`, :meth:`cancel`. Partial files are kept
on pause, cancel, failure and :meth:`close`, so the next run continues where this one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from app.core.downloads.cache import ModelCache
from app.core.downloads.errors import (
    Aborted,
    Cancelled,
    DownloadError,
    Interrupted,
    NotEnoughSpace,
    Paused,
    SelectionError,
    SourceError,
    disk_error,
)
from app.core.downloads.progress import Meter, eta
from app.core.downloads.selection import MODEL_INFO, ModelRequest, plan_files
from app.core.downloads.sources import HttpClient, RemoteFile, RepoListing, Source, build_sources
from app.core.downloads.staging import Staging
from app.core.downloads.transfer import RetryPolicy, TransferControl, fetch_file, retrying
from app.core.events import DownloadProgress, DownloadState, EventBus, FileProgress
from app.core.tasks import TaskTracker
from services.model_info import MAX_MODEL_INFO_BYTES, ModelInfoError, parse_model_info_bytes

log = logging.getLogger(__name__)

T = TypeVar("T")
PROGRESS_INTERVAL_S = 0.25
THREAD_STOP_WAIT_S = 2.0
Listener = Callable[[object], None]


@dataclass(frozen=True)
class DownloadResult:
    model: str
    state: DownloadState  # DONE, FAILED or CANCELLED
    error: str = ""
    source: str = ""
    repo_id: str = ""
    bytes_total: int = 0
    bytes_fetched: int = 0  # received over the network in this run
    files_total: int = 0
    files_fetched: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.state is DownloadState.DONE


@dataclass
class _Plan:
    remotes: list[RemoteFile]
    cached: dict[str, str]  # path -> sha256 of the good cached copy
    fetch: list[RemoteFile]
    version: str


@dataclass(eq=False)
class DownloadJob:
    """One queued repository download. ``await job.wait()`` gives its :class:`DownloadResult`."""

    request: ModelRequest
    force: bool
    control: TransferControl = field(default_factory=TransferControl)
    meter: Meter = field(default_factory=Meter)
    state: DownloadState = DownloadState.QUEUED
    paused: bool = False
    cancelled: bool = False
    planned: bool = False  # the file list (and so the byte total) is known
    failing: bool = False  # a file failed: start no more files from this source
    source: Source | None = None
    listing: RepoListing | None = None
    followup: ModelRequest | None = None
    task: asyncio.Task[Any] | None = None
    result: DownloadResult | None = None
    _finished: asyncio.Event = field(default_factory=asyncio.Event)
    _resumed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def model(self) -> str:
        return self.request.model

    @property
    def active(self) -> bool:
        return not self.state.finished

    async def wait(self) -> DownloadResult:
        await self._finished.wait()
        assert self.result is not None
        return self.result


class DownloadManager:
    """Downloads model repositories for a NodeConfig (passed in)."""

    def __init__(
        self,
        config: Any,
        *,
        bus: EventBus | None = None,
        sources: Sequence[Source] | None = None,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        downloads = config.downloads
        self._config = config
        self._bus = bus
        self._interval = progress_interval_s
        self._policy = RetryPolicy(downloads.retries, downloads.retry_backoff_s, downloads.max_retry_wait_s)
        self._keep_free = downloads.keep_free_mb * 1024 * 1024
        self._max_files = downloads.max_parallel_files
        self._max_repos = downloads.max_parallel_repos
        self._http = HttpClient(
            connect_timeout=downloads.connect_timeout_s,
            read_timeout=downloads.read_timeout_s,
            pool_size=self._max_files + 2,
        )
        self._sources = list(sources) if sources is not None else build_sources(config, self._http)
        self.cache = ModelCache(Path(config.metadata.cache_dir) / "models")
        self._jobs: dict[str, DownloadJob] = {}
        self._latest: dict[str, DownloadProgress] = {}
        self._listeners: list[Listener] = []
        self._tasks = TaskTracker("downloads")
        self._executor: ThreadPoolExecutor | None = None
        self._repo_slots: asyncio.Semaphore | None = None
        self._file_slots: asyncio.Semaphore | None = None
        self._closed = False

    # ---------------------------------------------------------------- observation

    @property
    def sources(self) -> tuple[Source, ...]:
        return tuple(self._sources)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` on the loop thread for every DownloadProgress / FileProgress."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def events(self) -> AsyncIterator[DownloadProgress | FileProgress]:
        """The download events of the bus (needs a bus)."""
        if self._bus is None:
            raise RuntimeError("this DownloadManager has no event bus; use add_listener")
        async for event in self._bus.subscribe():
            if isinstance(event, DownloadProgress | FileProgress):
                yield event

    def progress(self, model: str) -> DownloadProgress | None:
        return self._latest.get(model)

    def snapshot(self) -> tuple[DownloadProgress, ...]:
        return tuple(self._latest.values())

    def job(self, model: str) -> DownloadJob | None:
        return self._jobs.get(model)

    # ---------------------------------------------------------------- commands

    async def missing(self, requests: Iterable[ModelRequest]) -> list[ModelRequest]:
        """The requests the cache does not satisfy yet."""
        requests = list(requests)
        checks = await asyncio.get_running_loop().run_in_executor(
            self._pool(), lambda: [self.cache.check(r) for r in requests]
        )
        return [r for r, check in zip(requests, checks, strict=True) if not check.satisfied]

    def submit(self, request: ModelRequest, *, force: bool = False) -> DownloadJob:
        """Queue ``request``. A model already being downloaded is not queued twice: its job is
        returned (and variants it lacks are fetched right after it)."""
        if self._closed:
            raise RuntimeError("the download manager is closed")
        current = self._jobs.get(request.model)
        if current is not None and current.active:
            if not set(request.variants) <= set(current.request.variants):
                current.followup = current.followup.merged(request) if current.followup else request
            return current
        job = DownloadJob(request=request, force=force)
        job._resumed.set()
        self._jobs[request.model] = job
        self._publish(job)
        job.task = self._tasks.spawn(f"download:{request.model}", self._run(job))
        return job

    async def download(
        self, requests: Iterable[ModelRequest], *, force: bool = False
    ) -> list[DownloadResult]:
        """Queue every request and wait for all of them."""
        jobs = [self.submit(r, force=force) for r in requests]
        return list(await asyncio.gather(*(j.wait() for j in jobs)))

    def pause(self, model: str) -> None:
        job = self._active_job(model)
        if job.paused:
            return
        job.paused = True
        job._resumed.clear()
        job.control.stop(Paused)
        if job.state is DownloadState.QUEUED:
            self._set_state(job, DownloadState.PAUSED)

    def resume(self, model: str) -> None:
        job = self._active_job(model)
        if not job.paused:
            return
        job.paused = False
        job.control.clear()
        job._resumed.set()
        if job.state is DownloadState.PAUSED:
            self._set_state(job, DownloadState.QUEUED)

    def cancel(self, model: str) -> None:
        """Stop the download (partial files are kept). Too late once the verified files are being
        moved into the cache: that finishes and the download ends DONE."""
        job = self._active_job(model)
        if job.state is DownloadState.VERIFYING:
            return
        job.cancelled = True
        job.control.stop(Cancelled)
        job._resumed.set()
        if job.task is not None:
            job.task.cancel()

    async def close(self, timeout: float = 3.0) -> None:
        """Cancel every download (partial files stay for resume) and release the workers."""
        self._closed = True
        for job in list(self._jobs.values()):
            if job.active:
                job.followup = None
                self.cancel(job.model)
        await self._tasks.close(timeout=timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        for source in self._sources:
            source.close()
        self._http.close()

    def _active_job(self, model: str) -> DownloadJob:
        job = self._jobs.get(model)
        if job is None or not job.active:
            running = ", ".join(m for m, j in self._jobs.items() if j.active) or "none"
            raise ValueError(f"no download of {model!r} is queued or running (active: {running})")
        return job

    # ---------------------------------------------------------------- job lifecycle

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_files + self._max_repos + 1, thread_name_prefix="lumen-download"
            )
        return self._executor

    def _slots(self) -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
        if self._repo_slots is None or self._file_slots is None:
            self._repo_slots = asyncio.Semaphore(self._max_repos)
            self._file_slots = asyncio.Semaphore(self._max_files)
        return self._repo_slots, self._file_slots

    async def _run(self, job: DownloadJob) -> None:
        started = time.monotonic()
        ticker = self._tasks.spawn(f"download:{job.model}:progress", self._tick(job))
        error = ""
        try:
            try:
                state = await self._run_job(job)
            except asyncio.CancelledError:
                if not (job.cancelled or self._closed):
                    raise
                state = DownloadState.CANCELLED  # close() also stops a job cancel() leaves alone
            except Cancelled:
                state = DownloadState.CANCELLED
            except DownloadError as exc:
                state, error = DownloadState.FAILED, str(exc)
            except OSError as exc:  # the disk, outside the transfers (which convert their own)
                log.warning("download of %s hit a disk error", job.model, exc_info=True)
                state, error = DownloadState.FAILED, str(disk_error(exc, self.cache.models_dir))
            except Exception as exc:  # a bug: report it instead of hanging the waiters
                log.exception("download of %s crashed", job.model)
                state, error = DownloadState.FAILED, f"internal error: {exc!r}"
        finally:
            ticker.cancel()
        if state is DownloadState.FAILED:
            log.error("download of %s failed: %s", job.model, error)
        elif state is DownloadState.CANCELLED:
            log.info("download of %s cancelled; partial files are kept for resume", job.model)
        bytes_done, bytes_total, files_done, files_total, _ = job.meter.totals()
        job.result = DownloadResult(
            model=job.model,
            state=state,
            error=error,
            source=job.source.name if job.source else "",
            repo_id=job.listing.repo_id if job.listing else "",
            bytes_total=bytes_total,
            bytes_fetched=job.meter.transferred,
            files_total=files_total,
            files_fetched=files_done,
            elapsed_s=time.monotonic() - started,
        )
        self._set_state(job, state, error=error)
        job._finished.set()
        if job.followup is not None and not self._closed and state is DownloadState.DONE:
            self.submit(job.request.merged(job.followup))

    async def _run_job(self, job: DownloadJob) -> DownloadState:
        repo_slots, _ = self._slots()
        failures: list[str] = []
        index = 0
        wipe = job.force
        while True:
            await job._resumed.wait()
            if job.cancelled:
                raise Cancelled()
            async with repo_slots:
                if job.paused:
                    continue
                try:
                    async with self._locked(job):
                        if wipe:  # under the lock: never the files of another process's download
                            await self._in_thread(job, self.cache.staging(job.model).clear)
                            wipe = False
                        while index < len(self._sources):
                            source = self._sources[index]
                            try:
                                await self._run_from(job, source)
                                return DownloadState.DONE
                            except DownloadError as exc:
                                if not exc.fallback:
                                    raise
                                text = str(exc)
                                failures.append(
                                    text if text.startswith(source.label) else f"{source.label}: {text}"
                                )
                                log.warning("%s: %s failed (%s)", job.model, source.label, exc)
                                job.control.clear()
                                index += 1
                                if job.paused:  # a pause that arrived as the source failed
                                    raise Paused() from None
                        if not failures:
                            raise DownloadError("no download source is configured")
                        if len(failures) == 1:
                            raise DownloadError(failures[0])
                        raise DownloadError("every source failed — " + "; ".join(failures))
                except Paused:
                    job.control.clear()
                    if job.paused:
                        job.meter.reset_speed()
                        self._set_state(job, DownloadState.PAUSED)
                    continue

    @contextlib.asynccontextmanager
    async def _locked(self, job: DownloadJob) -> AsyncIterator[None]:
        """Hold the model's staging lock; it is taken and given back in the pool (disk work)."""
        staging = self.cache.staging(job.model)
        taking = asyncio.get_running_loop().run_in_executor(self._pool(), staging.acquire)
        try:
            fd = await asyncio.shield(taking)
        except asyncio.CancelledError:  # the thread may still get the lock: give it back then
            taking.add_done_callback(partial(self._release_taken, staging))
            raise
        try:
            yield
        finally:
            await self._release(staging, fd)

    async def _release(self, staging: Staging, fd: int) -> None:
        if self._executor is None:  # the pool is gone (closing): releasing is quick
            staging.release(fd)
            return
        future = asyncio.get_running_loop().run_in_executor(self._executor, staging.release, fd)
        await asyncio.shield(future)  # if this task is cancelled meanwhile, the thread still releases

    def _release_taken(self, staging: Staging, taking: asyncio.Future[int]) -> None:
        if taking.cancelled() or taking.exception() is not None:
            return
        try:
            if self._executor is None:
                raise RuntimeError("the pool is gone")
            self._executor.submit(staging.release, taking.result())
        except RuntimeError:  # closed meanwhile: releasing is quick
            staging.release(taking.result())

    async def _run_from(self, job: DownloadJob, source: Source) -> None:
        if job.source is not source:  # a resume of the same source keeps its totals
            job.planned = False
        job.source = source
        job.listing = None
        job.failing = False
        self._set_state(job, DownloadState.DOWNLOADING)
        listing = await self._in_thread(
            job, retrying, partial(source.list_files, job.model), job.control, self._policy, source.label
        )
        job.listing = listing
        info_remote = listing.files.get(MODEL_INFO)
        if info_remote is None:
            raise SourceError(
                f"{source.label} repository {listing.repo_id} has no {MODEL_INFO}; it is not a Lumen model"
            )
        if info_remote.size > MAX_MODEL_INFO_BYTES:
            raise SelectionError(f"{listing.repo_id}: {MODEL_INFO} is {info_remote.size} bytes, too large")
        if not job.planned:
            job.meter.setup([(MODEL_INFO, info_remote.size)])
        raw = await self._in_thread(job, self._model_info_bytes, job, source, listing, info_remote)
        try:
            info = parse_model_info_bytes(raw, source=f"{listing.repo_id}/{MODEL_INFO}")
        except ModelInfoError as exc:
            raise SelectionError(str(exc)) from exc
        paths = plan_files(info, listing.files, job.request.variants)
        remotes = [listing.files[p] for p in paths]
        plan = await self._in_thread(job, self._plan, job, source, listing, remotes, info.version)
        job.meter.setup(((r.path, r.size) for r in remotes), present=plan.cached)
        job.planned = True
        for rel in plan.cached:
            self._file_event(job, rel, DownloadState.DONE)
        self._publish(job)
        await self._fetch_all(job, source, listing, plan)
        self._set_state(job, DownloadState.VERIFYING)
        await self._in_thread(job, self._commit, job, listing, plan)

    # ---------------------------------------------------------------- steps (worker threads)

    def _model_info_bytes(
        self, job: DownloadJob, source: Source, listing: RepoListing, remote: RemoteFile
    ) -> bytes:
        if not job.force and self.cache.cached_digest(job.model, remote):
            return (self.cache.model_dir(job.model) / MODEL_INFO).read_bytes()
        staging = self.cache.staging(job.model)

        def on_bytes(path: str, on_disk: int, transferred: bool) -> None:
            job.meter.update(path, on_disk, transferred=transferred)

        fetch_file(source, listing, remote, staging, job.control, self._policy, on_bytes, lambda *_: None)
        return staging.partial(MODEL_INFO).read_bytes()

    def _plan(
        self, job: DownloadJob, source: Source, listing: RepoListing, remotes: list[RemoteFile], version: str
    ) -> _Plan:
        cached: dict[str, str] = {}
        fetch: list[RemoteFile] = []
        for remote in remotes:
            digest = None
            if not job.force:
                digest = self.cache.cached_digest(job.model, remote) or self.cache.adopt(
                    job.model,
                    remote,
                    lambda _: job.control.check(),  # a cancel stops a long hash
                )
                if not digest and not remote.sha256 and not remote.git_sha1:
                    # a source without hashes (the local folder) cannot prove its copy is better
                    # than a cached one of the same size that was verified: keep that (--force copies)
                    digest = self.cache.recorded_digest(job.model, remote)
            if digest:
                cached[remote.path] = digest
            else:
                fetch.append(remote)
            job.control.check()
        staging = self.cache.staging(job.model)
        needed = sum(r.size - staging.staged_bytes(r.path, r, source.name) for r in fetch)
        if needed > 0:  # nothing to write, nothing to check (keep_free_mb is about new bytes)
            self._check_space(job.model, staging.root, needed)
        fetch.sort(key=lambda r: r.size, reverse=True)  # largest first: the shortest total time
        return _Plan(remotes=remotes, cached=cached, fetch=fetch, version=version)

    def _check_space(self, model: str, where: Path, needed: int) -> None:
        probe = where
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        free = shutil.disk_usage(probe).free
        if free - needed < self._keep_free:
            short = needed + self._keep_free - free
            raise NotEnoughSpace(
                f"not enough disk space for {model}: it needs {format_bytes(needed)} more and "
                f"{format_bytes(self._keep_free)} must stay free (downloads.keep_free_mb), but {probe} has "
                f"{format_bytes(free)} free; free up {format_bytes(short)} or move metadata.cache_dir"
            )

    def _commit(self, job: DownloadJob, listing: RepoListing, plan: _Plan) -> None:
        staging = self.cache.staging(job.model)
        digests = {
            **plan.cached,
            **{r.path: staging.verified_digest(r.path, r, listing.source) for r in plan.fetch},
        }
        missing = [path for path, digest in digests.items() if not digest]
        if missing:  # cannot happen unless staging was tampered with meanwhile
            raise DownloadError(f"{job.model}: staged files vanished before the commit: {', '.join(missing)}")
        records = {
            r.path: {
                k: v
                for k, v in {
                    "size": r.size,
                    "sha256": digests[r.path],
                    "git_sha1": r.git_sha1,
                    "etag": r.etag,
                }.items()
                if v is not None
            }
            for r in plan.remotes
        }
        self.cache.commit(
            job.model,
            {r.path: staging.partial(r.path) for r in plan.fetch},
            records,
            source=listing.source,
            repo_id=listing.repo_id,
            revision=listing.revision,
            version=plan.version,
        )
        staging.clear()

    # ---------------------------------------------------------------- parallel files

    async def _fetch_all(self, job: DownloadJob, source: Source, listing: RepoListing, plan: _Plan) -> None:
        if not plan.fetch:
            return
        tasks = [
            self._tasks.spawn(f"download:{job.model}:{r.path}", self._fetch_one(job, source, listing, r))
            for r in plan.fetch
        ]
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            job.control.stop(Cancelled)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=THREAD_STOP_WAIT_S)
            raise
        errors = [t.result() for t in tasks if not t.cancelled() and t.result() is not None]
        if errors:
            raise min(errors, key=_error_rank)

    async def _fetch_one(
        self, job: DownloadJob, source: Source, listing: RepoListing, remote: RemoteFile
    ) -> BaseException | None:
        """Fetch one file; returns the exception that stopped it (None when it is verified).

        After a failure the job starts no more files, but transfers in flight finish: their
        bytes are good for the next source or the next run."""
        _, file_slots = self._slots()
        staging = self.cache.staging(job.model)
        loop = asyncio.get_running_loop()

        def on_bytes(path: str, on_disk: int, transferred: bool) -> None:
            job.meter.update(path, on_disk, transferred=transferred)

        def on_state(path: str, state: str) -> None:
            loop.call_soon_threadsafe(self._file_event, job, path, DownloadState(state))

        async with file_slots:
            if job.failing or job.control.stopping is not None:
                return job.control.stopping() if job.control.stopping else Aborted()
            self._file_event(job, remote.path, DownloadState.DOWNLOADING)
            try:
                await self._in_thread(
                    job, fetch_file, source, listing, remote, staging, job.control, self._policy,
                    on_bytes, on_state,
                )  # fmt: skip
            except Interrupted as exc:
                self._file_event(
                    job, remote.path, DownloadState.PAUSED if job.paused else DownloadState.QUEUED
                )
                return exc
            except Exception as exc:
                job.failing = True
                self._file_event(job, remote.path, DownloadState.FAILED)
                return exc
        self._file_event(job, remote.path, DownloadState.DONE)
        return None

    async def _in_thread(self, job: DownloadJob, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn`` in the pool; if this coroutine is cancelled, stop the job's transfers
        and give the thread a moment to notice before re-raising."""
        future = asyncio.get_running_loop().run_in_executor(self._pool(), fn, *args)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            job.control.stop(Cancelled)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(future, THREAD_STOP_WAIT_S)
            raise

    # ---------------------------------------------------------------- events

    async def _tick(self, job: DownloadJob) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if job.state in (DownloadState.DOWNLOADING, DownloadState.VERIFYING):
                self._publish(job)

    def _file_event(self, job: DownloadJob, path: str, state: DownloadState) -> None:
        snap = job.meter.set_state(path, state)
        if snap is not None:
            self._emit(FileProgress(job.model, path, state, snap.bytes_done, snap.bytes_total))

    def _set_state(self, job: DownloadJob, state: DownloadState, *, error: str = "") -> None:
        job.state = state
        self._publish(job, error=error)

    def _publish(self, job: DownloadJob, *, error: str = "") -> None:
        for snap in job.meter.take_dirty():
            self._emit(FileProgress(job.model, snap.path, snap.state, snap.bytes_done, snap.bytes_total))
        bytes_done, bytes_total, files_done, files_total, current = job.meter.totals()
        if not job.planned:  # only model_info.json is known: the totals would mislead
            bytes_done = bytes_total = files_done = files_total = 0
        running = job.state is DownloadState.DOWNLOADING
        speed = job.meter.sample() if running else 0.0
        if job.state is DownloadState.DONE:
            bytes_done, files_done, current = bytes_total, files_total, ""
        event = DownloadProgress(
            model=job.model,
            repo_id=job.listing.repo_id
            if job.listing
            else (job.source.repo_id(job.model) if job.source else ""),
            source=job.source.name if job.source else "",
            state=job.state,
            bytes_done=bytes_done,
            bytes_total=bytes_total,
            files_done=files_done,
            files_total=files_total,
            current_file=current if running else "",
            speed_bps=speed,
            eta_s=eta(bytes_total - bytes_done, speed) if running and bytes_total else None,
            error=error,
            services=job.request.services,
        )
        if self._latest.get(job.model) == event:
            return  # nothing new to say
        self._emit(event)

    def _emit(self, event: DownloadProgress | FileProgress) -> None:
        if isinstance(event, DownloadProgress):
            self._latest[event.model] = event
        if self._bus is not None:
            self._bus.publish(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not break downloads
                log.exception("download progress listener failed")


def _error_rank(exc: BaseException) -> int:
    """Which of the files' errors ends the job: a stop request, then the real failure, and only
    then the Aborted of the siblings it stopped (they say nothing about what went wrong)."""
    for rank, kind in enumerate((Cancelled, Paused, DownloadError)):
        if isinstance(exc, kind):
            return rank
    if not isinstance(exc, Interrupted):
        return 3  # an unexpected error: still more telling than Aborted
    return 4 if isinstance(exc, Aborted) else 5


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


__all__ = ["DownloadJob", "DownloadManager", "DownloadResult", "format_bytes"]
