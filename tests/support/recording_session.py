"""A session wrapper that records what a real session was asked to do (batch sizes, overlap,
closing), for tests of batching, concurrency and unloading. It wraps a real runtime session."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from services.runtimes import Session, open_session


class RecordingSession:
    def __init__(self, inner: Session, *, delay_s: float = 0.0) -> None:
        self.inner = inner
        self.runtime = inner.runtime
        self.inputs = inner.inputs
        self.outputs = inner.outputs
        self.delay_s = delay_s
        self.batch_sizes: list[int] = []
        self.closed = False
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def run(
        self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        with self._lock:
            self.batch_sizes.append(int(next(iter(feeds.values())).shape[0]))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            return self.inner.run(feeds, output_names)
        finally:
            with self._lock:
                self.running -= 1

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class SessionRecorder:
    """A ``session_factory`` for :class:`services.clip.service.ClipService` that opens real
    sessions and keeps a :class:`RecordingSession` per opened file (newest last)."""

    def __init__(self, *, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.sessions: list[tuple[Path, RecordingSession]] = []

    def __call__(self, path: Path, runtime: str, *args: Any, **kwargs: Any) -> RecordingSession:
        session = RecordingSession(open_session(path, runtime, *args, **kwargs), delay_s=self.delay_s)
        self.sessions.append((Path(path), session))
        return session

    def of(self, component: str) -> list[RecordingSession]:
        """Every session opened for ``component`` (``vision`` / ``text``), oldest first."""
        return [s for p, s in self.sessions if p.name.startswith(component + ".")]

    def factory(self, service_cls: Callable[..., Any]) -> Callable[..., Any]:
        return lambda spec, settings: service_cls(spec, settings, session_factory=self)
