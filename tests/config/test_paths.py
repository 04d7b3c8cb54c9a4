"""Path expansion in config fields and the platformdirs locations."""

from __future__ import annotations

from pathlib import Path

from app.core import paths
from app.core.config import load_config

from .helpers import TEST_ENV, issues_of, parse


def test_tilde_and_vars_expanded() -> None:
    env = {**TEST_ENV, "DATA": "/mnt/data", "SUB": "lumen"}
    config = parse('metadata: {cache_dir: "$DATA/${SUB}/cache"}\ndownloads: {local_dir: ~/offline}', env=env)
    assert config.metadata.cache_dir == Path("/mnt/data/lumen/cache")
    assert config.downloads.local_dir == Path("/home/tester/offline")


def test_unset_variable_is_an_error() -> None:
    issues = issues_of("metadata: {cache_dir: $NOPE/models}")
    assert "$NOPE" in issues["metadata.cache_dir"] and "not set" in issues["metadata.cache_dir"]


def test_relative_path_is_taken_from_the_config_folder(tmp_path: Path) -> None:
    config_file = tmp_path / "conf" / "lumen.yaml"
    config_file.parent.mkdir()
    config_file.write_text("metadata: {cache_dir: ./cache}\n", encoding="utf-8")
    assert load_config(config_file, env=TEST_ENV).metadata.cache_dir == tmp_path / "conf" / "cache"


def test_default_cache_dir_when_missing(isolated_dirs: Path) -> None:
    config = parse("{}")
    assert config.metadata.cache_dir == paths.default_cache_dir()
    assert str(config.metadata.cache_dir).startswith(str(isolated_dirs))


def test_platform_locations(isolated_dirs: Path) -> None:
    assert paths.default_config_path({}).name == "config.yaml"
    assert "lumen-node" in str(paths.default_config_path({}))
    for folder in (paths.default_cache_dir(), paths.log_dir(), paths.state_dir()):
        assert "lumen-node" in str(folder) and str(folder).startswith(str(isolated_dirs))


def test_lumen_config_and_cli_precedence(tmp_path: Path) -> None:
    env = {"LUMEN_CONFIG": "~/my/lumen.yaml", "HOME": str(tmp_path)}
    assert paths.default_config_path(env) == Path("~/my/lumen.yaml").expanduser()
    assert paths.resolve_config_path(tmp_path / "cli.yaml", env) == tmp_path / "cli.yaml"
    assert paths.resolve_config_path(None, env) == paths.default_config_path(env)


def test_locations_follow_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert paths.default_config_path({}) == tmp_path / "xdg" / "lumen-node" / "config.yaml"
