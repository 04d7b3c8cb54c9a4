"""Canonical dump, atomic save with .bak, crash safety and round trips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.core.config import backup_path, default_config, dump_config, load_config, save_config
from app.core.config import saving as saving_module

from .helpers import FIXTURES, SEEDS, TEST_ENV


@pytest.mark.parametrize("name", SEEDS)
def test_seed_round_trip_is_equal_and_byte_stable(name: str, tmp_path: Path) -> None:
    original = load_config(FIXTURES / f"{name}.yaml", env=TEST_ENV)
    target = tmp_path / "config.yaml"
    save_config(original, target)
    first = target.read_bytes()
    reloaded = load_config(target, env=TEST_ENV)
    assert reloaded == original
    save_config(reloaded, target)  # unchanged canonical file -> identical bytes
    assert target.read_bytes() == first
    assert dump_config(reloaded) == first.decode("utf-8")


def test_edited_config_round_trips(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    save_config(default_config(["clip", "face"], region="cn"), target)
    config = load_config(target, env=TEST_ENV)
    edited = config.replace_at("node.port", 50060).replace_at("services.face.enabled", False)
    save_config(edited, target)
    again = load_config(target, env=TEST_ENV)
    assert again == edited
    assert again.node.port == 50060 and again.services["face"].enabled is False
    assert again != config


def test_dump_has_stable_section_order() -> None:
    text = dump_config(load_config(FIXTURES / "full.yaml", env=TEST_ENV))
    keys = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    assert keys == ["metadata", "node", "downloads", "dependencies", "services", "hub"]
    assert "import:" in text and "registry_class: lumen_clip.service_registry.CLIPService" in text


def test_save_keeps_previous_file_as_bak(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    target = folder / "config.yaml"
    target.write_text("# my hand-written config\nservices: {}\n", encoding="utf-8")
    save_config(default_config(["ocr"]), target)
    assert backup_path(target).read_text(encoding="utf-8") == "# my hand-written config\nservices: {}\n"
    assert "PP-OCRv5" in target.read_text(encoding="utf-8")
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "config.yaml.bak"]


def test_save_creates_missing_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "config.yaml"
    save_config(default_config(["clip"]), target)
    assert load_config(target, env=TEST_ENV).enabled_services == ("clip",)


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_crash_mid_save_leaves_old_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "config.yaml"
    save_config(default_config(["clip"]), target)
    before = target.read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("simulated crash")

    if failing == "replace":
        monkeypatch.setattr(saving_module.os, "replace", boom)
    else:
        monkeypatch.setattr(saving_module.os, "fsync", boom)
    with pytest.raises(OSError, match="simulated crash"):
        save_config(default_config(["face", "ocr"]), target)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert load_config(target, env=TEST_ENV).enabled_services == ("clip",)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_crash_at_final_replace_keeps_old_file_and_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "config.yaml"
    save_config(default_config(["clip"]), target)
    before = target.read_bytes()
    real_replace = os.replace

    def replace(src: object, dst: object) -> None:
        if Path(dst) == target:
            raise OSError("simulated crash")
        real_replace(src, dst)

    monkeypatch.setattr(saving_module.os, "replace", replace)
    with pytest.raises(OSError):
        save_config(default_config(["face"]), target)
    assert target.read_bytes() == before
    assert backup_path(target).read_bytes() == before


def test_save_keeps_file_mode(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    save_config(default_config(["clip"]), target)
    os.chmod(target, 0o640)
    save_config(default_config(["face"]), target)
    assert target.stat().st_mode & 0o777 == 0o640


def test_tricky_scalars_round_trip(tmp_path: Path) -> None:
    from .helpers import parse

    config = parse(
        """
        node: {name: "on", admin_token: "null", mdns: {instance_name: "Wohnzimmer-Knoten ü 123"}}
        services:
          clip:
            models: {"1.0": {model: "1.5", runtime: onnx, precision: FP16}}
            env: {A: "true", B: 8, C: "", D: yes}
        """
    )
    assert config.node.name == "on" and config.node.admin_token == "null"
    assert config.services["clip"].env == {"A": "true", "B": "8", "C": "", "D": "true"}
    target = tmp_path / "c.yaml"
    save_config(config, target)
    assert load_config(target, env=TEST_ENV) == config
    assert dump_config(load_config(target, env=TEST_ENV)) == target.read_text(encoding="utf-8")


def test_save_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    link = tmp_path / "link.yaml"
    save_config(default_config(["clip"]), real)
    link.symlink_to(real)
    save_config(default_config(["face"]), link)
    assert link.is_symlink()
    assert load_config(real, env=TEST_ENV).enabled_services == ("face",)
