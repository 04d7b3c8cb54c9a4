"""Typed environment overrides: ``LUMEN_<SECTION>__<KEY>[__<KEY>...]=value``.

Examples: ``LUMEN_NODE__PORT=50060``, ``LUMEN_METADATA__REGION=cn``,
``LUMEN_NODE__MDNS__ENABLED=false``,
``LUMEN_NODE__EXECUTION_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider``,
``LUMEN_SERVICES__CLIP__ENABLED=false``, ``LUMEN_HUB__SERVER__PORT=50050``.

The value is converted to the type of the model field it targets (bool: true/false/1/0/yes/no/
on/off; lists: comma separated or a YAML list; optional fields: ``null`` or empty for none);
a value of the wrong type raises :class:`ConfigError` naming the variable, the expected type
and the value. Variables without ``__`` (``LUMEN_CONFIG``) are not overrides.
"""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from app.core.config.errors import ConfigError, ConfigIssue
from app.core.config.model import NodeConfig
from app.core.config.validation import model_keys

PREFIX = "LUMEN_"
SEPARATOR = "__"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NONE = {"", "null", "none", "~"}


class _BadValue(Exception):
    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def override_variables(env: Mapping[str, str]) -> dict[str, str]:
    """The ``LUMEN_*__*`` variables of ``env``, sorted by name (deterministic order)."""
    return {
        name: value
        for name, value in sorted(env.items())
        if name.upper().startswith(PREFIX) and SEPARATOR in name[len(PREFIX) :]
    }


def apply_env_overrides(
    data: dict[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return a copy of ``data`` with the overrides applied, and ``{dotted path: variable}``."""
    result = copy.deepcopy(data)
    provenance: dict[str, str] = {}
    issues: list[ConfigIssue] = []
    for variable, raw in override_variables(env).items():
        segments = [s for s in variable[len(PREFIX) :].split(SEPARATOR)]
        try:
            keys, annotation = _resolve(segments, result)
        except _UnknownTarget as exc:
            issues.append(ConfigIssue(exc.path, f"environment variable {variable}: {exc.message}"))
            continue
        path = ".".join(keys)
        try:
            value = coerce(raw, annotation)
        except _BadValue as exc:
            issues.append(
                ConfigIssue(path, f"environment variable {variable}={raw!r}: expected {exc.expected}")
            )
            continue
        _set(result, keys, value)
        provenance[path] = variable
    if issues:
        raise ConfigError(issues)
    return result, provenance


class _UnknownTarget(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _resolve(segments: list[str], data: Mapping[str, Any]) -> tuple[list[str], Any]:
    keys: list[str] = []
    current: Any = NodeConfig
    node: Any = data
    for segment in segments:
        if not segment:
            raise _UnknownTarget(
                ".".join(keys), "empty name part (use exactly two underscores between parts)"
            )
        current = _optional(current)[0]
        if isinstance(current, type) and issubclass(current, BaseModel):
            allowed = model_keys(current)
            key = segment.lower()
            if key not in allowed:
                hint = get_close_matches(key, allowed, n=1, cutoff=0.6)
                did_you_mean = f"did you mean {hint[0].upper()!r}? " if hint else ""
                raise _UnknownTarget(
                    ".".join(keys),
                    f"unknown key {segment!r}; {did_you_mean}allowed: "
                    + ", ".join(k.upper() for k in allowed),
                )
            field = next(info for name, info in current.model_fields.items() if key in (name, info.alias))
            current = field.annotation
        elif typing.get_origin(current) is dict:
            value_type = _unwrap(typing.get_args(current)[1])
            existing = list(node) if isinstance(node, Mapping) else []
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                key = next((k for k in existing if str(k).lower() == segment.lower()), segment.lower())
            else:
                key = next((k for k in existing if str(k) == segment), segment)
            current = value_type
        else:
            raise _UnknownTarget(".".join(keys), f"{'.'.join(keys)} has no sub-keys (got {segment!r})")
        keys.append(key)
        node = node.get(key) if isinstance(node, Mapping) else None
    return keys, current


def _set(data: dict[str, Any], keys: list[str], value: Any) -> None:
    target = data
    for key in keys[:-1]:
        child = target.get(key)
        if not isinstance(child, dict):
            child = {}
            target[key] = child
        target = child
    target[keys[-1]] = value


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _optional(annotation: Any) -> tuple[Any, bool]:
    annotation = _unwrap(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0]), True
    return annotation, False


def coerce(raw: str, annotation: Any) -> Any:
    """Convert an environment string to the type ``annotation`` describes (raises _BadValue)."""
    target, optional = _optional(annotation)
    text = raw.strip()
    if optional and text.lower() in _NONE:
        return None
    origin = typing.get_origin(target)
    if target is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise _BadValue("a boolean (true/false, 1/0, yes/no, on/off)")
    if target is int:
        try:
            return int(text)
        except ValueError:
            raise _BadValue("a whole number (integer)") from None
    if target is float:
        try:
            return float(text)
        except ValueError:
            raise _BadValue("a number") from None
    if origin is Literal:
        allowed = [str(a) for a in typing.get_args(target)]
        if text.lower() not in allowed:
            raise _BadValue(f"one of: {', '.join(allowed)}")
        return text.lower()
    if target in (str, Path):
        return raw
    if origin in (tuple, list):
        if text.startswith("["):
            parsed = _yaml(text, "a list, e.g. a,b or [a, b]")
            if not isinstance(parsed, list):
                raise _BadValue("a list, e.g. a,b or [a, b]")
            return parsed
        return [item.strip() for item in text.split(",") if item.strip()]
    if origin is dict or (isinstance(target, type) and issubclass(target, BaseModel)):
        parsed = _yaml(text, "a YAML/JSON mapping, e.g. {key: value}")
        if not isinstance(parsed, dict):
            raise _BadValue("a YAML/JSON mapping, e.g. {key: value}")
        return parsed
    return raw


def _yaml(text: str, expected: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise _BadValue(expected) from None
