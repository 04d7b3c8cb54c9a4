"""Thread-safe byte accounting for one repository download, and the speed / ETA estimate.

Worker threads report "this file now has N bytes on disk"; the event loop reads totals on a
timer and publishes immutable progress events from them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from app.core.events import DownloadState

SPEED_WINDOW_S = 5.0


@dataclass(frozen=True)
class FileSnapshot:
    path: str
    state: DownloadState
    bytes_done: int
    bytes_total: int


class Meter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._size: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._state: dict[str, DownloadState] = {}
        self._dirty: set[str] = set()
        self._active: list[str] = []
        self.transferred = 0  # bytes received over the network in this run
        self._samples: deque[tuple[float, int]] = deque()

    def setup(self, files: Iterable[tuple[str, int]], present: Iterable[str] = ()) -> None:
        """Start accounting ``files`` (path, size); ``present`` ones are already complete."""
        done = set(present)
        with self._lock:
            old_done, old_state = self._done, self._state
            self._size, self._done, self._state = {}, {}, {}
            self._active.clear()
            for path, size in files:
                self._size[path] = size
                if path in done:
                    self._done[path], self._state[path] = size, DownloadState.DONE
                elif old_state.get(path) is DownloadState.DONE:
                    self._done[path], self._state[path] = size, DownloadState.DONE
                else:
                    self._done[path] = min(old_done.get(path, 0), size)
                    self._state[path] = DownloadState.QUEUED
                self._dirty.add(path)

    def update(self, path: str, on_disk: int, *, transferred: bool) -> None:
        with self._lock:
            if path not in self._size:
                return
            previous = self._done.get(path, 0)
            if transferred and on_disk > previous:
                self.transferred += on_disk - previous
            self._done[path] = on_disk
            self._dirty.add(path)

    def set_state(self, path: str, state: DownloadState) -> FileSnapshot | None:
        with self._lock:
            if path not in self._size:
                return None
            self._state[path] = state
            if state is DownloadState.DONE:
                self._done[path] = self._size[path]
            if state is DownloadState.DOWNLOADING and path not in self._active:
                self._active.append(path)
            elif state is not DownloadState.DOWNLOADING and state is not DownloadState.VERIFYING:
                if path in self._active:
                    self._active.remove(path)
            self._dirty.discard(path)
            return FileSnapshot(path, state, self._done[path], self._size[path])

    def take_dirty(self) -> list[FileSnapshot]:
        with self._lock:
            out = [FileSnapshot(p, self._state[p], self._done[p], self._size[p]) for p in sorted(self._dirty)]
            self._dirty.clear()
        return out

    def totals(self) -> tuple[int, int, int, int, str]:
        """(bytes done, bytes total, files done, files total, current file)."""
        with self._lock:
            done = sum(self._done.values())
            total = sum(self._size.values())
            files_done = sum(1 for s in self._state.values() if s is DownloadState.DONE)
            current = self._active[0] if self._active else ""
            return done, total, files_done, len(self._size), current

    def sample(self, now: float | None = None) -> float:
        """Record the transferred count and return bytes per second over the last few seconds."""
        now = time.monotonic() if now is None else now
        self._samples.append((now, self.transferred))
        while len(self._samples) > 2 and now - self._samples[0][0] > SPEED_WINDOW_S:
            self._samples.popleft()
        first_t, first_b = self._samples[0]
        span = now - first_t
        return (self.transferred - first_b) / span if span > 0.2 else 0.0

    def reset_speed(self) -> None:
        self._samples.clear()


def eta(remaining: int, speed: float) -> float | None:
    return remaining / speed if speed > 0 and remaining >= 0 else None
