"""Read a config file in either accepted form and return the canonical :class:`NodeConfig`.

Steps: YAML (duplicate keys are errors) → detect the form → normalise the blueprint form
(``resources`` → ``metadata``, model lists → aliases, ``device`` → ``rknn_device``) → apply
``LUMEN_<SECTION>__<KEY>`` overrides → expand ``$VARS`` and ``~`` in path fields (relative paths
are taken from the config file's folder) → validate. Every problem is reported as a
:class:`ConfigIssue` whose path is the one the user wrote (``services.face.models[0].device``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import yaml

from app.core.config.errors import ConfigError, ConfigIssue
from app.core.config.model import NodeConfig
from app.core.config.overrides import apply_env_overrides
from app.core.config.validation import validate_data

FORMAT_CANONICAL = "canonical"
FORMAT_RESOURCES = "lumen-resources"
FORMAT_BLUEPRINT = "blueprint"

PATH_FIELDS: tuple[tuple[str, ...], ...] = (("metadata", "cache_dir"), ("downloads", "local_dir"))
RESOURCES_KEYS: tuple[str, ...] = ("version", "region", "cache_dir")
_VAR_RE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus how it was read (for ``lumen-hub validate``)."""

    config: NodeConfig
    source_format: str
    overrides: Mapping[str, str] = field(default_factory=dict)  # dotted path -> variable
    path: Path | None = None


def load_config(
    path: Path | str, env: Mapping[str, str] | None = None, *, apply_overrides: bool = True
) -> NodeConfig:
    """Load and validate ``path``. ``env`` defaults to ``os.environ`` (overrides and ``$VARS``)."""
    return read_config(path, env, apply_overrides=apply_overrides).config


def read_config(
    path: Path | str, env: Mapping[str, str] | None = None, *, apply_overrides: bool = True
) -> LoadedConfig:
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [ConfigIssue("", f"no config file at {path}; create one with: lumen-hub init clip,face")],
            source=str(path),
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue("", f"{path} is not UTF-8 text: {exc}")], source=str(path)) from None
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue("", f"cannot read {path}: {exc.strerror or exc}")], source=str(path)
        ) from None
    try:
        loaded = parse_config_text(
            text, env=env, base_dir=path.resolve().parent, apply_overrides=apply_overrides
        )
    except ConfigError as exc:
        raise ConfigError(exc.issues, source=str(path)) from None
    return LoadedConfig(loaded.config, loaded.source_format, loaded.overrides, path)


def parse_config(
    text: str,
    env: Mapping[str, str] | None = None,
    *,
    base_dir: Path | None = None,
    apply_overrides: bool = True,
) -> NodeConfig:
    """Validate config YAML ``text``; relative paths are taken from ``base_dir`` (default: cwd)."""
    return parse_config_text(text, env=env, base_dir=base_dir, apply_overrides=apply_overrides).config


def parse_config_text(
    text: str,
    *,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    apply_overrides: bool = True,
) -> LoadedConfig:
    environ = os.environ if env is None else env
    raw = _load_yaml(text)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            [ConfigIssue("", f"a config must be a YAML mapping of sections, got {type(raw).__name__}")]
        )
    source_format = detect_format(raw)
    data, renames, issues = normalise(raw)
    provenance: dict[str, str] = {}
    if apply_overrides:
        data, provenance = apply_env_overrides(data, environ)
    issues += _expand_paths(data, environ, base_dir or Path.cwd())
    try:
        config = validate_data(data, provenance=provenance)
    except ConfigError as exc:
        issues += exc.issues
        reported = {issue.path for issue in issues}
        issues += [issue for issue in _default_model_issues(data) if issue.path not in reported]
    if issues:
        unique = dict.fromkeys(_renamed(issue, renames) for issue in issues)
        raise ConfigError(list(unique))
    return LoadedConfig(config, source_format, provenance)


def build_config(
    data: Mapping[str, Any], env: Mapping[str, str] | None = None, *, base_dir: Path | None = None
) -> NodeConfig:
    """Validate canonical-shaped plain data (no overrides), expanding ``~`` and ``$VARS`` in paths."""
    expanded = dict(data)
    issues = _expand_paths(expanded, os.environ if env is None else env, base_dir or Path.cwd())
    if issues:
        raise ConfigError(issues)
    return validate_data(expanded)


# --------------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, list | dict):
            continue  # unhashable; let the normal constructor complain
        if key in seen:
            first = seen[key]
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        kind = "invalid YAML" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise ConfigError([ConfigIssue("", f"{kind}{where}: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue("", f"YAML syntax error: {exc}")]) from None


# --------------------------------------------------------------------------------------------
# Forms
# --------------------------------------------------------------------------------------------


def detect_format(raw: Mapping[str, Any]) -> str:
    """``blueprint`` (resources / model lists), ``canonical`` (node / downloads) or ``lumen-resources``."""
    services = raw.get("services")
    if isinstance(services, list):
        return FORMAT_BLUEPRINT
    list_models = isinstance(services, dict) and any(
        isinstance(body, dict) and isinstance(body.get("models"), list) for body in services.values()
    )
    if "resources" in raw or list_models:
        return FORMAT_BLUEPRINT
    if "node" in raw or "downloads" in raw:
        return FORMAT_CANONICAL
    return FORMAT_RESOURCES


def normalise(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], list[ConfigIssue]]:
    """Canonical-shaped data, ``{canonical path: path the user wrote}`` and early issues."""
    data = dict(raw)
    renames: dict[str, str] = {}
    issues: list[ConfigIssue] = []
    if "resources" in data:
        resources = data.pop("resources")
        if "metadata" in data:
            issues.append(
                ConfigIssue(
                    "resources",
                    "give either 'metadata' (lumen-resources form) or 'resources' (blueprint form), not both",
                )
            )
        elif resources is None:
            data["metadata"] = {}
        elif not isinstance(resources, dict):
            issues.append(ConfigIssue("resources", "must be a mapping with keys: region, cache_dir"))
        else:
            for key in resources:
                if key not in RESOURCES_KEYS:
                    hint = get_close_matches(str(key), RESOURCES_KEYS, n=1)
                    did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
                    issues.append(
                        ConfigIssue(
                            f"resources.{key}",
                            f"unknown key {key!r}; {did_you_mean}allowed: {', '.join(RESOURCES_KEYS)}",
                        )
                    )
            data["metadata"] = {k: v for k, v in resources.items() if k in RESOURCES_KEYS}
            renames["metadata"] = "resources"
    services = data.get("services")
    if isinstance(services, list) and all(isinstance(item, str) for item in services):
        # blueprint shorthand `services: [clip, face]`: each with its default model
        from app.core.config.templates import DEFAULT_MODELS

        services = {
            name: {"models": {"default": dict(DEFAULT_MODELS[name.lower()])}}
            if name.lower() in DEFAULT_MODELS
            else {}
            for name in services
        }
        data["services"] = services
    if isinstance(services, dict):
        data["services"] = {
            name: _normalise_service(name, body, renames, issues) for name, body in services.items()
        }
    return data, renames, issues


def _normalise_service(name: Any, body: Any, renames: dict[str, str], issues: list[ConfigIssue]) -> Any:
    if not isinstance(body, dict):
        return body
    models = body.get("models")
    base = f"services.{name}.models"
    if isinstance(models, list):
        aliases: dict[str, Any] = {}
        for index, item in enumerate(models):
            written = f"{base}[{index}]"
            if not isinstance(item, dict):
                issues.append(
                    ConfigIssue(
                        written, "must be a mapping with keys: model, runtime, device, dataset, precision"
                    )
                )
                continue
            item = dict(item)
            alias = item.pop("alias", None)
            if not isinstance(alias, str) or not alias.strip():
                alias = _alias_for(item.get("model"), index, aliases)
            elif alias in aliases:
                issues.append(ConfigIssue(f"{written}.alias", f"alias {alias!r} is used twice"))
                continue
            aliases[alias] = _normalise_model(item, f"{base}.{alias}", written, renames)
            renames[f"{base}.{alias}"] = written
        return {**body, "models": aliases}
    if isinstance(models, dict):
        normalised = {
            alias: _normalise_model(item, f"{base}.{alias}", f"{base}.{alias}", renames)
            if isinstance(item, dict)
            else item
            for alias, item in models.items()
        }
        return {**body, "models": normalised}
    return body


def _normalise_model(
    item: dict[str, Any], canonical: str, written: str, renames: dict[str, str]
) -> dict[str, Any]:
    if "device" in item and "rknn_device" not in item:
        item = dict(item)
        item["rknn_device"] = item.pop("device")
        renames[f"{canonical}.rknn_device"] = f"{written}.device"
    return item


def _default_model_issues(data: Mapping[str, Any]) -> list[ConfigIssue]:
    """``default_model`` checked against the written aliases, for when a model itself is invalid
    (the model's own check only runs once every model validates)."""
    issues = []
    services = data.get("services")
    for name, body in services.items() if isinstance(services, dict) else ():
        if not isinstance(body, dict) or not isinstance(body.get("models"), dict):
            continue
        default, aliases = body.get("default_model"), list(body["models"])
        if isinstance(default, str) and default not in aliases:
            issues.append(
                ConfigIssue(
                    f"services.{name}.default_model",
                    f"{default!r} is not a model alias of this service; "
                    f"aliases: {', '.join(map(str, aliases))}",
                )
            )
    return issues


def _alias_for(model: Any, index: int, taken: Mapping[str, Any]) -> str:
    if index == 0:
        base = "default"
    elif isinstance(model, str) and model.strip():
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", model.strip()).strip("-") or f"model{index + 1}"
    else:
        base = f"model{index + 1}"
    alias, counter = base, 2
    while alias in taken:
        alias = f"{base}-{counter}"
        counter += 1
    return alias


def _renamed(issue: ConfigIssue, renames: Mapping[str, str]) -> ConfigIssue:
    best = ""
    for canonical in renames:
        if (
            issue.path == canonical
            or issue.path.startswith(canonical + ".")
            or issue.path.startswith(canonical + "[")
        ) and len(canonical) > len(best):
            best = canonical
    if not best:
        return issue
    return ConfigIssue(renames[best] + issue.path[len(best) :], issue.message)


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


def expand_path(value: str, env: Mapping[str, str], base_dir: Path) -> Path:
    """Expand ``$VAR`` / ``${VAR}`` from ``env`` and a leading ``~``; relative → under ``base_dir``.
    Raises KeyError naming an unset variable."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        if name not in env:
            raise KeyError(name)
        return env[name]

    text = _VAR_RE.sub(substitute, value.strip())
    if text == "~" or text.startswith(("~/", "~\\")):
        home = env.get("HOME") or str(Path.home())
        text = home + text[1:]
    elif text.startswith("~"):
        text = os.path.expanduser(text)
    path = Path(text)
    if not path.is_absolute():
        path = base_dir / path
    return Path(os.path.normpath(path))


def _expand_paths(data: dict[str, Any], env: Mapping[str, str], base_dir: Path) -> list[ConfigIssue]:
    issues = []
    for section, key in PATH_FIELDS:
        body = data.get(section)
        if not isinstance(body, dict) or not isinstance(body.get(key), str):
            continue
        value = body[key]
        if not value.strip():
            issues.append(ConfigIssue(f"{section}.{key}", "must be a folder path, not empty"))
            continue
        try:
            expanded = expand_path(value, env, base_dir)
        except KeyError as exc:
            issues.append(
                ConfigIssue(
                    f"{section}.{key}", f"environment variable ${exc.args[0]} is not set (in {value!r})"
                )
            )
            continue
        data[section] = {**body, key: str(expanded)}
    return issues
