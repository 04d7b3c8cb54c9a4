from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Point every platformdirs location (config, data, state, logs) into ``tmp_path``."""
    env = {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LUMEN_CONFIG", raising=False)
    full = dict(os.environ)
    full["PYTHONPATH"] = str(ROOT)
    full.pop("DISPLAY", None)
    full.pop("WAYLAND_DISPLAY", None)
    yield full


def write_config(path: Path, port: int, cache_dir: Path, extra: str = "") -> Path:
    path.write_text(
        "metadata:\n"
        '  version: "1.0"\n'
        "  region: other\n"
        f"  cache_dir: {cache_dir}\n"
        "node:\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        "  http_port: 0\n"
        "  mdns:\n"
        "    enabled: false\n"
        "services: {}\n" + extra,
        encoding="utf-8",
    )
    return path


PYTHON = sys.executable
