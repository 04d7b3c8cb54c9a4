"""Model folders built from ``../shared/testdata`` in a tmp dir (symlinks, else copies), in the
layouts the face and OCR services resolve (see docs/face_ocr.md). Reusable by service tests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.support.testdata import shared_data

YUNET_MOBILEFACENET_INFO = {
    "name": "yunet-mobilefacenet",
    "version": "1.0.0",
    "description": "Test face model: YuNet detector + MobileFaceNet recogniser (tests only)",
    "model_type": "face",
    "embedding_dim": 128,
    "runtimes": {"onnx": {"available": True, "files": ["onnx/detection.onnx", "onnx/recognition.onnx"]}},
    "task_metadata": {
        "tasks": {
            "face_recognition": {
                "detection": {"family": "yunet"},
                "recognition": {"preset": "mobilefacenet"},
            }
        }
    },
}

PPOCR_V4_INFO = {
    "name": "PP-OCRv4-test",
    "version": "1.0.0",
    "description": "Test OCR model: PP-OCRv4 det/rec + v2.0 direction classifier (RapidOCR export)",
    "model_type": "ocr",
    "runtimes": {
        "onnx": {
            "available": True,
            "files": ["onnx/detection.onnx", "onnx/recognition.onnx", "onnx/classification.onnx"],
        }
    },
}


def link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(source, target)
    except OSError:
        shutil.copyfile(source, target)


def build_yunet_mobilefacenet_dir(root: Path, *, detector: str = "yunet_s_dynamic.onnx") -> Path:
    """``root`` as the YuNet + MobileFaceNet face model folder."""
    link_or_copy(shared_data(f"face/yunet/{detector}"), root / "onnx" / "detection.onnx")
    link_or_copy(shared_data("face/mobilefacenet/MobileFaceNet.onnx"), root / "onnx" / "recognition.onnx")
    (root / "model_info.json").write_text(json.dumps(YUNET_MOBILEFACENET_INFO, indent=2), encoding="utf-8")
    return root


def build_ppocr_dir(root: Path, *, with_classifier: bool = True, with_dictionary: bool = True) -> Path:
    """``root`` as the PP-OCRv4 model folder (dictionary file beside the weights)."""
    link_or_copy(shared_data("ocr/ch_PP-OCRv4_det_infer.onnx"), root / "onnx" / "detection.onnx")
    link_or_copy(shared_data("ocr/ch_PP-OCRv4_rec_infer.onnx"), root / "onnx" / "recognition.onnx")
    info = json.loads(json.dumps(PPOCR_V4_INFO))
    if with_classifier:
        link_or_copy(
            shared_data("ocr/ch_ppocr_mobile_v2.0_cls_infer.onnx"), root / "onnx" / "classification.onnx"
        )
    else:
        info["runtimes"]["onnx"]["files"].remove("onnx/classification.onnx")
    if with_dictionary:
        link_or_copy(shared_data("ocr/ppocr_keys_v1.txt"), root / "ppocr_keys_v1.txt")
    (root / "model_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    return root
