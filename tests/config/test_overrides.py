"""LUMEN_<SECTION>__<KEY> environment overrides, typed by the model field."""

from __future__ import annotations

from pathlib import Path

from app.core.config import read_config

from .helpers import FIXTURES, TEST_ENV, issues_of, parse

BASE = "services: {clip: {models: {default: {model: MobileCLIP2-S2, runtime: onnx}}}}\n"


def env(**variables: str) -> dict[str, str]:
    return {**TEST_ENV, **variables}


def test_typed_overrides_applied() -> None:
    config = parse(
        BASE,
        env=env(
            LUMEN_NODE__PORT="50060",
            LUMEN_METADATA__REGION="cn",
            LUMEN_NODE__MDNS__ENABLED="false",
            LUMEN_NODE__BATCH_MAX_WAIT_MS="2.5",
            LUMEN_NODE__EXECUTION_PROVIDERS="CUDAExecutionProvider, CPUExecutionProvider",
            LUMEN_NODE__ADMIN_TOKEN="s3cret",
            LUMEN_DOWNLOADS__ENDPOINTS__HUGGINGFACE="http://127.0.0.1:9000/",
            LUMEN_SERVICES__CLIP__PRELOAD="yes",
            LUMEN_SERVICES__CLIP__ENV__CLIP_BATCH_SIZE="4",
        ),
    )
    assert config.node.port == 50060 and config.main_port == 50060
    assert config.metadata.region == "cn"
    assert config.node.mdns.enabled is False
    assert config.node.batch_max_wait_ms == 2.5
    assert config.node.execution_providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert config.node.admin_token == "s3cret"
    assert config.downloads.endpoints.huggingface == "http://127.0.0.1:9000"
    assert config.services["clip"].preload is True
    assert config.services["clip"].env == {"CLIP_BATCH_SIZE": "4"}


def test_override_beats_file_and_null_clears_optional() -> None:
    text = BASE + "node: {port: 50070, name: kitchen-pc}\n"
    config = parse(text, env=env(LUMEN_NODE__PORT="50071", LUMEN_NODE__NAME="null"))
    assert config.node.port == 50071 and config.node.name is None


def test_yaml_list_value() -> None:
    config = parse(BASE, env=env(LUMEN_NODE__MDNS__TYPES="[_lumen._tcp.local.]"))
    assert config.node.mdns.types == ("_lumen._tcp.local.",)


def test_wrong_type_names_variable_type_and_value() -> None:
    issues = issues_of(BASE, env=env(LUMEN_NODE__PORT="fifty"))
    message = issues["node.port"]
    assert "LUMEN_NODE__PORT" in message and "'fifty'" in message and "whole number" in message


def test_wrong_bool_and_literal() -> None:
    issues = issues_of(BASE, env=env(LUMEN_NODE__MDNS__ENABLED="perhaps", LUMEN_METADATA__REGION="eu"))
    assert (
        "LUMEN_NODE__MDNS__ENABLED" in issues["node.mdns.enabled"]
        and "boolean" in issues["node.mdns.enabled"]
    )
    assert "cn, other" in issues["metadata.region"] and "LUMEN_METADATA__REGION" in issues["metadata.region"]


def test_unknown_override_key_did_you_mean() -> None:
    issues = issues_of(BASE, env=env(LUMEN_NODE__PROT="50060"))
    assert "LUMEN_NODE__PROT" in issues["node"] and "did you mean 'PORT'?" in issues["node"]


def test_validation_error_after_override_names_the_variable() -> None:
    issues = issues_of(BASE, env=env(LUMEN_NODE__PORT="80"))
    assert "1024" in issues["node.port"] and "LUMEN_NODE__PORT" in issues["node.port"]


def test_non_override_variables_ignored() -> None:
    config = parse(BASE, env=env(LUMEN_CONFIG="/elsewhere.yaml", LUMEN_FOO="1"))
    assert config.node.port == 50051


def test_overrides_reported_and_can_be_switched_off() -> None:
    path = FIXTURES / "rknn_edge.yaml"
    loaded = read_config(path, env=env(LUMEN_NODE__HTTP_PORT="0"))
    assert loaded.overrides == {"node.http_port": "LUMEN_NODE__HTTP_PORT"}
    assert loaded.config.node.http_port == 0
    plain = read_config(path, env=env(LUMEN_NODE__HTTP_PORT="0"), apply_overrides=False)
    assert plain.config.node.http_port == 50080


def test_hub_port_override_creates_main_port() -> None:
    config = parse(BASE, env=env(LUMEN_HUB__SERVER__PORT="50090"))
    assert config.main_port == 50090


def test_cache_dir_override_is_expanded() -> None:
    config = parse(BASE, env=env(LUMEN_METADATA__CACHE_DIR="~/models"))
    assert config.metadata.cache_dir == Path("/home/tester/models")
