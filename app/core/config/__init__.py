"""Lumen Node configuration: one canonical model loaded from the lumen-resources or blueprint
YAML forms, validated with path-precise errors, written back atomically.

Typical use::

    from app.core.config import load_config, save_config
    cfg = load_config(path)                 # os.environ overrides applied
    cfg.listeners(); cfg.main_port; cfg.service_specs(); cfg.host_settings()
    save_config(cfg.replace_at("node.port", 50060), path)
"""

from app.core.config.errors import ConfigError, ConfigIssue
from app.core.config.loading import LoadedConfig, build_config, load_config, parse_config, read_config
from app.core.config.model import (
    BUILTIN_SERVICES,
    KNOWN_RKNN_DEVICES,
    DownloadEndpoints,
    DownloadOwners,
    Downloads,
    HubConfig,
    ImportSpec,
    Listener,
    Metadata,
    ModelConfig,
    NodeCluster,
    NodeConfig,
    NodeMdns,
    NodeSettings,
    ServerConfig,
    ServerMdns,
    ServiceConfig,
    is_bioclip_model,
)
from app.core.config.overrides import apply_env_overrides
from app.core.config.saving import backup_path, config_to_data, dump_config, save_config
from app.core.config.specs import to_host_settings, to_service_specs
from app.core.config.templates import DEFAULT_MODELS, default_config, parse_service_list
from app.core.config.validation import validate_data

__all__ = [
    "BUILTIN_SERVICES",
    "DEFAULT_MODELS",
    "KNOWN_RKNN_DEVICES",
    "ConfigError",
    "ConfigIssue",
    "DownloadEndpoints",
    "DownloadOwners",
    "Downloads",
    "HubConfig",
    "ImportSpec",
    "Listener",
    "LoadedConfig",
    "Metadata",
    "ModelConfig",
    "NodeCluster",
    "NodeConfig",
    "NodeMdns",
    "NodeSettings",
    "ServerConfig",
    "ServerMdns",
    "ServiceConfig",
    "apply_env_overrides",
    "backup_path",
    "build_config",
    "config_to_data",
    "default_config",
    "dump_config",
    "is_bioclip_model",
    "load_config",
    "parse_config",
    "parse_service_list",
    "read_config",
    "save_config",
    "to_host_settings",
    "to_service_specs",
    "validate_data",
]
