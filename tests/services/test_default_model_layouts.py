"""The default models of ``lumen-hub init`` (face antelopev2, ocr PP-OCRv5, both onnx) load and
answer when downloaded in the real repository layouts (MODEL_FORMATS §5, §6): a stand-in
repository with generated graphs of the real signatures is "downloaded" with the downloader's
own file selection into the cache, then served from the config's service specs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.config.templates import DEFAULT_MODELS
from app.core.config.validation import validate_data
from app.core.downloads.selection import plan_files, requests_from_config
from services.api import InferenceRequest, ServiceState
from services.host import ServiceHost
from services.model_info import load_model_info
from tests.face.scrfd_model import PACK_NAMES, Planted, build_scrfd_model
from tests.services.face_ocr_support import encoded
from tests.support.standin_models import (
    ARCFACE_DIM,
    build_arcface_like,
    build_db_detector,
    build_sequence_recogniser,
)

DICTIONARY = ["L", "u", "m", "e", "n", "光"]
PLANTED_TEXT = "Lumen光"
ONNX_FILES = [f"onnx/{c}.{p}.onnx" for p in ("fp32", "fp16") for c in ("detection", "recognition")]
FACE = Planted(16, 20, 20, 0, 0.9, (3, 3, 3, 3), (-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -0.8, 1.0, 0.8, 1.0))


def _info(name: str, model_type: str, runtimes: dict, **extra: object) -> dict:
    return {
        "name": name,
        "version": "1.0.0",
        "description": f"stand-in for {name}",
        "model_type": model_type,
        "source": {"format": "custom", "repo_id": f"Lumilio-Photos/{name}"},
        "runtimes": runtimes,
        **extra,
    }


HUB_FACE = _info(  # Lumen-Hub tools/insightface/model_info.example.json
    "antelopev2",
    "face",
    {"onnx": {"available": True, "components": ["detection", "recognition"], "precisions": ["fp32"]}},
    task_metadata={
        "tasks": {
            "face_recognition": {
                "pack": "antelopev2",
                "detection": {
                    "component": "detection",
                    "input_name": "input.1",
                    "output_names": list(PACK_NAMES),
                },
                "recognition": {"component": "recognition", "input_name": "input.1", "output_name": "1333"},
            }
        }
    },
)
PY_FACE = _info(  # Python Lumen (ModelScope LumilioPhotos): file lists, per-device RKNN files
    "antelopev2",
    "face",
    {
        "onnx": {"available": True, "files": ONNX_FILES},
        "rknn": {"available": True, "files": {"rk3588": ["rknn/rk3588/detection.fp16.rknn"]}},
    },
    embedding_dim=512,
)
HUB_OCR = _info(  # Lumen-Hub tools/ppocr/model_info.example.json
    "PP-OCRv5",
    "ocr",
    {"onnx": {"available": True, "components": ["detection", "recognition"], "precisions": ["fp32"]}},
    task_metadata={
        "tasks": {
            "ocr": {
                "detection": {
                    "component": "detection",
                    "input_name": "x",
                    "output_name": "fetch_name_0",
                    "mean": [0.485, 0.456, 0.406],
                    "std": [0.229, 0.224, 0.225],
                    "limit_side_len": 960,
                    "thresh": 0.3,
                    "box_thresh": 0.6,
                    "unclip_ratio": 1.5,
                },
                "recognition": {
                    "component": "recognition",
                    "input_name": "x",
                    "output_name": "fetch_name_0",
                    "image_shape": [3, 48, 320],
                    "character_dict_path": "ppocrv5_dict.txt",
                    "use_space_char": True,
                },
            }
        }
    },
)
PY_OCR = _info(
    "PP-OCRv5",
    "ocr",
    {"onnx": {"available": True, "files": ONNX_FILES}},
    extra_metadata={
        "det_config": {"thresh": 0.3, "box_thresh": 0.6, "unclip_ratio": 1.5, "limit_side_len": 960},
        "rec_config": {"character_dict_path": "ppocrv5_dict.txt", "use_space_char": True},
    },
)


def _face_repo(root: Path, info: dict) -> Path:
    (root / "onnx").mkdir(parents=True)
    build_scrfd_model(root / "onnx" / "detection.fp32.onnx", [FACE])  # SCRFD's 9 outputs, pack names
    build_arcface_like(root / "onnx" / "recognition.fp32.onnx")
    for other in ("onnx/detection.fp16.onnx", "onnx/recognition.fp16.onnx", "burn/detection.fp32.bpk"):
        (root / other).parent.mkdir(parents=True, exist_ok=True)
        (root / other).write_bytes(b"not for onnx fp32")
    (root / "rknn" / "rk3588").mkdir(parents=True)
    (root / "rknn" / "rk3588" / "detection.fp16.rknn").write_bytes(b"rknn")
    (root / "model_info.json").write_text(json.dumps(info), encoding="utf-8")
    return root


def _ocr_repo(root: Path, info: dict, dictionary_at: str) -> Path:
    build_db_detector(root / "onnx" / "detection.fp32.onnx")
    planted = [DICTIONARY.index(ch) + 1 for ch in PLANTED_TEXT]  # class 0 is the CTC blank
    build_sequence_recogniser(root / "onnx" / "recognition.fp32.onnx", len(DICTIONARY) + 2, planted)
    for other in ("onnx/detection.fp16.onnx", "onnx/recognition.fp16.onnx", "burn/recognition.fp32.bpk"):
        (root / other).parent.mkdir(parents=True, exist_ok=True)
        (root / other).write_bytes(b"not for onnx fp32")
    (root / dictionary_at).write_text("\n".join(DICTIONARY) + "\n", encoding="utf-8")
    (root / "model_info.json").write_text(json.dumps(info), encoding="utf-8")
    return root


def _download(remote: Path, cache: Path, config) -> dict[str, list[str]]:
    """Copy what the downloader would fetch for the config into ``<cache>/models/<model>``."""
    fetched = {}
    for request in requests_from_config(config):
        repo = remote / request.model
        paths = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
        chosen = plan_files(load_model_info(repo), paths, request.variants)
        for rel in chosen:
            target = cache / "models" / request.model / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(repo / rel, target)
        fetched[request.model] = chosen
    return fetched


@pytest.mark.parametrize(
    ("face_info", "ocr_info", "dictionary_at"),
    [
        pytest.param(HUB_FACE, HUB_OCR, "ppocrv5_dict.txt", id="lumen-hub-dialect"),
        pytest.param(PY_FACE, PY_OCR, "onnx/ppocrv5_dict.txt", id="python-lumen-dialect"),
    ],
)
async def test_default_face_and_ocr_models_load_from_the_real_layouts(
    tmp_path, face_info, ocr_info, dictionary_at
):
    assert DEFAULT_MODELS["face"] == {"model": "antelopev2", "runtime": "onnx"}
    assert DEFAULT_MODELS["ocr"] == {"model": "PP-OCRv5", "runtime": "onnx"}
    remote, cache = tmp_path / "remote", tmp_path / "cache"
    _face_repo(remote / "antelopev2", face_info)
    _ocr_repo(remote / "PP-OCRv5", ocr_info, dictionary_at)
    config = validate_data(
        {
            "metadata": {"version": "1.0", "region": "other", "cache_dir": str(cache)},
            "services": {
                name: {
                    "enabled": True,
                    "models": {"default": dict(DEFAULT_MODELS[name])},
                    "default_model": "default",
                }
                for name in ("face", "ocr")
            },
        }
    )
    fetched = _download(remote, cache, config)
    assert set(fetched["antelopev2"]) == {
        "model_info.json",
        "onnx/detection.fp32.onnx",
        "onnx/recognition.fp32.onnx",
    }
    assert set(fetched["PP-OCRv5"]) == {
        "model_info.json",
        "onnx/detection.fp32.onnx",
        "onnx/recognition.fp32.onnx",
        dictionary_at,
    }

    host = ServiceHost(config.service_specs(), config.host_settings())
    try:
        assert [s.state for s in host.statuses()] == [ServiceState.NOT_LOADED] * 2
        for size in (640, 1280):  # the planted face lands at the same place of any square photo
            photo = encoded(Image.new("RGB", (size, size), (120, 110, 100)), "JPEG")
            faces = (await host.infer(InferenceRequest("face_recognition", photo, "image/jpeg"))).data
            assert faces["count"] == 1 and faces["model_id"] == "antelopev2"
            scale = size / 640
            assert np.allclose(faces["faces"][0]["bbox"], np.array([272, 272, 368, 368]) * scale, atol=0.5)
            embedding = np.asarray(faces["faces"][0]["embedding"])
            assert embedding.shape == (ARCFACE_DIM,) and np.linalg.norm(embedding) == pytest.approx(
                1, abs=1e-5
            )

        page = Image.new("RGB", (640, 200), "white")
        page.paste((0, 0, 0), (100, 60, 500, 120))
        text = (await host.infer(InferenceRequest("ocr", encoded(page), "image/png"))).data
        assert [item["text"] for item in text["items"]] == [PLANTED_TEXT] and text["model_id"] == "PP-OCRv5"
        (tl, tr, br, bl) = text["items"][0]["box"]
        assert tl[0] <= 100 and tl[1] <= 60 and br[0] >= 499 and br[1] >= 119  # encloses the ink
        assert all(isinstance(v, int) for point in (tl, tr, br, bl) for v in point)

        face_cap, ocr_cap = host.capabilities()
        assert face_cap.extra["detector"] == "scrfd" and face_cap.extra["embedding_dim"] == str(ARCFACE_DIM)
        assert face_cap.extra["pack"] == "antelopev2" and face_cap.precisions == ("fp32",)
        assert (
            ocr_cap.extra["dictionary_size"] == str(len(DICTIONARY)) and ocr_cap.extra["classifier"] == "no"
        )
    finally:
        await host.stop()
