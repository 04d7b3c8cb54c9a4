"""Listener mapping, --port overrides and the service specs handed to the service host."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import ConfigError, load_config

from .helpers import FIXTURES, TEST_ENV, parse

TWO_SERVICES = """
metadata: {cache_dir: /srv/cache}
services:
  clip:
    models: {default: {model: MobileCLIP2-S2, runtime: onnx}}
    server: {port: 50061, mdns: {enabled: false, name: c}}
  face:
    models: {default: {model: antelopev2, runtime: onnx}}
    server: {port: 50062, mdns: {enabled: true, type: "_face._tcp.local."}}
"""


def test_without_hub_main_port_is_node_port_and_services_get_listeners() -> None:
    config = parse(TWO_SERVICES)
    main, clip, face = config.listeners()
    assert (main.port, main.services, main.mdns_name, main.is_main) == (50051, None, None, True)
    assert (clip.port, clip.services, clip.mdns_enabled) == (50061, ("clip",), False)
    assert (face.port, face.mdns_enabled, face.mdns_name, face.mdns_types) == (
        50062,
        True,
        None,
        ("_face._tcp.local.",),
    )
    assert face.mdns_type == "_face._tcp.local."


def test_disabled_hub_falls_back_to_node_port() -> None:
    config = parse(TWO_SERVICES + "hub: {enabled: false, server: {port: 50061}}\n")
    assert config.main_port == 50051  # and no clash with clip's 50061


def test_node_mdns_switch_turns_everything_off() -> None:
    config = parse(TWO_SERVICES + "node: {mdns: {enabled: false}}\n")
    assert not any(listener.mdns_enabled for listener in config.listeners())


def test_with_main_port_moves_hub_or_node_port() -> None:
    full = load_config(FIXTURES / "full.yaml", env=TEST_ENV)
    moved = full.with_main_port(50070)
    assert moved.main_port == 50070 and moved.hub is not None and moved.hub.server.port == 50070
    edge = load_config(FIXTURES / "rknn_edge.yaml", env=TEST_ENV).with_main_port(50071)
    assert edge.node.port == 50071
    # clip (50051) now needs its own listener
    assert [(li.port, li.services) for li in edge.listeners()] == [(50071, None), (50051, ("clip",))]


def test_with_main_port_onto_a_service_port_merges_it() -> None:
    full = load_config(FIXTURES / "full.yaml", env=TEST_ENV).with_main_port(50052)
    assert [(li.port, li.services) for li in full.listeners()] == [
        (50052, None),
        (50051, ("clip", "bioclip")),
    ]


def test_with_main_port_validates() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(FIXTURES / "full.yaml", env=TEST_ENV).with_main_port(50080)
    assert caught.value.paths == ["node.http_port"]


def test_specs_skip_disabled_and_resolve_paths() -> None:
    config = parse(TWO_SERVICES.replace("  face:\n", "  face:\n    enabled: false\n"))
    (clip,) = config.service_specs()
    assert clip.name == "clip" and clip.models[0].path == Path("/srv/cache/models/MobileCLIP2-S2")


def test_bioclip_models_under_clip_join_an_explicit_bioclip_service() -> None:
    config = parse(
        """
        services:
          clip:
            models:
              main: {model: MobileCLIP2-S2, runtime: onnx}
              default: {model: bioclip-2, runtime: onnx}
            default_model: default
          bioclip:
            models: {default: {model: bioclip-2, runtime: onnx, dataset: TreeOfLife-200M}}
        """
    )
    specs = {spec.name: spec for spec in config.service_specs()}
    assert specs["clip"].default_model == "main"
    assert [m.alias for m in specs["bioclip"].models] == ["default", "clip-default"]
    assert specs["bioclip"].default_model == "default"


def test_bioclip_only_clip_becomes_bioclip_and_disabled_bioclip_drops_it() -> None:
    text = "services:\n  clip: {models: {default: {model: bioclip-2, runtime: onnx}}}\n"
    assert [s.name for s in parse(text).service_specs()] == ["bioclip"]
    disabled = text + "  bioclip: {enabled: false}\n"
    assert parse(disabled).service_specs() == []


def test_host_settings_from_node_section() -> None:
    config = parse(
        "node: {max_loaded_models: 2, max_concurrency: 3, execution_providers: [CPUExecutionProvider]}"
    )
    settings = config.host_settings()
    assert settings.max_loaded_models == 2 and settings.max_concurrency_per_model == 3
    assert settings.execution_providers == ("CPUExecutionProvider",)
    assert settings.model_idle_ttl_s == 600.0
    assert (settings.intra_op_threads, settings.spin_wait) == (0, None)  # automatic
    tuned = parse("node: {cpu_threads: 2, cpu_spin_wait: true}").host_settings()
    assert (tuned.intra_op_threads, tuned.spin_wait) == (2, True)


def test_clip_listener_with_only_bioclip_models_serves_bioclip() -> None:
    config = parse(
        "services:\n"
        "  clip:\n"
        "    models: {default: {model: bioclip-2, runtime: onnx}}\n"
        "    server: {port: 50061}\n"
    )
    assert [(li.port, li.services) for li in config.listeners()] == [(50051, None), (50061, ("bioclip",))]


def test_replace_at_expands_paths_and_reports_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/editor")
    config = parse(TWO_SERVICES).replace_at("metadata.cache_dir", "~/models")
    assert config.metadata.cache_dir == Path("/home/editor/models")
    with pytest.raises(ConfigError) as caught:
        config.replace_at("services.clip.models.default.runtime", "tensorrt")
    assert caught.value.paths == ["services.clip.models.default.runtime"]
