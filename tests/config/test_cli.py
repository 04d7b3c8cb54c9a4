"""lumen-hub init / validate through app.main.main."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import load_config
from app.main import main

from .helpers import FIXTURES


def test_init_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "cfg" / "config.yaml"
    assert main(["init", "clip,face", "--config", str(target)]) == 0
    out = capsys.readouterr().out
    assert str(target) in out
    config = load_config(target, env={})
    assert config.metadata.region == "other"
    assert {name: s.models["default"].model for name, s in config.services.items()} == {
        "clip": "MobileCLIP2-S2",
        "face": "antelopev2",
    }
    assert all(s.models["default"].runtime == "onnx" for s in config.services.values())
    assert main(["validate", str(target)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "MobileCLIP2-S2 (onnx)" in out and "antelopev2 (onnx)" in out
    assert ":50051" in out and "region:    other" in out


def test_init_all_services_in_cn(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    assert main(["init", "ocr,bioclip", "--region", "cn", "--config", str(target)]) == 0
    config = load_config(target, env={})
    assert config.metadata.region == "cn"
    assert config.services["ocr"].models["default"].model == "PP-OCRv5"
    bioclip = config.services["bioclip"].models["default"]
    assert (bioclip.model, bioclip.dataset) == ("bioclip-2", "TreeOfLife-200M")


def test_init_uses_lumen_config_and_validate_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "env.yaml"
    monkeypatch.setenv("LUMEN_CONFIG", str(target))
    assert main(["init", "clip"]) == 0
    assert target.exists()
    assert main(["validate"]) == 0
    assert str(target) in capsys.readouterr().out


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "config.yaml"
    target.write_text("services: {}\n", encoding="utf-8")
    assert main(["init", "clip", "--config", str(target)]) == 1
    assert "--force" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "services: {}\n"
    assert main(["init", "clip", "--config", str(target), "--force"]) == 0
    assert (tmp_path / "config.yaml.bak").read_text(encoding="utf-8") == "services: {}\n"


def test_init_unknown_service_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "config.yaml"
    assert main(["init", "clip,fase", "--config", str(target)]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'face'" in err and "clip, bioclip, face, ocr" in err
    assert not target.exists()


def test_validate_bad_file_lists_every_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "metadata: {region: eu}\n"
        "services:\n"
        "  clip:\n"
        "    models: {default: {model: MobileCLIP2-S2, runtime: rknn}}\n"
        "    default_model: best\n",
        encoding="utf-8",
    )
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "3 problems" in err
    for path in (
        "metadata.region",
        "services.clip.models.default.rknn_device",
        "services.clip.default_model",
    ):
        assert path in err


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--config", str(tmp_path / "nope.yaml")]) == 1
    assert "lumen-hub init" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["full", "rknn_edge", "blueprint"])
def test_validate_seeds(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(FIXTURES / f"{name}.yaml")]) == 0
    out = capsys.readouterr().out
    assert "region:    cn" in out and "listeners:" in out


def test_validate_summary_shows_listeners_and_mdns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(FIXTURES / "full.yaml")]) == 0
    out = capsys.readouterr().out
    assert ":50050 (hub.server) -> all services; mDNS 'Lumen-AI-Hub'" in out
    assert ":50052 (services.face.server) -> face; mDNS 'Face-Service'" in out
    assert "expert: bioclip-2 (torch, TreeOfLife-200M) -> served by the bioclip service" in out


def test_validate_reports_env_overrides(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LUMEN_NODE__HTTP_PORT", "0")
    assert main(["validate", str(FIXTURES / "rknn_edge.yaml")]) == 0
    out = capsys.readouterr().out
    assert "LUMEN_NODE__HTTP_PORT -> node.http_port" in out and "broker feed" not in out
