"""Where Lumen Node keeps its files, per platform (platformdirs, app name ``lumen-node``).

Everything here is a function evaluated on each call, so tests (and users) can redirect the
locations through the environment (``LUMEN_CONFIG``, ``HOME``, ``XDG_*``) without re-importing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs

APP_NAME = "lumen-node"
CONFIG_ENV_VAR = "LUMEN_CONFIG"
CONFIG_FILE_NAME = "config.yaml"


def _dirs() -> platformdirs.PlatformDirs:
    return platformdirs.PlatformDirs(APP_NAME, appauthor=False)


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$LUMEN_CONFIG`` when set (``~`` expanded), else ``<user config dir>/config.yaml``."""
    environ = os.environ if env is None else env
    override = environ.get(CONFIG_ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    return Path(_dirs().user_config_dir) / CONFIG_FILE_NAME


def resolve_config_path(
    cli_value: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Path:
    """The config file to use: ``--config`` first, then ``$LUMEN_CONFIG``, then the platform default."""
    if cli_value:
        return Path(cli_value).expanduser()
    return default_config_path(env)


def default_cache_dir() -> Path:
    """Default ``metadata.cache_dir``; models live in ``<cache_dir>/models/<model>``."""
    return Path(_dirs().user_data_dir)


def log_dir() -> Path:
    """Folder for the rotating log file."""
    return Path(_dirs().user_log_dir)


def state_dir() -> Path:
    """Folder for small persistent state (the node id, ...)."""
    return Path(_dirs().user_state_dir)
