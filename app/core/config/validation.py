"""Validate plain data into a :class:`NodeConfig` and turn pydantic errors into ConfigIssues
with dotted YAML paths, the allowed values and "did you mean" hints."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from difflib import get_close_matches
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from app.core.config.errors import ConfigError, ConfigIssue
from app.core.config.model import NodeConfig


def validate_data(data: Any, *, provenance: Mapping[str, str] | None = None) -> NodeConfig:
    """Validate canonical-shaped data; raise :class:`ConfigError` listing every issue."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue("", f"a config must be a YAML mapping of sections, got {_kind(data)}")]
        )
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(translate(exc, provenance=provenance)) from None


def translate(exc: ValidationError, *, provenance: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for error in exc.errors(include_url=False):
        issues.extend(_issues_for(error))
    if provenance:
        issues = [_with_provenance(issue, provenance) for issue in issues]
    unique = list(dict.fromkeys(issues))
    return unique


def format_path(loc: tuple[Any, ...] | list[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _issues_for(error: Mapping[str, Any]) -> list[ConfigIssue]:
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    path = format_path(loc)
    if kind == "lumen_config":
        nested = ctx.get("issues") or ()
        if nested:
            return [ConfigIssue(_join(path, sub), message) for sub, message in nested]
        return [ConfigIssue(path, str(ctx.get("message", error["msg"])))]
    if kind == "extra_forbidden":
        return [ConfigIssue(path, _unknown_key_message(loc))]
    if "[key]" in loc:
        return [ConfigIssue(path, f"invalid key: {error['msg']}")]
    return [ConfigIssue(path, _message(kind, ctx, value, loc, error["msg"]))]


def _join(base: str, sub: str) -> str:
    if not sub:
        return base
    return f"{base}.{sub}" if base else sub


def _message(kind: str, ctx: Mapping[str, Any], value: Any, loc: tuple[Any, ...], fallback: str) -> str:
    got = f" (got {value!r})"
    if kind == "missing":
        allowed = _allowed_values(loc)
        return "is required" + (f"; one of: {', '.join(allowed)}" if allowed else "")
    if kind == "literal_error":
        allowed = _allowed_values(loc) or [str(ctx.get("expected", ""))]
        return f"must be one of: {', '.join(allowed)}{got}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"must be a whole number{got}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number{got}"
    if kind in ("bool_parsing", "bool_type"):
        return f"must be true or false{got}"
    if kind == "string_type":
        return f"must be text{got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        fields = _field_names(loc)
        keys = f" with keys: {', '.join(fields)}" if fields else ""
        return f"must be a mapping{keys} (got {_kind(value)})"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list (got {_kind(value)})"
    if kind == "greater_than_equal":
        return f"must be at least {ctx.get('ge')}{got}"
    if kind == "less_than_equal":
        return f"must be at most {ctx.get('le')}{got}"
    if kind == "path_type":
        return f"must be a folder path{got}"
    return fallback


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _unknown_key_message(loc: tuple[Any, ...]) -> str:
    key = str(loc[-1])
    allowed = _field_names(loc[:-1])
    hint = get_close_matches(key, allowed, n=1, cutoff=0.6) if allowed else []
    did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
    listing = f"allowed: {', '.join(allowed)}" if allowed else "no keys are allowed here"
    return f"unknown key {key!r}; {did_you_mean}{listing}"


# --------------------------------------------------------------------------------------------
# Walking the model types along an error location
# --------------------------------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Strip Optional / Annotated so we see the model, dict, tuple or Literal underneath."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation


def annotation_at(loc: tuple[Any, ...] | list[Any], root: Any = NodeConfig) -> Any:
    """The (unwrapped) annotation of the value at ``loc`` below ``root``; None when unknown."""
    current = _unwrap(root)
    for part in loc:
        if part == "[key]":
            return None
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field_by_key(current, str(part))
            if field is None:
                return None
            current = _unwrap(field)
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin is dict and len(args) == 2:
            current = _unwrap(args[1])
        elif origin in (tuple, list) and args:
            current = _unwrap(args[0])
        else:
            return None
    return current


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def model_keys(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _field_names(loc: tuple[Any, ...]) -> list[str]:
    target = annotation_at(loc)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return model_keys(target)
    return []


def _allowed_values(loc: tuple[Any, ...]) -> list[str]:
    target = annotation_at(loc)
    if typing.get_origin(target) is Literal:
        return [str(arg) for arg in typing.get_args(target)]
    return []


def _with_provenance(issue: ConfigIssue, provenance: Mapping[str, str]) -> ConfigIssue:
    for path, variable in provenance.items():
        if issue.path == path or issue.path.startswith(path + ".") or issue.path.startswith(path + "["):
            return ConfigIssue(issue.path, f"{issue.message} (set by environment variable {variable})")
    return issue
