"""``lumen-hub init`` and ``lumen-hub validate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from app.core.config import (
    ConfigError,
    LoadedConfig,
    default_config,
    is_bioclip_model,
    read_config,
    save_config,
)
from app.core.paths import resolve_config_path


def register(sub: argparse._SubParsersAction) -> None:
    init = sub.add_parser(
        "init",
        help="write a ready config for some services",
        description="Write a config serving SERVICES (comma separated: clip, bioclip, face, ocr) with their "
        "default models: clip MobileCLIP2-S2, bioclip bioclip-2 (TreeOfLife-200M), face antelopev2, "
        "ocr PP-OCRv5, all on the onnx runtime.",
    )
    init.add_argument("services", metavar="SERVICES", help="comma separated, e.g. clip,face")
    init.add_argument(
        "--region",
        choices=("cn", "other"),
        default="other",
        help="cn downloads from ModelScope, other from Hugging Face (default: other)",
    )
    init.add_argument(
        "--config", metavar="PATH", help="where to write (default: $LUMEN_CONFIG or the user config dir)"
    )
    init.add_argument(
        "--force", action="store_true", help="overwrite an existing config (the old one is kept as .bak)"
    )
    init.set_defaults(func=run_init)

    validate = sub.add_parser(
        "validate",
        help="check a config and summarise it",
        description="Check a config (either form) with the environment overrides applied; print a summary "
        "or every problem with its YAML path.",
    )
    validate.add_argument("config_file", nargs="?", metavar="CONFIG", help="config file (default: --config)")
    validate.add_argument(
        "--config", metavar="PATH", help="config file (default: $LUMEN_CONFIG or the user config dir)"
    )
    validate.set_defaults(func=run_validate)


def run_init(args: argparse.Namespace) -> int:
    path = resolve_config_path(args.config)
    try:
        config = default_config(args.services.split(","), region=args.region)
    except ConfigError as exc:
        print(f"lumen-hub init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if path.exists() and not args.force:
        print(
            f"lumen-hub init: {path} already exists; use --force to overwrite it (the old file is kept as "
            f"{path.name}.bak)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    try:
        save_config(config, path)
    except OSError as exc:
        print(f"lumen-hub init: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"Wrote {path}")
    print(f"  services: {', '.join(config.enabled_services)}; region: {config.metadata.region}")
    print(f"  models go to {config.metadata.cache_dir / 'models'}")
    print("Check it with 'lumen-hub validate', start the node with 'lumen-hub start'.")
    return EXIT_OK


def run_validate(args: argparse.Namespace) -> int:
    path = Path(args.config_file).expanduser() if args.config_file else resolve_config_path(args.config)
    try:
        loaded = read_config(path)
    except ConfigError as exc:
        count = len(exc.issues)
        print(f"{path}: invalid ({count} problem{'s' if count != 1 else ''})", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return EXIT_FAILURE
    print(summary(loaded))
    return EXIT_OK


def summary(loaded: LoadedConfig) -> str:
    """A short human summary of a valid config."""
    config = loaded.config
    lines = [f"{loaded.path}: valid ({loaded.source_format} form)"]
    lines.append(f"  region:    {config.metadata.region}")
    lines.append(f"  cache dir: {config.metadata.cache_dir} (models in {config.model_dir('<model>').parent})")
    lines.append("  services:")
    if not config.services:
        lines.append("    (none)")
    for name, service in config.services.items():
        state = "" if service.enabled else " (disabled)"
        lines.append(f"    {name}{state}:")
        for alias, model in service.models.items():
            extras = [
                f"device {model.rknn_device}" if model.rknn_device else "",
                model.dataset or "",
                model.precision or "",
            ]
            detail = ", ".join(x for x in extras if x)
            marker = " [default]" if alias == service.default_model else ""
            if name == "clip" and is_bioclip_model(model.model):
                marker += " -> served by the bioclip service"
            lines.append(
                f"      {alias}: {model.model} ({model.runtime}{', ' + detail if detail else ''}){marker}"
            )
    lines.append("  listeners:")
    for listener in config.listeners():
        served = "all services" if listener.services is None else ", ".join(listener.services)
        if listener.mdns_enabled:
            name = listener.mdns_name or "(automatic name)"
            mdns = f"mDNS {name!r} as {', '.join(listener.mdns_types)}"
        else:
            mdns = "no mDNS"
        lines.append(f"    {config.node.host}:{listener.port} ({listener.source}) -> {served}; {mdns}")
    if config.node.http_port:
        lines.append(
            f"    {config.node.host}:{config.node.http_port} (node.http_port) -> broker feed /v1/nodes/watch"
        )
    if loaded.overrides:
        lines.append("  environment overrides:")
        for dotted, variable in loaded.overrides.items():
            lines.append(f"    {variable} -> {dotted}")
    return "\n".join(lines)
