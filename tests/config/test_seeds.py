"""The three seed examples validate and map onto listeners and service specs as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import load_config, read_config

from .helpers import FIXTURES, SEEDS, TEST_ENV


@pytest.mark.parametrize("name", SEEDS)
def test_seed_validates(name: str) -> None:
    config = load_config(FIXTURES / f"{name}.yaml", env=TEST_ENV)
    assert config.metadata.region == "cn"
    assert config.enabled_services


def test_forms_are_detected() -> None:
    assert read_config(FIXTURES / "full.yaml", env=TEST_ENV).source_format == "lumen-resources"
    assert read_config(FIXTURES / "rknn_edge.yaml", env=TEST_ENV).source_format == "lumen-resources"
    assert read_config(FIXTURES / "blueprint.yaml", env=TEST_ENV).source_format == "blueprint"


def test_full_example_listeners() -> None:
    config = load_config(FIXTURES / "full.yaml", env=TEST_ENV)
    assert config.main_port == 50050
    main, clip, face = config.listeners()
    assert (main.port, main.services, main.mdns_name, main.source) == (
        50050,
        None,
        "Lumen-AI-Hub",
        "hub.server",
    )
    assert "_lumen._tcp.local." in main.mdns_types and "_homenative-node._tcp.local." in main.mdns_types
    # clip has its own port: an extra listener; its bioclip-family expert model goes with it.
    assert (clip.port, clip.services, clip.mdns_name) == (50051, ("clip", "bioclip"), "CLIP-Service")
    assert clip.mdns_types == ("_homenative-node._tcp.local.",)
    assert (face.port, face.services, face.mdns_name, face.mdns_enabled) == (
        50052,
        ("face",),
        "Face-Service",
        True,
    )


def test_full_example_cache_dir_and_specs() -> None:
    config = load_config(FIXTURES / "full.yaml", env=TEST_ENV)
    assert config.metadata.cache_dir == Path("/home/tester/.lumen/models")
    specs = {spec.name: spec for spec in config.service_specs()}
    assert list(specs) == ["clip", "bioclip", "face"]
    (clip_model,) = specs["clip"].models
    assert (clip_model.alias, clip_model.model, clip_model.runtime) == ("default", "MobileCLIP2-S2", "onnx")
    assert clip_model.path == Path("/home/tester/.lumen/models/models/MobileCLIP2-S2")
    assert specs["clip"].env == {"CLIP_BACKEND": "onnx", "CLIP_BATCH_SIZE": "8"}
    (expert,) = specs["bioclip"].models
    assert (expert.alias, expert.model, expert.runtime, expert.dataset) == (
        "expert",
        "bioclip-2",
        "torch",
        "TreeOfLife-200M",
    )
    assert specs["bioclip"].default_model == "expert"
    # the config itself keeps the expert model under clip, as written
    assert list(config.services["clip"].models) == ["default", "expert"]


def test_rknn_edge_listeners_and_device() -> None:
    config = load_config(FIXTURES / "rknn_edge.yaml", env=TEST_ENV)
    assert config.hub is None
    assert config.main_port == 50051
    (main,) = config.listeners()  # clip's server port is the main port: no extra listener
    assert (main.port, main.services, main.source) == (50051, None, "node")
    assert main.mdns_name == "CLIP-Edge-RK3588"
    model = config.services["clip"].models["default"]
    assert (model.runtime, model.rknn_device) == ("rknn", "rk3588")
    (spec,) = config.service_specs()
    assert spec.models[0].rknn_device == "rk3588"
    assert spec.models[0].path == Path("/data/lumen/models/models/MobileCLIP2-S2")


def test_blueprint_normalised() -> None:
    config = load_config(FIXTURES / "blueprint.yaml", env=TEST_ENV)
    assert config.metadata.cache_dir == Path("/opt/lumen/models")
    assert config.hub is not None and config.hub.enabled
    assert list(config.services["clip"].models) == ["default", "bioclip-2"]
    assert config.services["clip"].default_model == "default"
    face = config.services["face"].models["default"]
    assert (face.model, face.runtime, face.rknn_device) == ("antelopev2", "rknn", "rk3588")
    (main,) = config.listeners()
    assert (main.port, main.services, main.mdns_name, main.mdns_enabled) == (
        50051,
        None,
        "Lumen-AI-Hub-MacStudio",
        True,
    )
    assert [spec.name for spec in config.service_specs()] == ["clip", "bioclip", "face"]


def test_commented_reference_template_validates() -> None:
    template = Path(__file__).resolve().parents[2] / "assets" / "config" / "lumen-node.example.yaml"
    config = load_config(template, env=TEST_ENV)
    assert config.enabled_services == ("clip", "face")
    assert config.metadata.cache_dir == Path("/home/tester/lumen-models")
