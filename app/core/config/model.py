"""The canonical Lumen Node configuration model (pydantic v2).

Every class forbids unknown keys and is frozen: a loaded config never changes; edits produce a
new validated object (:meth:`NodeConfig.replace_at`, :meth:`NodeConfig.with_main_port`).

Port mapping (how the per-service ``server`` sections of the lumen-resources format map onto one
node process):

* The node runs ONE gRPC listener on the **main port** that serves every enabled service.
  The main port is ``hub.server.port`` when an enabled ``hub`` section with a ``server`` is
  present, else ``node.port`` (default 50051). ``lumen-hub start --port N`` overrides it.
* A service whose ``server.port`` differs from the main port gets an **extra listener** that
  serves only that service (advertised under its own mDNS name when ``server.mdns.enabled``).
* A service whose ``server.port`` equals the main port is simply served by the main listener
  (its mDNS name names the main listener when nothing else does).
* ``node.http_port`` (0 = off) is the broker WebSocket feed; it must not collide with any
  gRPC listener. Two listeners never share a port.

See :meth:`NodeConfig.listeners` and ``docs/config.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.core.paths import default_cache_dir

if TYPE_CHECKING:
    from services.api import HostSettings, ServiceSpec

# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

BUILTIN_SERVICES: tuple[str, ...] = ("clip", "bioclip", "face", "ocr")
SERVICE_ALIASES: dict[str, str] = {"siglip": "clip"}
# Registry classes of the seed (lumen-resources) format, matched by class name.
REGISTRY_CLASSES: dict[str, str] = {
    "CLIPService": "clip",
    "SigLIPService": "clip",
    "BioCLIPService": "bioclip",
    "BioClipService": "bioclip",
    "FaceService": "face",
    "OCRService": "ocr",
    "OcrService": "ocr",
}
RUNTIMES: tuple[str, ...] = ("torch", "onnx", "rknn")
REGIONS: tuple[str, ...] = ("cn", "other")
KNOWN_RKNN_DEVICES: tuple[str, ...] = ("rk3566", "rk3568", "rk3576", "rk3588")
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error", "critical")
DEFAULT_MDNS_TYPES: tuple[str, ...] = ("_lumen._tcp.local.", "_homenative-node._tcp.local.")
DEFAULT_NODE_PORT = 50051
DEFAULT_HTTP_PORT = 50080
MIN_PORT, MAX_PORT = 1024, 65535
MAX_INSTANCE_NAME_BYTES = 63

_RKNN_DEVICE_RE = re.compile(r"^rk\d+$")
_SERVICE_TYPE_RE = re.compile(r"^_[A-Za-z0-9](?:[A-Za-z0-9-]{0,13}[A-Za-z0-9])?\._(?:tcp|udp)\.local\.$")
_VERSION_RE = re.compile(
    r"^\d+\.\d+(?:\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?)?$"
)  # "1.0" as the seeds write it, or semver
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_PRECISION_RE = re.compile(r"^[a-z0-9_]{1,16}$")


def fail(message: str, *issues: tuple[str, str]) -> PydanticCustomError:
    """A validation error with our own message. ``issues`` are ``(relative path, message)`` pairs
    that the loader turns into separate :class:`~app.core.config.errors.ConfigIssue` s."""
    return PydanticCustomError("lumen_config", "{message}", {"message": message, "issues": issues})


def is_bioclip_model(model: str) -> bool:
    """A BioCLIP-family model (``bioclip-2``, ``BioCLIP``...): served by the ``bioclip`` service."""
    return model.lower().replace("_", "-").startswith("bioclip")


def service_for_registry_class(registry_class: str) -> str | None:
    """The built-in service a seed ``import.registry_class`` stands for (class name match)."""
    class_name = registry_class.strip().rsplit(".", 1)[-1].rsplit(":", 1)[-1]
    return REGISTRY_CLASSES.get(class_name)


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------


def _server_port(value: int) -> int:
    if not MIN_PORT <= value <= MAX_PORT:
        raise fail(f"must be a port number from {MIN_PORT} to {MAX_PORT} (got {value})")
    return value


def _node_port(value: int) -> int:
    if value != 0 and not MIN_PORT <= value <= MAX_PORT:
        raise fail(
            f"must be a port number from {MIN_PORT} to {MAX_PORT}, or 0 for any free port (got {value})"
        )
    return value


def _optional_port(value: int) -> int:
    if value != 0 and not MIN_PORT <= value <= MAX_PORT:
        raise fail(f"must be a port number from {MIN_PORT} to {MAX_PORT}, or 0 for off (got {value})")
    return value


def _instance_name(value: str) -> str:
    size = len(value.encode("utf-8"))
    if not value.strip() or size > MAX_INSTANCE_NAME_BYTES:
        raise fail(
            f"an mDNS instance name must be non-empty UTF-8 of at most {MAX_INSTANCE_NAME_BYTES} bytes "
            f"(got {size} bytes: {value!r})"
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise fail(f"an mDNS instance name must not contain control characters (got {value!r})")
    if "." in value:
        raise fail(
            f"an mDNS instance name must not contain '.' (the Lumen Go SDK reads the name up to the "
            f"first dot); got {value!r}, e.g. {value.replace('.', '-')!r}"
        )
    return value


def _service_type(value: str) -> str:
    candidate = value.strip()
    if candidate and not candidate.endswith("."):
        candidate += "."
    if not _SERVICE_TYPE_RE.match(candidate):
        raise fail(
            f"must be an mDNS service type of the form '_name._tcp.local.' (or '_udp'), "
            f"name 1-15 letters, digits or '-' (got {value!r})"
        )
    return candidate


def _non_empty(value: str) -> str:
    if not value.strip():
        raise fail("must not be empty")
    return value


def _stringify(value: Any) -> Any:
    """YAML gives ``8`` / ``true`` for unquoted scalars; env values are strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _stringify_mapping(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _stringify(item) for key, item in value.items()}
    if value is None:
        return {}
    return value


def _none_to_empty_list(value: Any) -> Any:
    return [] if value is None else value


ServerPort = Annotated[int, AfterValidator(_server_port)]
NodePort = Annotated[int, AfterValidator(_node_port)]
OptionalPort = Annotated[int, AfterValidator(_optional_port)]
InstanceName = Annotated[str, AfterValidator(_instance_name)]
ServiceType = Annotated[str, AfterValidator(_service_type)]
NonEmptyStr = Annotated[str, AfterValidator(_non_empty)]
EnvMap = Annotated[dict[str, str], BeforeValidator(_stringify_mapping)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


class Metadata(_Model):
    """``metadata``: format version, download region and the model cache folder."""

    version: str = "1.0"
    region: Literal["cn", "other"] = "other"
    cache_dir: Path = Field(default_factory=default_cache_dir)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not _VERSION_RE.match(value.strip()):
            raise fail(f'must be "1.0" or a semantic version like "1.2.3" (got {value!r})')
        return value.strip() if isinstance(value, str) else value

    @field_validator("region", mode="before")
    @classmethod
    def _region(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() not in REGIONS:
            raise fail(
                f"must be one of: cn, other (cn downloads from ModelScope, other from Hugging Face); "
                f"got {value!r}"
            )
        return value.strip().lower() if isinstance(value, str) else value


def _ip_address(value: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise fail(f"must be an IPv4 or IPv6 address such as 192.168.1.20 (got {value!r})") from None


INTERFACE_CHOICES: tuple[str, ...] = ("all", "default")
IpAddress = Annotated[str, AfterValidator(_ip_address)]


class NodeMdns(_Model):
    """``node.mdns``: the master mDNS switch and what the main listener advertises."""

    enabled: bool = True
    types: tuple[ServiceType, ...] = DEFAULT_MDNS_TYPES
    instance_name: InstanceName | None = None  # None = lumen-<hostname>-<short node id>
    # Where mDNS sockets listen and send: "all" (every IPv4 interface; works in network
    # namespaces without a default route), "default" (the OS's default multicast interface),
    # or a list of this machine's IP addresses.
    interfaces: tuple[str, ...] = ("all",)
    addresses: tuple[IpAddress, ...] = ()  # A/AAAA records; empty = every LAN interface
    include_loopback: bool = False  # also publish 127.0.0.1 (always done when nothing else exists)
    interface_poll_s: float = Field(default=5.0, gt=0, le=3600)  # re-check the interfaces this often

    @field_validator("types")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise fail("list at least one service type, e.g. '_lumen._tcp.local.' (or set enabled: false)")
        return tuple(dict.fromkeys(value))

    @field_validator("interfaces")
    @classmethod
    def _interfaces(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        items = tuple(
            item.strip().lower() if item.strip().lower() in INTERFACE_CHOICES else item.strip()
            for item in value
        )
        if not items:
            raise fail("give 'all', 'default' or a list of this machine's IP addresses")
        choices = [item for item in items if item in INTERFACE_CHOICES]
        if choices and len(items) > 1:
            raise fail(f"{choices[0]!r} must be the only entry (got {list(value)!r})")
        if not choices:
            items = tuple(_ip_address(item) for item in items)
        return tuple(dict.fromkeys(items))


class NodeCluster(_Model):
    """``node.cluster``: how peers found on mDNS are checked and when they are dropped."""

    probe_interval_s: float = Field(default=5.0, gt=0, le=3600)  # health-check each peer this often
    probe_timeout_s: float = Field(default=2.0, gt=0, le=60)
    expiry_s: float = Field(default=30.0, gt=0, le=86400)  # a peer silent this long leaves the table
    # a peer that failed a forwarded request gets none for this long (doubling, at most 60 s)
    forward_cooldown_s: float = Field(default=5.0, gt=0, le=60)


class NodeSettings(_Model):
    """``node``: node-wide settings the seed formats do not cover."""

    name: NonEmptyStr | None = None  # display name; None = the hostname
    host: NonEmptyStr = "0.0.0.0"
    port: NodePort = DEFAULT_NODE_PORT
    http_port: OptionalPort = DEFAULT_HTTP_PORT
    mdns: NodeMdns = Field(default_factory=NodeMdns)
    cluster: NodeCluster = Field(default_factory=NodeCluster)
    model_idle_ttl_s: int = Field(default=600, ge=0)  # 0 = never unload
    max_loaded_models: int = Field(default=4, ge=1)
    max_concurrency: int = Field(default=2, ge=1)  # per model
    queue_size: int = Field(default=64, ge=1)
    batch_max_size: int = Field(default=8, ge=1)
    batch_max_wait_ms: float = Field(default=5.0, ge=0)
    execution_providers: tuple[NonEmptyStr, ...] = ()
    cpu_threads: int = Field(default=0, ge=0)  # threads per model run on the CPU; 0 = automatic
    cpu_spin_wait: bool | None = None  # None = automatic: within runs only on 4 CPUs or fewer
    admin_token: NonEmptyStr | None = None
    forwarding: bool = True
    advertise_cluster: bool = False
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in LOG_LEVELS:
                raise fail(f"must be one of: {', '.join(LOG_LEVELS)} (got {value!r})")
            return lowered
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if any(ch.isspace() for ch in value):
            raise fail(f"must be an IP address or host name without spaces (got {value!r})")
        return value


def _http_url(value: str) -> str:
    stripped = value.strip().rstrip("/")
    if not re.match(r"^https?://[^\s/]+", stripped):
        raise fail(f"must be an http:// or https:// URL (got {value!r})")
    return stripped


def _owner(value: str) -> str:
    if not _OWNER_RE.match(value):
        raise fail(f"must be a hub user or organisation name (letters, digits, '.', '_', '-'); got {value!r}")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Owner = Annotated[str, AfterValidator(_owner)]


class DownloadEndpoints(_Model):
    """Mirror endpoints; None = the library default (or HF_ENDPOINT / MODELSCOPE_ENDPOINT)."""

    huggingface: HttpUrl | None = None
    modelscope: HttpUrl | None = None


class DownloadOwners(_Model):
    """Default repository owners: a model ``X`` is fetched as ``<owner>/X``."""

    huggingface: Owner = "Lumilio-Photos"
    modelscope: Owner = "LumilioPhotos"


class Downloads(_Model):
    """``downloads``: where and how model files are fetched."""

    endpoints: DownloadEndpoints = Field(default_factory=DownloadEndpoints)
    owners: DownloadOwners = Field(default_factory=DownloadOwners)
    local_dir: Path | None = None  # air-gapped source folder holding <model>/... trees
    max_parallel_files: int = Field(default=4, ge=1, le=32)
    auto_download: bool = True  # node start downloads missing models
    # Download manager tuning (docs/downloads.md).
    max_parallel_repos: int = Field(default=2, ge=1, le=8)  # model repositories fetched at once
    retries: int = Field(default=5, ge=0, le=50)  # further attempts per file after a network error
    retry_backoff_s: float = Field(default=1.0, gt=0, le=60)  # first wait; doubles per attempt
    max_retry_wait_s: float = Field(default=60.0, gt=0, le=3600)  # cap on backoff and Retry-After
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    read_timeout_s: float = Field(default=30.0, gt=0, le=3600)  # longest silence inside a response
    keep_free_mb: int = Field(default=256, ge=0)  # disk space that must stay free after a download


class ImportSpec(_Model):
    """Seed ``import`` keys; they have no meaning in one process but must name a built-in service."""

    registry_class: str | None = None
    add_to_server: str | None = None

    @field_validator("registry_class")
    @classmethod
    def _registry_class(cls, value: str | None) -> str | None:
        if value is not None and service_for_registry_class(value) is None:
            raise fail(
                f"{value!r} is not a built-in service; built-in: {', '.join(BUILTIN_SERVICES)} "
                f"(known registry classes: {', '.join(sorted(REGISTRY_CLASSES))})"
            )
        return value


class ModelConfig(_Model):
    """One model of a service. ``device`` is accepted as an alias of ``rknn_device``."""

    model: str
    runtime: Literal["torch", "onnx", "rknn"]
    rknn_device: str | None = Field(default=None, validate_default=True)
    dataset: NonEmptyStr | None = None
    precision: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _device_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "device" in data:
            data = dict(data)
            device = data.pop("device")
            if data.get("rknn_device") not in (None, device):
                raise fail(
                    "give either 'device' or 'rknn_device', not both (device is an alias of rknn_device)"
                )
            data["rknn_device"] = device
        return data

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not _MODEL_NAME_RE.match(value) or ".." in value:
            raise fail(
                "must be a model repository name such as 'MobileCLIP2-S2' (letters, digits, '.', '_', '-'; "
                f"no owner or '/': owners are set in downloads.owners); got {value!r}"
            )
        return value

    @field_validator("runtime", mode="before")
    @classmethod
    def _runtime(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in RUNTIMES:
                raise fail(f"must be one of: {', '.join(RUNTIMES)} (got {value!r})")
            return lowered
        return value

    @field_validator("rknn_device", mode="before")
    @classmethod
    def _rknn_device(cls, value: Any, info: ValidationInfo) -> Any:
        runtime = info.data.get("runtime")
        known = ", ".join(KNOWN_RKNN_DEVICES)
        if value is None:
            if runtime == "rknn":
                raise fail(f"required when runtime is 'rknn'; the Rockchip SoC, one of: {known}")
            return None
        if not isinstance(value, str):
            raise fail(f"must be a Rockchip SoC name such as rk3588 (known: {known}); got {value!r}")
        device = value.strip().lower()
        if not _RKNN_DEVICE_RE.match(device):
            raise fail(f"must match rk<digits>, e.g. one of: {known} (got {value!r})")
        if runtime is not None and runtime != "rknn":
            raise fail(
                f"only used with runtime 'rknn' (runtime is {runtime!r}); remove it or set runtime: rknn"
            )
        return device

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if not _PRECISION_RE.match(lowered):
                raise fail(f"must be a precision name such as fp32, fp16, int8, q4fp16 (got {value!r})")
            return lowered
        return value


class ServerMdns(_Model):
    enabled: bool = True
    name: InstanceName | None = None
    type: ServiceType | None = None


class ServerConfig(_Model):
    """A seed ``server`` section: a port and its mDNS announcement."""

    port: ServerPort
    mdns: ServerMdns | None = None


def _model_alias(value: str) -> str:
    if not value.strip() or len(value) > 64 or any(ord(ch) < 0x20 for ch in value):
        raise fail(f"a model alias must be 1-64 printable characters (got {value!r})")
    return value


ModelAlias = Annotated[str, AfterValidator(_model_alias)]


class ServiceConfig(_Model):
    """``services.<name>``; ``models`` maps aliases to models; ``default_model`` names an alias."""

    enabled: bool = True
    package: str | None = None  # seed key; accepted, unused
    import_: ImportSpec | None = Field(default=None, alias="import")  # seed key; checked, unused
    models: dict[ModelAlias, ModelConfig] = Field(default_factory=dict)
    default_model: str | None = Field(default=None, validate_default=True)
    env: EnvMap = Field(default_factory=dict)
    preload: bool = False
    server: ServerConfig | None = None

    @field_validator("default_model")
    @classmethod
    def _default_model(cls, value: str | None, info: ValidationInfo) -> str | None:
        models = info.data.get("models")
        if models is None:  # models itself was invalid; reported there
            return value
        if value is None:
            return next(iter(models), None)
        if value not in models:
            aliases = ", ".join(models) if models else "(none: add a model under 'models')"
            raise fail(f"{value!r} is not a model alias of this service; aliases: {aliases}")
        return value

    @model_validator(mode="after")
    def _needs_models(self) -> ServiceConfig:
        if self.enabled and not self.models:
            raise fail(
                "an enabled service needs at least one model",
                (
                    "models",
                    "an enabled service needs at least one model, e.g. default: {model: ..., runtime: onnx}",
                ),
            )
        return self


class HubConfig(_Model):
    """Seed ``hub`` section; its ``server.port`` becomes the main port (see module docstring)."""

    enabled: bool = True
    server: ServerConfig | None = None


# --------------------------------------------------------------------------------------------
# Derived views
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listener:
    """One gRPC listener of the node.

    ``services`` None means every enabled service (the main listener). ``mdns_name`` None means
    the node's automatic instance name (main) or one derived from it (extra listeners).
    ``source`` is the YAML path that defined the port.
    """

    port: int
    services: tuple[str, ...] | None
    mdns_enabled: bool
    mdns_name: str | None
    mdns_types: tuple[str, ...]
    source: str

    @property
    def is_main(self) -> bool:
        return self.services is None

    @property
    def mdns_type(self) -> str | None:
        """The first advertised type (the seed's single ``type``); see ``mdns_types`` for all."""
        return self.mdns_types[0] if self.mdns_types else None


# --------------------------------------------------------------------------------------------
# The root
# --------------------------------------------------------------------------------------------


class NodeConfig(_Model):
    """The whole configuration. See the module docstring for the port mapping rule."""

    metadata: Metadata = Field(default_factory=Metadata)
    node: NodeSettings = Field(default_factory=NodeSettings)
    downloads: Downloads = Field(default_factory=Downloads)
    dependencies: Annotated[tuple[str, ...], BeforeValidator(_none_to_empty_list)] = ()  # seed key; unused
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    hub: HubConfig | None = None

    @field_validator("services", mode="before")
    @classmethod
    def _service_names(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            return value
        from difflib import get_close_matches

        issues: list[tuple[str, str]] = []
        normalised: dict[str, Any] = {}
        for key, body in value.items():
            name = SERVICE_ALIASES.get(str(key).lower(), str(key).lower()) if isinstance(key, str) else key
            if name not in BUILTIN_SERVICES:
                hint = get_close_matches(str(key).lower(), [*BUILTIN_SERVICES, *SERVICE_ALIASES], n=1)
                did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
                issues.append(
                    (
                        str(key),
                        f"unknown service {key!r}; {did_you_mean}built-in: {', '.join(BUILTIN_SERVICES)}",
                    )
                )
                continue
            if name in normalised:
                issues.append(
                    (str(key), f"service {name!r} is configured twice ({key!r} is an alias of {name!r})")
                )
                continue
            normalised[name] = body
        if issues:
            raise fail("; ".join(message for _, message in issues), *issues)
        return normalised

    @model_validator(mode="after")
    def _cross_checks(self) -> NodeConfig:
        issues = [*self._registry_class_issues(), *self._port_issues()]
        if issues:
            raise fail("; ".join(f"{path}: {message}" for path, message in issues), *issues)
        return self

    def _registry_class_issues(self) -> list[tuple[str, str]]:
        issues = []
        for name, service in self.services.items():
            registry_class = service.import_.registry_class if service.import_ else None
            if registry_class is None:
                continue
            target = service_for_registry_class(registry_class)
            if target != name:
                issues.append(
                    (
                        f"services.{name}.import.registry_class",
                        f"{registry_class!r} is the {target} service but this section is services.{name}",
                    )
                )
        return issues

    def _port_issues(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        used: dict[int, str] = {}
        main = self.main_port
        if main:
            used[main] = self._main_port_path
        for name, service in self.services.items():
            if not service.enabled or service.server is None or service.server.port == main:
                continue
            path = f"services.{name}.server.port"
            port = service.server.port
            if port in used:
                issues.append(
                    (path, f"port {port} is already used by {used[port]}; give each listener its own port")
                )
            else:
                used[port] = path
        http = self.node.http_port
        if http and http in used:
            issues.append(
                (
                    "node.http_port",
                    f"port {http} is already used by {used[http]}; pick another port or 0 for off",
                )
            )
        return issues

    # ---------------------------------------------------------------- ports and listeners

    @property
    def _hub_governs(self) -> bool:
        return self.hub is not None and self.hub.enabled and self.hub.server is not None

    @property
    def _main_port_path(self) -> str:
        return "hub.server.port" if self._hub_governs else "node.port"

    @property
    def main_port(self) -> int:
        """``hub.server.port`` when an enabled hub section has a server, else ``node.port``."""
        if self._hub_governs:
            assert self.hub is not None and self.hub.server is not None
            return self.hub.server.port
        return self.node.port

    def listeners(self) -> list[Listener]:
        """The gRPC listeners this config asks for: the main one first, then one per service with
        its own port (in config order)."""
        node_mdns = self.node.mdns
        types = node_mdns.types
        name = node_mdns.instance_name
        enabled = node_mdns.enabled
        main = self.main_port
        if self._hub_governs:
            assert self.hub is not None and self.hub.server is not None
            hub_mdns = self.hub.server.mdns
            if hub_mdns is not None:
                enabled = enabled and hub_mdns.enabled
                name = hub_mdns.name or name
                types = _with_type(types, hub_mdns.type)
        extra: list[Listener] = []
        for service_name, service in self.services.items():
            if not service.enabled or service.server is None:
                continue
            server_mdns = service.server.mdns
            if service.server.port == main:
                if server_mdns is not None and server_mdns.enabled:
                    name = name or server_mdns.name
                    types = _with_type(types, server_mdns.type)
                continue
            served = [service_name]
            if service_name == "clip" and "bioclip" not in self.services:
                # bioclip-family models under clip are served by the bioclip service (see specs.py)
                bioclip_flags = [is_bioclip_model(m.model) for m in service.models.values()]
                if all(bioclip_flags):
                    served = ["bioclip"]
                elif any(bioclip_flags):
                    served.append("bioclip")
            extra.append(
                Listener(
                    port=service.server.port,
                    services=tuple(served),
                    mdns_enabled=node_mdns.enabled and server_mdns is not None and server_mdns.enabled,
                    mdns_name=server_mdns.name if server_mdns else None,
                    mdns_types=(server_mdns.type,) if server_mdns and server_mdns.type else node_mdns.types,
                    source=f"services.{service_name}.server",
                )
            )
        main_listener = Listener(
            port=main,
            services=None,
            mdns_enabled=enabled,
            mdns_name=name,
            mdns_types=types,
            source="hub.server" if self._hub_governs else "node",
        )
        return [main_listener, *extra]

    def with_main_port(self, port: int) -> NodeConfig:
        """A validated copy whose main port is ``port`` (what ``start --port`` does)."""
        path = "hub.server.port" if self._hub_governs else "node.port"
        return self.replace_at(path, port)

    def replace_at(self, path: str, value: Any) -> NodeConfig:
        """A validated copy with the value at dotted YAML ``path`` replaced (raises ConfigError).
        ``~`` and ``$VARS`` in path settings are expanded."""
        from app.core.config.loading import build_config

        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        keys = path.split(".")
        target = data
        for key in keys[:-1]:
            child = target.get(key)
            if not isinstance(child, dict):
                child = {}
                target[key] = child
            target = child
        target[keys[-1]] = value
        return build_config(data)

    # ---------------------------------------------------------------- views for other parts

    @property
    def enabled_services(self) -> tuple[str, ...]:
        return tuple(name for name, service in self.services.items() if service.enabled)

    def service_specs(self) -> list[ServiceSpec]:
        from app.core.config.specs import to_service_specs

        return to_service_specs(self)

    def host_settings(self) -> HostSettings:
        from app.core.config.specs import to_host_settings

        return to_host_settings(self)

    def model_dir(self, model: str) -> Path:
        """Where a model's files live: ``<cache_dir>/models/<model>``."""
        return self.metadata.cache_dir / "models" / model


def _with_type(types: tuple[str, ...], extra: str | None) -> tuple[str, ...]:
    if extra is None or extra in types:
        return types
    return (*types, extra)
