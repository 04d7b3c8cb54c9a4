"""Default configs for ``lumen-hub init``: sensible default models per built-in service."""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches
from typing import Any

from app.core.config.errors import ConfigError, ConfigIssue
from app.core.config.model import BUILTIN_SERVICES, SERVICE_ALIASES, NodeConfig
from app.core.config.validation import validate_data
from app.core.paths import default_cache_dir

# service -> its default model section
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "clip": {"model": "MobileCLIP2-S2", "runtime": "onnx"},
    "bioclip": {"model": "bioclip-2", "runtime": "onnx", "dataset": "TreeOfLife-200M"},
    "face": {"model": "antelopev2", "runtime": "onnx"},
    "ocr": {"model": "PP-OCRv5", "runtime": "onnx"},
}


def parse_service_list(spec: str | Iterable[str]) -> list[str]:
    """``"clip,face"`` (or a list) → canonical service names; raises ConfigError for unknown names."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    issues: list[ConfigIssue] = []
    for item in items:
        raw = item.strip().lower()
        if not raw:
            continue
        name = SERVICE_ALIASES.get(raw, raw)
        if name not in BUILTIN_SERVICES:
            hint = get_close_matches(raw, BUILTIN_SERVICES, n=1)
            did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
            issues.append(
                ConfigIssue(
                    "",
                    f"unknown service {item.strip()!r}; {did_you_mean}"
                    f"built-in: {', '.join(BUILTIN_SERVICES)}",
                )
            )
        elif name not in names:
            names.append(name)
    if not names and not issues:
        issues.append(ConfigIssue("", f"name at least one service; built-in: {', '.join(BUILTIN_SERVICES)}"))
    if issues:
        raise ConfigError(issues)
    return names


def default_config(services: Iterable[str], region: str = "other") -> NodeConfig:
    """A ready config serving ``services`` with their default models."""
    names = parse_service_list(list(services))
    data = {
        "metadata": {"version": "1.0", "region": region, "cache_dir": str(default_cache_dir())},
        "services": {
            name: {
                "enabled": True,
                "models": {"default": dict(DEFAULT_MODELS[name])},
                "default_model": "default",
            }
            for name in names
        },
    }
    return validate_data(data)
