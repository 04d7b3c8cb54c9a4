"""Showing download progress in a terminal: live bars on a TTY, plain log lines otherwise.

:class:`ProgressView` is a download-manager listener. On a terminal it redraws one line per
repository in place (ANSI cursor movement, no extra dependency); when the output is a pipe or a
file it prints a line on every state change and every 25 % of progress, so logs stay short.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

from app.core.downloads import format_bytes
from app.core.events import DownloadProgress, DownloadState

REDRAW_INTERVAL_S = 0.1
LOG_STEP = 25  # percent between log lines when not on a TTY


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def percent(event: DownloadProgress) -> int:
    if event.state is DownloadState.DONE:
        return 100
    return int(100 * event.bytes_done / event.bytes_total) if event.bytes_total else 0


def bar_line(event: DownloadProgress, name_width: int, width: int) -> str:
    """``TestCLIP  [######......]  45%  1.2 MB/2.7 MB  3.1 MB/s  ETA 0:02  onnx/vision.onnx``"""
    pct = percent(event)
    sizes = f"{format_bytes(event.bytes_done)}/{format_bytes(event.bytes_total)}" if event.bytes_total else ""
    if event.state is DownloadState.DOWNLOADING and event.bytes_total:
        tail = f"{format_bytes(event.speed_bps)}/s  ETA {format_duration(event.eta_s)}  {event.current_file}"
    elif event.state is DownloadState.FAILED:
        tail = "failed"
    else:
        tail = event.state.value
    head = f"{event.model:<{name_width}}  "
    bar_width = max(10, min(30, width - len(head) - 60))
    filled = bar_width * pct // 100
    line = f"{head}[{'#' * filled}{'.' * (bar_width - filled)}] {pct:3d}%  {sizes:<19} {tail}"
    return line[: max(20, width - 1)]


def log_line(event: DownloadProgress) -> str:
    where = f" from {event.source} ({event.repo_id})" if event.source else ""
    if event.state is DownloadState.DOWNLOADING and event.bytes_total:
        return (
            f"{event.model}: downloading{where}: {percent(event)}% ({format_bytes(event.bytes_done)} of "
            f"{format_bytes(event.bytes_total)}, {format_bytes(event.speed_bps)}/s, "
            f"ETA {format_duration(event.eta_s)})"
        )
    if event.state is DownloadState.FAILED:
        return f"{event.model}: failed: {event.error}"
    if event.state is DownloadState.DONE:
        return f"{event.model}: done, {format_bytes(event.bytes_total)}{where}"
    return f"{event.model}: {event.state.value}{where}"


class ProgressView:
    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        width: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._width = width or shutil.get_terminal_size((100, 24)).columns
        self._clock = clock
        self._latest: dict[str, DownloadProgress] = {}
        self._drawn_lines = 0
        self._last_draw = float("-inf")
        self._logged: dict[str, tuple[DownloadState, int]] = {}

    def __call__(self, event: object) -> None:
        if not isinstance(event, DownloadProgress):
            return
        self._latest[event.model] = event
        if self._tty:
            if (
                event.state is not DownloadState.DOWNLOADING
                or self._clock() - self._last_draw >= REDRAW_INTERVAL_S
            ):
                self.redraw()
        else:
            self._log(event)

    def redraw(self) -> None:
        if not self._tty or not self._latest:
            return
        name_width = max(len(m) for m in self._latest)
        out = []
        if self._drawn_lines:
            out.append(f"\x1b[{self._drawn_lines}F")  # back to the first bar
        for event in self._latest.values():
            out.append("\x1b[2K" + bar_line(event, name_width, self._width) + "\n")
        self._stream.write("".join(out))
        self._stream.flush()
        self._drawn_lines = len(self._latest)
        self._last_draw = self._clock()

    def _log(self, event: DownloadProgress) -> None:
        step = percent(event) // LOG_STEP
        previous = self._logged.get(event.model)
        if previous is not None and previous == (event.state, step):
            return
        if event.state is DownloadState.DOWNLOADING and not event.bytes_total:
            if previous is not None and previous[0] is DownloadState.DOWNLOADING:
                return
        self._logged[event.model] = (event.state, step)
        self._stream.write(log_line(event) + "\n")
        self._stream.flush()

    def finish(self) -> None:
        self.redraw()
