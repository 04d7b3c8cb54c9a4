"""``lumen-hub peers``: browse the LAN for Lumen nodes and print the peer table."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.cli import EXIT_FAILURE, EXIT_OK, UsageError

log = logging.getLogger(__name__)

MAX_TIMEOUT_S = 600.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "peers",
        help="list the Lumen nodes on the LAN (mDNS), with services, runtime, state and RTT",
        description="Browse the LAN with mDNS for TIMEOUT seconds (no running node needed), health-check "
        "every node found over gRPC, and print the peer table.",
    )
    p.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds to browse (default: 3)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per node) instead of a table")
    p.add_argument(
        "--type",
        dest="types",
        action="append",
        metavar="TYPE",
        help="mDNS service type to browse (repeatable; default: node.mdns.types of --config, else "
        "_lumen._tcp.local. and _homenative-node._tcp.local.)",
    )
    p.add_argument("--config", type=Path, metavar="PATH", help="read node.mdns (types, interfaces) from it")
    p.set_defaults(func=cmd_peers)


def cmd_peers(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.core.cluster.scan import scan_peers
    from app.core.config import ConfigError, NodeMdns, load_config

    if not 0 < args.timeout <= MAX_TIMEOUT_S:
        raise UsageError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT_S:.0f} seconds")
    mdns = NodeMdns()
    if args.config is not None:
        try:
            mdns = load_config(args.config).node.mdns
        except ConfigError as exc:
            print(f"lumen-hub peers: {args.config} is not valid:\n{exc}", file=sys.stderr)
            return EXIT_FAILURE
    types = tuple(mdns.types)
    if args.types:
        try:
            types = tuple(NodeMdns(types=tuple(args.types)).types)
        except ValidationError as exc:
            raise UsageError(f"--type: {exc.errors()[0]['msg']}") from None
    try:
        peers = asyncio.run(scan_peers(types, timeout=args.timeout, interfaces=mdns.interfaces))
    except OSError as exc:
        print(f"lumen-hub peers: cannot open mDNS sockets: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps([_as_json(p) for p in peers], indent=2))
        return EXIT_OK
    if not peers:
        print(f"No Lumen nodes found within {args.timeout:g} s (types: {', '.join(types)}).")
        return EXIT_OK
    print(format_table(peers))
    return EXIT_OK


def _as_json(peer: Any) -> dict[str, Any]:
    data = asdict(peer)
    data["address"] = peer.address
    return data


def format_table(peers: Any) -> str:
    header = ("NAME", "ADDRESS", "SERVICES", "RUNTIME", "STATE", "RTT")
    rows = [header]
    for peer in peers:
        services = ",".join(
            f"{s.name}" + ("" if s.state == "ready" else f"({s.state})") for s in peer.services
        )
        rtt = f"{peer.rtt_ms:.1f} ms" if peer.rtt_ms is not None else "no answer"
        rows.append((peer.name, peer.address, services or "-", peer.runtime or "-", peer.state, rtt))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines)
