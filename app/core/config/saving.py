"""Write the canonical form: stable key order, atomic replace, previous file kept as ``.bak``.

``dump_config`` writes every section in model order (``metadata, node, downloads, dependencies,
services, hub``), every setting including defaults, and leaves out keys whose value is null (all
of them default to null). The output is a fixed point: loading it and dumping again gives the
same bytes. Comments in a hand-written file are not preserved.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from app.core.config.model import NodeConfig

HEADER = (
    "# Lumen Node configuration (canonical form, written by lumen-hub).\n"
    "# Reference: docs/config.md. Check it with: lumen-hub validate\n"
)
BACKUP_SUFFIX = ".bak"


class _Dumper(yaml.SafeDumper):
    """Block style, lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def config_to_data(config: NodeConfig) -> dict[str, Any]:
    """The canonical plain-data form (what :func:`dump_config` writes)."""
    return config.model_dump(mode="json", by_alias=True, exclude_none=True)


def dump_config(config: NodeConfig, *, header: bool = True) -> str:
    body = yaml.dump(
        config_to_data(config),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1000,
    )
    return (HEADER if header else "") + body


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def save_config(config: NodeConfig, path: Path | str) -> Path:
    """Atomically write ``config`` to ``path`` and return it.

    The text goes to a temporary file in the same folder, is fsynced, and replaces ``path`` with
    ``os.replace``; an existing file is first copied to ``<name>.bak``. If anything fails before
    the final replace, ``path`` is untouched and the temporary file is removed.
    """
    path = Path(path).expanduser()
    if path.is_symlink():
        path = path.resolve()  # replace the file the link points to, keep the link
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, dump_config(config), keep_backup=True)
    return path


def write_text_atomic(path: Path, text: str, *, keep_backup: bool = True) -> None:
    data = text.encode("utf-8")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            with contextlib.suppress(OSError):
                shutil.copymode(path, tmp)  # keep the user's permissions
            if keep_backup:
                _backup(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _backup(path: Path) -> None:
    """Copy ``path`` to ``<name>.bak`` atomically (a half-written backup never replaces a good one)."""
    target = backup_path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copy2(path, tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
