"""Helpers shared by the config tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.core.config import ConfigError, NodeConfig, parse_config

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEEDS = ("full", "rknn_edge", "blueprint")
TEST_ENV = {"HOME": "/home/tester"}


def seed_text(name: str) -> str:
    return (FIXTURES / f"{name}.yaml").read_text(encoding="utf-8")


def issues_of(text: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """Parse ``text`` expecting failure; return {path: message}."""
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), env=TEST_ENV if env is None else env)
    return {issue.path: issue.message for issue in caught.value.issues}


def parse(text: str, env: dict[str, str] | None = None) -> NodeConfig:
    return parse_config(textwrap.dedent(text), env=TEST_ENV if env is None else env)
