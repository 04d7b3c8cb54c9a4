"""The ``lumen-hub`` command line.

Each topic lives in its own module that exposes ``register(subparsers)``; a command handler takes
the parsed ``argparse.Namespace`` and returns the process exit code (0 ok, 1 failure, 2 usage).
Modules are imported lazily by :func:`build_parser` so that a missing optional part never breaks
the other commands.
"""

from __future__ import annotations

import argparse
import importlib
import logging

from app import __version__

log = logging.getLogger(__name__)

# Modules that contribute sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES: tuple[str, ...] = (
    "app.cli.config_cmds",  # init, validate
    "app.cli.node_cmds",  # start
    "app.cli.model_cmds",  # download, list, remove, validate-model-info
    "app.cli.client_cmds",  # infer, status
    "app.cli.cluster_cmds",  # peers
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A command was called wrongly; the message says how to call it. Exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lumen-hub",
        description="Lumen Node: a home AI node serving CLIP, BioCLIP, face and OCR over gRPC.",
    )
    parser.add_argument("--version", action="version", version=f"lumen-hub {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that part of the CLI is not built yet
            raise
        module.register(sub)
    return parser
