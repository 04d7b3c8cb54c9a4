"""``lumen-hub download``, ``list``, ``remove`` and ``validate-model-info``: the model cache."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from app.cli import EXIT_FAILURE, EXIT_OK, UsageError


def register(sub: Any) -> None:
    download = sub.add_parser(
        "download",
        help="download the models of the enabled services",
        description="Download the model files the enabled services need (only the configured runtime, "
        "precision, RKNN device and dataset), with live progress. Files already in the cache are kept; "
        "an interrupted download resumes where it stopped.",
    )
    download.add_argument("config_file", nargs="?", metavar="CONFIG", help="config file (default: --config)")
    download.add_argument(
        "--config", metavar="PATH", help="config file (default: $LUMEN_CONFIG or the user dir)"
    )
    download.add_argument(
        "--force",
        action="store_true",
        help="download again even what is already in the cache (verified first)",
    )
    download.add_argument(
        "--only",
        metavar="SERVICE",
        action="append",
        help="only this service's models (repeat or comma-separate: --only clip,face)",
    )
    download.set_defaults(func=run_download)

    listing = sub.add_parser(
        "list",
        help="list the downloaded models",
        description="List the models in the cache: version, runtimes present, size on disk, complete or not.",
    )
    _cache_args(listing)
    listing.set_defaults(func=run_list)

    remove = sub.add_parser(
        "remove",
        help="delete a model from the cache",
        description="Delete a model's folder, its download record and any partial download. Asks nothing.",
    )
    remove.add_argument("model", metavar="MODEL", help="model name as `lumen-hub list` shows it")
    _cache_args(remove)
    remove.set_defaults(func=run_remove)

    validate = sub.add_parser(
        "validate-model-info",
        help="check a model_info.json",
        description="Check a model_info.json (any dialect) and summarise what it offers.",
    )
    validate.add_argument("path", metavar="PATH", help="a model_info.json file or a model folder")
    validate.set_defaults(func=run_validate_model_info)


def _cache_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="the cache folder (metadata.cache_dir; models are in DIR/models); default: from the config",
    )
    parser.add_argument("--config", metavar="PATH", help="config file giving the cache folder")


# ------------------------------------------------------------------------------------ download


def run_download(args: argparse.Namespace) -> int:
    from app.core.config import ConfigError, load_config
    from app.core.downloads import requests_from_config
    from app.core.paths import resolve_config_path

    path = Path(args.config_file).expanduser() if args.config_file else resolve_config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"lumen-hub download: {path} is not usable:\n{exc}", file=sys.stderr)
        return EXIT_FAILURE
    if not getattr(args, "verbose", False):  # the progress view and the summary say it all
        logging.getLogger("app.core.downloads").setLevel(logging.CRITICAL)
    only = _only(args.only, config)
    requests = requests_from_config(config, only)
    if not requests:
        print("Nothing to download: no enabled service has a model.")
        return EXIT_OK
    try:
        return asyncio.run(_download(config, requests, force=args.force))
    except KeyboardInterrupt:
        print("\nInterrupted; partial files are kept, run the command again to resume.", file=sys.stderr)
        return EXIT_FAILURE


def _only(values: list[str] | None, config: Any) -> set[str] | None:
    if not values:
        return None
    from app.core.config.model import SERVICE_ALIASES

    enabled = [spec.name for spec in config.service_specs()]
    wanted: set[str] = set()
    for value in values:
        for name in filter(None, (part.strip().lower() for part in value.split(","))):
            name = SERVICE_ALIASES.get(name, name)
            if name not in enabled:
                choices = ", ".join(enabled) or "none"
                raise UsageError(f"--only {name}: not an enabled service of this config; enabled: {choices}")
            wanted.add(name)
    return wanted


async def _download(config: Any, requests: list[Any], *, force: bool) -> int:
    from app.cli.download_view import ProgressView
    from app.core.downloads import DownloadManager

    manager = DownloadManager(config)
    try:
        todo = requests if force else await manager.missing(requests)
        present = [r.model for r in requests if r not in todo]
        for model in present:
            print(f"{model}: already downloaded")
        if not todo:
            print(f"All {len(requests)} model{'s' if len(requests) != 1 else ''} already downloaded.")
            return EXIT_OK
        view = ProgressView(sys.stdout)
        manager.add_listener(view)
        results = await manager.download(todo, force=force)
        view.finish()
    finally:
        await manager.close()
    return _summary(results, present)


def _summary(results: list[Any], present: list[str]) -> int:
    from app.core.downloads import format_bytes

    failed = [r for r in results if not r.ok]
    done = len(results) - len(failed)
    parts = [f"{done} downloaded"] + ([f"{len(present)} already present"] if present else [])
    parts += [f"{len(failed)} failed"] if failed else []
    print("Summary: " + ", ".join(parts))
    width = max(len(r.model) for r in results)
    for result in results:
        if result.ok:
            fetched = format_bytes(result.bytes_fetched)
            print(
                f"  {result.model:<{width}}  done    {format_bytes(result.bytes_total)} from {result.source} "
                f"({result.repo_id}), {fetched} fetched in {result.elapsed_s:.1f} s"
            )
        else:
            print(f"  {result.model:<{width}}  {result.state.value.upper():<7} {result.error}")
    for result in failed:
        print(f"lumen-hub download: {result.model}: {result.error or result.state.value}", file=sys.stderr)
    return EXIT_FAILURE if failed else EXIT_OK


# ------------------------------------------------------------------------------------ list / remove


def models_dir(args: argparse.Namespace) -> Path:
    """The models folder from ``--cache-dir`` (DIR/models, or DIR itself if it is one), else the
    config's ``metadata.cache_dir``/models, else the default cache."""
    from app.core.config import ConfigError, load_config
    from app.core.paths import default_cache_dir, resolve_config_path

    if args.cache_dir:
        base = Path(args.cache_dir).expanduser()
        if (base / "models").is_dir() or not base.is_dir():
            return base / "models"
        looks_like_models = (base / ".index").is_dir() or any(
            (child / "model_info.json").is_file() for child in base.iterdir() if child.is_dir()
        )
        return base if looks_like_models else base / "models"
    path = resolve_config_path(args.config)
    if path.exists():
        try:
            return load_config(path).metadata.cache_dir / "models"
        except ConfigError as exc:
            raise UsageError(f"{path} is not valid (or give --cache-dir):\n{exc}") from None
    if args.config:
        raise UsageError(f"no config file at {path}")
    return default_cache_dir() / "models"


def run_list(args: argparse.Namespace) -> int:
    from app.core.downloads import ModelCache, format_bytes

    folder = models_dir(args)
    entries = ModelCache(folder).entries()
    if not entries:
        print(f"No models in {folder}")
        return EXIT_OK
    rows = [
        (e.model, e.version or "-", "; ".join(e.runtimes) or "-", format_bytes(e.size_bytes), e.status)
        for e in entries
    ]
    header = ("MODEL", "VERSION", "RUNTIMES", "SIZE", "STATUS")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row)).rstrip())
    total = sum(e.size_bytes for e in entries)
    complete = sum(e.complete for e in entries)
    plural = "s" if len(entries) != 1 else ""
    print(f"{len(entries)} model{plural} ({complete} complete), {format_bytes(total)} in {folder}")
    return EXIT_OK


def run_remove(args: argparse.Namespace) -> int:
    from app.core.downloads import ModelCache, check_model_name, format_bytes
    from app.core.downloads.errors import DownloadBusy

    try:
        model = check_model_name(args.model)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    folder = models_dir(args)
    try:
        freed = ModelCache(folder).remove(model)
    except FileNotFoundError:
        print(f"lumen-hub remove: no model {model!r} in {folder} (see `lumen-hub list`)", file=sys.stderr)
        return EXIT_FAILURE
    except DownloadBusy as exc:
        print(f"lumen-hub remove: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"Removed {model} from {folder} ({format_bytes(freed)} freed)")
    return EXIT_OK


# ------------------------------------------------------------------------------------ model_info


def run_validate_model_info(args: argparse.Namespace) -> int:
    from services.model_info import ModelInfoError, WeightFile, load_model_info

    path = Path(args.path).expanduser()
    try:
        info = load_model_info(path)
    except ModelInfoError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{path}: valid")
    details = [f"version {info.version}" if info.version else "", info.model_type]
    if info.embedding_dim:
        details.append(f"embedding_dim {info.embedding_dim}")
    print(f"  model: {info.name} ({', '.join(d for d in details if d)})")
    print("  runtimes:")
    for name, runtime in info.runtimes.items():
        if not runtime.available:
            print(f"    {name}: not available")
            continue
        files = runtime.all_files()
        if name == "rknn":
            offer = "devices " + ", ".join(runtime.device_files or runtime.devices)
        else:
            offer = "precisions " + ", ".join(runtime.offered_precisions())
        components = ", ".join(runtime.components or sorted({WeightFile.parse(f).component for f in files}))
        print(
            f"    {name}: {offer}; components {components}; {len(files)} file{'s' if len(files) != 1 else ''}"
        )
    if info.datasets:
        print("  datasets: " + "; ".join(f"{n} ({', '.join(d.files)})" for n, d in info.datasets.items()))
    return EXIT_OK


__all__ = ["register"]
