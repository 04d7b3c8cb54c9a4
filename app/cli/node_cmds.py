"""``lumen-hub start``: run the node, under the tray app when there is a display, else headless."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any

from app.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "start",
        help="start the node (tray app when a display is available, else headless)",
        description="Start the Lumen node: bind the gRPC port, serve health, advertise on mDNS.",
    )
    p.add_argument("--config", type=Path, help="config file (default: $LUMEN_CONFIG or the platform path)")
    p.add_argument("--headless", action="store_true", help="never start the tray app")
    p.add_argument("--port", type=int, help="main gRPC port (overrides the config)")
    p.set_defaults(func=cmd_start)


def has_display() -> bool:
    """True where a tray app could show: macOS/Windows, or X11/Wayland on Linux."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def gui_available() -> bool:
    return (
        importlib.util.find_spec("PySide6") is not None
        and importlib.util.find_spec("qasync") is not None
        and importlib.util.find_spec("app.gui.tray_app") is not None
    )


def cmd_start(args: argparse.Namespace) -> int:
    from app.core import paths
    from app.core.config import ConfigError, default_config, load_config, save_config
    from app.core.grpc.server import PortInUseError
    from app.core.identity import load_or_create_node_id
    from app.core.logging_setup import setup_logging
    from app.core.node import Node

    config_path: Path = paths.resolve_config_path(args.config)
    if not config_path.exists():
        if args.config is not None or os.environ.get("LUMEN_CONFIG"):
            return _refuse(
                f"no config file at {config_path}",
                "Create one with `lumen-hub init clip,face --config PATH`.",
            )
        cfg = default_config(["clip"], region="other")
        try:
            save_config(cfg, config_path)
        except OSError as exc:
            return _refuse(
                f"cannot write a default config to {config_path}: {exc.strerror}",
                "Pass --config PATH (or set LUMEN_CONFIG) to a writable location.",
            )
        print(f"No config found; wrote a default one (service: clip) to {config_path}", file=sys.stderr)
        print("Edit it, or run `lumen-hub init SERVICES --force` to choose services.", file=sys.stderr)
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        return _refuse(f"{config_path} is not valid:\n{exc}")
    if args.port is not None:
        try:
            cfg.with_main_port(args.port)
        except ConfigError as exc:
            return _refuse(f"--port {args.port}: {exc}", code=EXIT_USAGE)

    level = "DEBUG" if getattr(args, "verbose", False) else cfg.node.log_level
    log_file = setup_logging(level, paths.log_dir())
    if log_file:
        log.info("logging to %s", log_file)
    try:
        node_id = load_or_create_node_id(paths.state_dir())
    except OSError as exc:
        return _refuse(
            f"cannot keep the node id in {paths.state_dir()}: {exc.strerror}",
            "Make that folder writable, or set XDG_STATE_HOME to a writable location.",
        )
    node = Node.from_config(cfg, node_id=node_id, config_path=config_path, port=args.port)
    headless = args.headless or not has_display() or not gui_available()
    try:
        if headless:
            from app.headless import run_headless

            run_headless(node)
        else:
            from app.gui.tray_app import run_tray

            run_tray(node)
    except PortInUseError as exc:
        log.error("%s", exc)
        return _refuse(str(exc))
    return EXIT_OK


def _refuse(message: str, hint: str = "", *, code: int = EXIT_FAILURE) -> int:
    """Say on stderr why the node does not start (and what to do), and give the exit code."""
    print(f"lumen-hub start: {message}", file=sys.stderr)
    if hint:
        print(hint, file=sys.stderr)
    return code
