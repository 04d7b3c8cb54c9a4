from __future__ import annotations

import json

import numpy as np
import pytest

from services.component_files import ComponentNotFound
from services.face import (
    ARCFACE_SPEC,
    MOBILEFACENET_SPEC,
    FaceParams,
    ScrfdDetector,
    YunetDetector,
    open_face_pipeline,
    resolve_face_model,
)
from services.model_info import ModelInfoError
from tests.face.recogniser_models import build_mean_model
from tests.face.scrfd_model import Planted, build_scrfd_model


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"onnx")
    return path


def test_insightface_pack_layout(tmp_path):
    pack = tmp_path / "buffalo_l"
    for name in (
        "detection.fp32.onnx",
        "detection.fp16.onnx",
        "recognition.fp16.onnx",
        "recognition.fp32.onnx",
    ):
        _touch(pack / "onnx" / name)
    files = resolve_face_model(pack)
    assert files.family == "scrfd" and files.pack == "buffalo_l" and files.model_id == "buffalo_l"
    assert files.detector == pack / "onnx" / "detection.fp32.onnx"
    assert files.recogniser == pack / "onnx" / "recognition.fp32.onnx"
    assert files.recogniser_spec == ARCFACE_SPEC
    fp16 = resolve_face_model(pack, precision="fp16")
    assert fp16.detector.name == "detection.fp16.onnx" and fp16.recogniser.name == "recognition.fp16.onnx"
    with pytest.raises(ComponentNotFound, match="precisions present: fp16, fp32"):
        resolve_face_model(pack, precision="int8")


def test_hub_dialect_model_info(tmp_path):
    folder = tmp_path / "antelope"
    _touch(folder / "onnx" / "detection.fp32.onnx")
    _touch(folder / "onnx" / "recognition.fp32.onnx")
    info = {
        "name": "antelopev2",
        "version": "1.0.0",
        "description": "insightface antelopev2",
        "model_type": "face",
        "runtimes": {
            "onnx": {"available": True, "components": ["detection", "recognition"], "precisions": ["fp32"]}
        },
        "task_metadata": {
            "tasks": {
                "face_recognition": {
                    "pack": "antelopev2",
                    "detection": {
                        "component": "detection",
                        "input_name": "input.1",
                        "output_names": ["448", "471"],
                    },
                    "recognition": {
                        "component": "recognition",
                        "input_name": "input.1",
                        "output_name": "1333",
                    },
                }
            }
        },
    }
    (folder / "model_info.json").write_text(json.dumps(info))
    files = resolve_face_model(folder)
    assert (files.family, files.pack, files.model_id) == ("scrfd", "antelopev2", "antelopev2")
    assert files.detector_output_names == ("448", "471")


def test_immich_layout_without_model_info(tmp_path):
    folder = tmp_path / "antelopev2"
    _touch(folder / "detection" / "model.onnx")
    _touch(folder / "recognition" / "model.onnx")
    files = resolve_face_model(folder)
    assert files.detector == folder / "detection" / "model.onnx" and files.family == "scrfd"


def test_unknown_folder_name_leaves_the_family_to_the_graph(tmp_path):
    _touch(tmp_path / "my-face" / "onnx" / "detection.onnx")
    files = resolve_face_model(tmp_path / "my-face")
    assert files.family is None and files.recogniser is None
    assert resolve_face_model(tmp_path / "my-face", family="YuNet").family == "yunet"


def test_yunet_mobilefacenet_folder(face_model_dir):
    files = resolve_face_model(face_model_dir)
    assert files.family == "yunet" and files.recogniser_spec == MOBILEFACENET_SPEC
    assert files.model_id == "yunet-mobilefacenet"


def test_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="face model folder not found"):
        resolve_face_model(tmp_path / "nope")
    _touch(tmp_path / "m" / "onnx" / "recognition.onnx")
    with pytest.raises(
        ComponentNotFound, match=r"no onnx file for component 'detection'.*onnx/recognition.onnx"
    ):
        resolve_face_model(tmp_path / "m")
    _touch(tmp_path / "m" / "onnx" / "detection.onnx")
    with pytest.raises(ValueError, match="unknown face detector family 'mtcnn'; supported: scrfd, yunet"):
        resolve_face_model(tmp_path / "m", family="mtcnn")
    info = {
        "name": "m",
        "runtimes": {"onnx": {"available": True, "files": ["onnx/detection.onnx"]}},
        "task_metadata": {"tasks": {"face_recognition": {"detection": {"input_size": "big"}}}},
    }
    (tmp_path / "m" / "model_info.json").write_text(json.dumps(info))
    with pytest.raises(ModelInfoError, match=r"detection.input_size: must be a whole number"):
        resolve_face_model(tmp_path / "m")


def test_scrfd_arcface_pack_end_to_end(tmp_path):
    """A pack folder of generated graphs: SCRFD resolved by name, ArcFace preprocessing,
    embeddings computed from crops aligned on the planted landmarks."""
    pack = tmp_path / "buffalo_s"
    (pack / "onnx").mkdir(parents=True)
    offsets = (-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -0.8, 1.0, 0.8, 1.0)
    build_scrfd_model(pack / "onnx" / "detection.onnx", [Planted(16, 10, 10, 0, 0.9, (3, 3, 3, 3), offsets)])
    build_mean_model(pack / "onnx" / "recognition.onnx")
    pipeline = open_face_pipeline(pack)
    assert isinstance(pipeline.detector, ScrfdDetector) and pipeline.recogniser.spec == ARCFACE_SPEC
    image = np.full((640, 640, 3), 200, np.uint8)
    result = pipeline.analyze(image, FaceParams(min_size=0))
    assert result.count == 1 and result.model_id == "buffalo_s"
    want = np.full(3, (200 - 127.5) / 127.5)
    assert np.allclose(result.faces[0].embedding, want / np.linalg.norm(want), atol=1e-4)


def test_explicit_family_argument_is_used(face_model_dir):
    pipeline = open_face_pipeline(face_model_dir, family="yunet")
    assert isinstance(pipeline.detector, YunetDetector)
