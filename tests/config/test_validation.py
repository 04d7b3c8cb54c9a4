"""One test per validation rule: the error names the YAML path and what is allowed."""

from __future__ import annotations

import pytest

from app.core.config import ConfigError, NodeConfig, parse_config

from .helpers import TEST_ENV, issues_of, parse

MINIMAL = """
metadata: {version: "1.0", region: other, cache_dir: /srv/lumen}
services:
  clip:
    models:
      default: {model: MobileCLIP2-S2, runtime: onnx}
"""


def test_minimal_is_valid_and_fills_defaults() -> None:
    config = parse(MINIMAL)
    assert config.services["clip"].enabled
    assert config.services["clip"].default_model == "default"
    assert config.node.port == 50051 and config.node.http_port == 50080
    assert config.node.mdns.types == ("_lumen._tcp.local.", "_homenative-node._tcp.local.")
    assert config.downloads.owners.huggingface == "Lumilio-Photos"


def test_region() -> None:
    issues = issues_of("metadata: {region: eu}")
    assert list(issues) == ["metadata.region"]
    assert "cn, other" in issues["metadata.region"] and "'eu'" in issues["metadata.region"]


@pytest.mark.parametrize("version", ['"1.0"', "1.0", '"1.2.3"', '"2.0.0-rc.1"'])
def test_version_accepted(version: str) -> None:
    assert parse(f"metadata: {{version: {version}}}").metadata.version.startswith(("1.", "2."))


def test_version_rejected() -> None:
    issues = issues_of('metadata: {version: "one"}')
    assert "1.0" in issues["metadata.version"] and "semantic version" in issues["metadata.version"]


def test_runtime() -> None:
    issues = issues_of(MINIMAL.replace("runtime: onnx", "runtime: tensorrt"))
    message = issues["services.clip.models.default.runtime"]
    assert "torch, onnx, rknn" in message and "tensorrt" in message


def test_runtime_required() -> None:
    issues = issues_of(MINIMAL.replace(", runtime: onnx", ""))
    assert issues["services.clip.models.default.runtime"] == "is required; one of: torch, onnx, rknn"


def test_rknn_device_required_for_rknn() -> None:
    issues = issues_of(MINIMAL.replace("runtime: onnx", "runtime: rknn"))
    message = issues["services.clip.models.default.rknn_device"]
    for device in ("rk3566", "rk3568", "rk3576", "rk3588"):
        assert device in message


def test_rknn_device_pattern() -> None:
    issues = issues_of(MINIMAL.replace("runtime: onnx", "runtime: rknn, rknn_device: npu1"))
    message = issues["services.clip.models.default.rknn_device"]
    assert "rk<digits>" in message and "rk3588" in message


def test_rknn_device_normalised_and_device_alias() -> None:
    config = parse(MINIMAL.replace("runtime: onnx", "runtime: rknn, device: RK3576"))
    assert config.services["clip"].models["default"].rknn_device == "rk3576"


def test_blueprint_device_error_names_the_written_path() -> None:
    issues = issues_of(
        """
        services:
          face:
            models:
              - {model: antelopev2, runtime: rknn, device: mali}
        """
    )
    assert "services.face.models[0].device" in issues


def test_rknn_device_only_with_rknn_runtime() -> None:
    issues = issues_of(MINIMAL.replace("runtime: onnx", "runtime: onnx, rknn_device: rk3588"))
    assert "runtime: rknn" in issues["services.clip.models.default.rknn_device"]


@pytest.mark.parametrize(
    ("snippet", "path"),
    [
        ("hub: {server: {port: 80}}", "hub.server.port"),
        ("hub: {server: {port: 70000}}", "hub.server.port"),
        ("node: {port: 1000}", "node.port"),
        ("node: {http_port: 65536}", "node.http_port"),
    ],
)
def test_port_range(snippet: str, path: str) -> None:
    issues = issues_of(snippet)
    assert "1024" in issues[path] and "65535" in issues[path]


def test_service_port_range() -> None:
    issues = issues_of(MINIMAL + "    server: {port: 443}\n")
    assert "1024 to 65535" in issues["services.clip.server.port"]


def test_port_zero_allowed_for_node_port_and_http_port() -> None:
    config = parse("node: {port: 0, http_port: 0}")
    assert config.main_port == 0


def test_two_servers_on_one_port() -> None:
    text = """
    hub: {server: {port: 50050}}
    services:
      clip:
        models: {default: {model: MobileCLIP2-S2, runtime: onnx}}
        server: {port: 50052}
      face:
        models: {default: {model: antelopev2, runtime: onnx}}
        server: {port: 50052}
    """
    issues = issues_of(text)
    assert list(issues) == ["services.face.server.port"]
    assert "services.clip.server.port" in issues["services.face.server.port"]


def test_http_port_collides_with_main_port() -> None:
    issues = issues_of("hub: {server: {port: 50080}}")
    assert "hub.server.port" in issues["node.http_port"]


def test_service_on_main_port_is_not_a_conflict() -> None:
    config = parse(MINIMAL + "    server: {port: 50051}\n")
    assert len(config.listeners()) == 1


def test_default_model_must_name_an_alias() -> None:
    text = MINIMAL + "      expert: {model: bioclip-2, runtime: torch}\n    default_model: best\n"
    issues = issues_of(text)
    message = issues["services.clip.default_model"]
    assert "'best'" in message and "default, expert" in message


def test_enabled_service_needs_models() -> None:
    issues = issues_of("services: {ocr: {enabled: true}}")
    assert "at least one model" in issues["services.ocr.models"]
    assert parse("services: {ocr: {enabled: false}}").services["ocr"].enabled is False


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("é" * 32, "64 bytes"), ("", "non-empty"), ("   ", "non-empty"), ("bad\tname", "control")],
)
def test_mdns_instance_name(name: str, fragment: str) -> None:
    issues = issues_of(f'hub: {{server: {{port: 50050, mdns: {{name: "{name}"}}}}}}')
    assert fragment in issues["hub.server.mdns.name"]
    assert "63 bytes" in issues["hub.server.mdns.name"] or fragment == "control"


def test_mdns_instance_name_without_dots() -> None:
    issues = issues_of('node: {mdns: {instance_name: "Living.Room"}}')
    assert "must not contain '.'" in issues["node.mdns.instance_name"]
    assert "'Living-Room'" in issues["node.mdns.instance_name"]


def test_mdns_instance_name_63_bytes_is_fine() -> None:
    config = parse(f'node: {{mdns: {{instance_name: "{"é" * 31}x"}}}}')
    assert len(config.node.mdns.instance_name.encode()) == 63


def test_mdns_service_type() -> None:
    issues = issues_of('hub: {server: {port: 50050, mdns: {type: "_lumen._http.local."}}}')
    assert "_name._tcp.local." in issues["hub.server.mdns.type"]
    issues = issues_of('node: {mdns: {types: ["_lumen._tcp.local.", "lumen.local"]}}')
    assert "node.mdns.types[1]" in issues


def test_mdns_service_type_trailing_dot_added_and_udp_allowed() -> None:
    config = parse('node: {mdns: {types: ["_lumen._tcp.local", "_x-y._udp.local."]}}')
    assert config.node.mdns.types == ("_lumen._tcp.local.", "_x-y._udp.local.")


def test_unknown_key_did_you_mean() -> None:
    issues = issues_of(MINIMAL + "    defualt_model: default\n")
    message = issues["services.clip.defualt_model"]
    assert "did you mean 'default_model'?" in message and "allowed:" in message


def test_unknown_top_level_key() -> None:
    issues = issues_of("servics: {}")
    assert "did you mean 'services'?" in issues["servics"]


def test_unknown_node_key() -> None:
    issues = issues_of("node: {prot: 50051}")
    assert "did you mean 'port'?" in issues["node.prot"]


def test_unknown_service_name() -> None:
    issues = issues_of("services: {clipp: {models: {default: {model: x, runtime: onnx}}}}")
    message = issues["services.clipp"]
    assert "did you mean 'clip'?" in message and "clip, bioclip, face, ocr" in message


def test_siglip_is_an_alias_of_clip() -> None:
    config = parse("services: {siglip: {models: {default: {model: MobileCLIP2-S2, runtime: onnx}}}}")
    assert list(config.services) == ["clip"]


def test_registry_class_must_be_builtin() -> None:
    text = MINIMAL + "    import: {registry_class: my_pkg.registry.FancyService}\n"
    message = issues_of(text)["services.clip.import.registry_class"]
    assert "is not a built-in service; built-in: clip, bioclip, face, ocr" in message


@pytest.mark.parametrize(
    "registry_class",
    ["lumen_clip.service_registry.CLIPService", "somewhere.else.CLIPService", "CLIPService"],
)
def test_known_registry_class_accepted(registry_class: str) -> None:
    config = parse(MINIMAL + f"    import: {{registry_class: {registry_class}, add_to_server: x.y}}\n")
    assert config.services["clip"].import_ is not None


def test_registry_class_of_another_service() -> None:
    text = MINIMAL + "    import: {registry_class: lumen_face.service_registry.FaceService}\n"
    assert "face service" in issues_of(text)["services.clip.import.registry_class"]


def test_model_name_without_owner() -> None:
    issues = issues_of(MINIMAL.replace("MobileCLIP2-S2", "someone/MobileCLIP2-S2"))
    assert "downloads.owners" in issues["services.clip.models.default.model"]


def test_wrong_type_messages() -> None:
    issues = issues_of("node: {max_loaded_models: many, forwarding: maybe, mdns: []}")
    assert "whole number" in issues["node.max_loaded_models"]
    assert "true or false" in issues["node.forwarding"]
    assert "mapping" in issues["node.mdns"] and "instance_name" in issues["node.mdns"]


def test_every_issue_is_listed_one_per_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("metadata: {region: eu}\nnode: {prot: 1, log_level: loud}\n", env=TEST_ENV)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert {line.split(":")[0] for line in lines} == {"metadata.region", "node.prot", "node.log_level"}


def test_duplicate_yaml_key() -> None:
    issues = issues_of("node: {port: 50051}\nnode: {port: 50052}\n")
    assert "duplicate key 'node'" in issues[""]


def test_yaml_syntax_error_names_line() -> None:
    issues = issues_of("node:\n  port: [1, 2\n")
    assert "line" in issues[""] and "YAML" in issues[""]


def test_blueprint_resources() -> None:
    config = parse("resources: {region: other, cache_dir: /srv/m}")
    assert str(config.metadata.cache_dir) == "/srv/m"
    issues = issues_of("resources: {region: mars, cachedir: /x}")
    assert "cn, other" in issues["resources.region"]
    assert "did you mean 'cache_dir'?" in issues["resources.cachedir"]
    assert "not both" in issues_of("resources: {}\nmetadata: {}")["resources"]


def test_blueprint_aliases_unique() -> None:
    config = parse(
        """
        services:
          clip:
            models:
              - {model: MobileCLIP2-S2, runtime: onnx}
              - {model: MobileCLIP2-S2, runtime: torch}
              - {model: MobileCLIP2-S2, runtime: rknn, device: rk3588}
              - {model: ViT-B-32, runtime: onnx, alias: vit}
        """
    )
    models = config.services["clip"].models
    assert list(models) == ["default", "MobileCLIP2-S2", "MobileCLIP2-S2-2", "vit"]
    assert models["MobileCLIP2-S2-2"].rknn_device == "rk3588"


def test_direct_construction_is_validated_and_frozen() -> None:
    config = NodeConfig()
    assert config.services == {} and config.main_port == 50051
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        config.node = None  # type: ignore[misc]


def test_blueprint_service_list_shorthand() -> None:
    config = parse("services: [clip, ocr]")
    assert {name: s.models["default"].model for name, s in config.services.items()} == {
        "clip": "MobileCLIP2-S2",
        "ocr": "PP-OCRv5",
    }
    assert "did you mean 'face'?" in issues_of("services: [clip, fase]")["services.fase"]
