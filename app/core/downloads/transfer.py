"""Fetching one file into staging: ranged resume, hashing while writing, retries, verification.

Runs in a worker thread. A :class:`TransferControl` (one per repository download) lets the event
loop pause, cancel or abort every transfer of that repository: transfers check it between chunks,
and a pending socket read is unblocked by shutting the socket down.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from app.core.downloads.cache import HASH_CHUNK
from app.core.downloads.errors import (
    Aborted,
    Cancelled,
    DownloadError,
    Paused,
    TransientError,
    VerificationError,
)
from app.core.downloads.sources.base import ByteStream, RemoteFile, RepoListing, Source
from app.core.downloads.sources.http import RangeRefused
from app.core.downloads.staging import Staging, writing

log = logging.getLogger(__name__)

T = TypeVar("T")
CHUNK = 1024 * 1024
WRITEBACK_BYTES = 16 * 1024 * 1024
_FADVISE = getattr(os, "POSIX_FADV_DONTNEED", None) if hasattr(os, "posix_fadvise") else None


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5  # further attempts after a failed one (reset whenever bytes arrive)
    backoff_s: float = 1.0  # first wait, doubled per attempt, ±20 % jitter
    max_wait_s: float = 60.0  # cap on one wait, Retry-After included

    def wait(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_wait_s)
        base = self.backoff_s * (2 ** (attempt - 1))
        return min(base * random.uniform(0.8, 1.2), self.max_wait_s)


class TransferControl:
    """Pause / cancel / abort switch shared by the transfers of one repository download."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop: type[Exception] | None = None
        self._wake = threading.Event()
        self._streams: set[ByteStream] = set()

    def stop(self, reason: type[Exception]) -> None:
        """Make every transfer raise ``reason`` (Paused, Cancelled, Aborted) as soon as possible."""
        with self._lock:
            if self._stop is None or reason is Cancelled:
                self._stop = reason
            streams = list(self._streams)
        self._wake.set()
        for stream in streams:
            stream.abort()

    def clear(self) -> None:
        with self._lock:
            self._stop = None
        self._wake.clear()

    @property
    def stopping(self) -> type[Exception] | None:
        return self._stop

    def check(self) -> None:
        reason = self._stop
        if reason is not None:
            raise reason()

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless stopped meanwhile."""
        if seconds > 0:
            self._wake.wait(seconds)
        self.check()

    def register(self, stream: ByteStream) -> None:
        with self._lock:
            self._streams.add(stream)
            stopping = self._stop
        if stopping is not None:
            stream.abort()

    def unregister(self, stream: ByteStream) -> None:
        with self._lock:
            self._streams.discard(stream)


def retrying(fn: Callable[[], T], control: TransferControl, policy: RetryPolicy, what: str) -> T:
    """``fn()``, retried with backoff on :class:`TransientError` (listings and other small calls)."""
    failures = 0
    while True:
        control.check()
        try:
            return fn()
        except TransientError as exc:
            failures += 1
            if failures > policy.retries:
                raise DownloadError(f"{exc} (gave up after {failures} failed attempts)") from exc
            wait = policy.wait(failures, exc.retry_after)
            log.info("%s: %s; retrying in %.1fs", what, exc, wait)
            control.sleep(wait)


ProgressFn = Callable[[str, int, bool], None]  # (path, bytes on disk now, whether they just arrived)
StateFn = Callable[[str, str], None]  # (path, "downloading" | "verifying")


def fetch_file(
    source: Source,
    listing: RepoListing,
    remote: RemoteFile,
    staging: Staging,
    control: TransferControl,
    policy: RetryPolicy,
    on_bytes: ProgressFn,
    on_state: StateFn,
) -> str:
    """Download ``remote`` into staging (resuming what is there), verify it, return its SHA-256.

    Raises VerificationError when it is still wrong after one full re-fetch, DownloadError after
    the retries are spent (NotEnoughSpace / DiskError when staging cannot be written),
    Interrupted subclasses when stopped."""
    rel = remote.path
    with writing(staging.partial(rel)):
        failures = 0
        refetched = False
        while True:
            control.check()
            digest = staging.verified_digest(rel, remote, listing.source)
            if digest:
                on_bytes(rel, remote.size, False)
                return digest
            offset = staging.prepare(rel, remote, listing.source)
            on_bytes(rel, offset, False)
            before = offset
            try:
                sha256, git_sha1, offset = _receive(
                    source, listing, remote, staging, control, offset, on_bytes
                )
                on_state(rel, "verifying")
                problem = _verify(remote, offset, sha256, git_sha1)
            except VerificationError as exc:  # the server sent too much
                problem, sha256 = str(exc), ""
            except TransientError as exc:
                if isinstance(exc.__cause__, RangeRefused):
                    staging.reset(rel)
                gained = staging.staged_bytes(rel, remote, listing.source) > before
                failures = 1 if gained else failures + 1
                if failures > policy.retries:
                    raise DownloadError(
                        f"{rel}: {exc} (gave up after {failures} failed attempt{'s' if failures > 1 else ''})"
                    ) from exc
                wait = policy.wait(failures, exc.retry_after)
                log.info("%s from %s: %s; retrying in %.1fs", rel, listing.source, exc, wait)
                control.sleep(wait)
                continue
            if problem is None:
                staging.mark_verified(rel, remote, listing.source, sha256)
                return sha256
            staging.reset(rel)
            if refetched:
                raise VerificationError(
                    f"{rel} from {listing.source}: {problem}, again after a fresh download"
                )
            log.warning("%s from %s: %s; downloading it again", rel, listing.source, problem)
            refetched = True
            on_state(rel, "downloading")


def _receive(
    source: Source,
    listing: RepoListing,
    remote: RemoteFile,
    staging: Staging,
    control: TransferControl,
    offset: int,
    on_bytes: ProgressFn,
) -> tuple[str, str | None, int]:
    """Bring the partial file to its full size; returns (sha256, git sha1, size on disk)."""
    rel = remote.path
    partial = staging.partial(rel)
    sha = hashlib.sha256()
    git = hashlib.sha1(f"blob {remote.size}\0".encode(), usedforsecurity=False) if remote.git_sha1 else None
    with partial.open("r+b") as out:
        if offset < remote.size:
            stream = source.open(listing, remote, offset)
            control.register(stream)
            try:
                if stream.start != offset:  # the server ignored the range: start over
                    log.info("%s: %s ignored the range request; fetching from byte 0", rel, listing.source)
                    offset = stream.start
                    out.truncate(offset)
                    on_bytes(rel, offset, False)
                _hash_prefix(out, offset, sha, git, control)
                out.seek(offset)
                out.truncate()
                offset = _copy(stream, out, remote, offset, sha, git, control, on_bytes)
            except TransientError:
                control.check()  # a shut-down socket during pause/cancel is not a network error
                raise
            finally:
                control.unregister(stream)
                stream.close()
                out.flush()
        else:
            _hash_prefix(out, offset, sha, git, control)
        out.flush()
        os.fsync(out.fileno())
    if offset < remote.size:
        raise TransientError(f"{rel}: the connection ended after {offset} of {remote.size} bytes")
    return sha.hexdigest(), git.hexdigest() if git else None, offset


def _copy(
    stream: ByteStream,
    out: BinaryIO,
    remote: RemoteFile,
    offset: int,
    sha: hashlib._Hash,
    git: hashlib._Hash | None,
    control: TransferControl,
    on_bytes: ProgressFn,
) -> int:
    flushed = offset
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            return offset
        if offset + len(chunk) > remote.size:
            raise VerificationError(
                f"{remote.path}: the server sent more than the {remote.size} bytes the repository lists"
            )
        out.write(chunk)
        sha.update(chunk)
        if git is not None:
            git.update(chunk)
        offset += len(chunk)
        if offset - flushed >= WRITEBACK_BYTES:
            _start_writeback(out, flushed, offset - flushed)
            flushed = offset
        on_bytes(remote.path, offset, True)
        control.check()


def _start_writeback(out: BinaryIO, start: int, length: int) -> None:
    """Let the kernel write what was received so far (and drop it from the page cache: it is
    hashed already), so the final fsync has little left to wait for. Linux only; a no-op elsewhere."""
    if _FADVISE is None:
        return
    out.flush()
    try:
        os.posix_fadvise(out.fileno(), start, length, _FADVISE)
    except OSError:
        pass


def _hash_prefix(
    handle: BinaryIO, length: int, sha: hashlib._Hash, git: hashlib._Hash | None, control: TransferControl
) -> None:
    """Feed the first ``length`` bytes already on disk into the hashers (resume)."""
    handle.seek(0)
    remaining = length
    while remaining > 0:
        block = handle.read(min(HASH_CHUNK, remaining))
        if not block:
            raise TransientError(f"the partial file ended {remaining} bytes early")
        sha.update(block)
        if git is not None:
            git.update(block)
        remaining -= len(block)
        control.check()


def _verify(remote: RemoteFile, size: int, sha256: str, git_sha1: str | None) -> str | None:
    if size != remote.size:
        return f"size {size} bytes, expected {remote.size}"
    if remote.sha256 and sha256 != remote.sha256:
        return f"SHA-256 {sha256}, expected {remote.sha256}"
    if remote.git_sha1 and git_sha1 != remote.git_sha1:
        return f"git blob id {git_sha1}, expected {remote.git_sha1}"
    return None


__all__ = ["Aborted", "Cancelled", "Paused", "RetryPolicy", "TransferControl", "fetch_file"]
