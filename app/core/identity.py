"""The node's persisted identity: a random id created once and kept across restarts."""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def load_or_create_node_id(state_dir: Path) -> str:
    """Return the id stored in ``state_dir/node_id``, creating it (atomically) on first use."""
    path = state_dir / "node_id"
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = ""
    if _ID_RE.match(existing):
        return existing
    node_id = uuid.uuid4().hex
    state_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".node_id.", dir=state_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(node_id + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return node_id
