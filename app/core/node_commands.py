"""Controller commands of the Node that change its configuration (set_service_enabled, reload_config).

A change is validated first (``NodeConfig.replace_at`` / ``load_config``), saved atomically to the
node's config file, and only then applied to the service host (``ServiceHostProtocol.reconfigure``).
A bad request or an invalid file raises and leaves the old config in place, in memory and on disk.
Listener (port) changes need a restart; that is logged and not applied live.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from app.core.config import BUILTIN_SERVICES, DEFAULT_MODELS, load_config, save_config
from app.core.config.model import SERVICE_ALIASES
from app.core.grpc.status_map import NotSupported

if TYPE_CHECKING:
    from app.core.node import Node

log = logging.getLogger(__name__)


def canonical_service(name: str) -> str:
    raw = name.strip().lower()
    canonical = SERVICE_ALIASES.get(raw, raw)
    if canonical not in BUILTIN_SERVICES:
        raise ValueError(f"unknown service {name!r}; built-in services: {', '.join(BUILTIN_SERVICES)}")
    return canonical


def _config_path(node: Node) -> Any:
    if node.config_path is None:
        raise NotSupported(
            "this node runs without a config file, so its config cannot be changed or reloaded"
        )
    return node.config_path


async def set_service_enabled(node: Node, service: str, enabled: bool) -> None:
    name = canonical_service(service)
    path = _config_path(node)
    async with node.config_lock:
        # edit what the file says: environment overrides and `start --port` are not written back
        written = await asyncio.to_thread(load_config, path, apply_overrides=False)
        section = written.services.get(name)
        if section is None:
            if not enabled:
                return  # not configured: already off
            section = {"enabled": True, "models": {"default": dict(DEFAULT_MODELS[name])}}
            edited = written.replace_at(f"services.{name}", {**section, "default_model": "default"})
        else:
            edited = written.replace_at(f"services.{name}.enabled", enabled)
        await asyncio.to_thread(save_config, edited, path)
        await apply_config(node, await _read(node, path))


async def reload_config(node: Node) -> None:
    path = _config_path(node)
    async with node.config_lock:
        await apply_config(node, await _read(node, path))  # ConfigError: the old config stays


async def _read(node: Node, path: Any) -> Any:
    """The config the node runs: the file with environment overrides and ``start --port``."""
    config = await asyncio.to_thread(load_config, path)
    return config if node.port_override is None else config.with_main_port(node.port_override)


async def apply_config(node: Node, new: Any) -> None:
    old = node.config
    node.config = new
    if [(li.port, li.services) for li in old.listeners()] != [
        (li.port, li.services) for li in new.listeners()
    ]:
        log.warning("the config changes the node's listeners (ports); restart the node to apply them")
    await node.downloads_follow_config()
    host = node.host
    if host is None:
        return
    reconfigure = getattr(host, "reconfigure", None)
    if reconfigure is None:
        log.warning("this service host cannot change services live; restart the node to apply the change")
        return
    before = {spec.name for spec in old.service_specs()}
    added_preloads = {spec.name for spec in new.service_specs() if spec.preload} - before
    node.health_policy.warm_up(added_preloads)  # a newly enabled preload service warms up first
    await reconfigure(new.service_specs())
    await node.sync_health()
    from app.core.node import NodeState  # node.py imports this module

    if new.downloads.auto_download and node.snapshot().state is NodeState.RUNNING:
        await node.start_download()  # the models of newly enabled services
