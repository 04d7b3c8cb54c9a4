"""Logging for the node: the console plus a rotating file in the platform's log directory."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
LOG_FILE = "lumen-node.log"


def setup_logging(level: str | int = "INFO", log_dir: Path | None = None) -> Path | None:
    """Configure the root logger once; returns the log file path when file logging is on."""
    root = logging.getLogger()
    root.setLevel(level if isinstance(level, int) else level.upper())
    for handler in list(root.handlers):
        if getattr(handler, "_lumen", False):
            root.removeHandler(handler)
            handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
    console._lumen = True  # type: ignore[attr-defined]
    root.addHandler(console)
    # grpc and zeroconf are chatty at DEBUG; keep them at INFO unless asked.
    for noisy in ("grpc", "zeroconf", "asyncio", "urllib3", "httpx", "filelock"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.INFO))
    if log_dir is None:
        return None
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / LOG_FILE
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=5 * 1024 * 1024, backupCount=3, encoding="utf-8"
        )
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot write logs to %s: %s", log_dir, exc)
        return None
    file_handler.setFormatter(logging.Formatter(FORMAT))
    file_handler._lumen = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    return path
