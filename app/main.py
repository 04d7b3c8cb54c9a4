"""Composition root: parse the command line and run the chosen command.

``lumen-hub start`` builds the :class:`~app.core.node.Node` and runs it under the tray app when a
display is available, or headless (``asyncio.run``) otherwise. Nothing here imports Qt unless the
GUI is actually started.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from app.cli import EXIT_FAILURE, EXIT_USAGE, UsageError, build_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.verbose and args.command != "start":  # start sets up its own console + file logging
        from app.core.logging_setup import setup_logging

        setup_logging("DEBUG")
    try:
        return int(func(args))
    except UsageError as exc:
        print(f"lumen-hub {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
