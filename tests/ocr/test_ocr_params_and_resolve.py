from __future__ import annotations

import json
import shutil

import pytest

from services.api import InvalidInput
from services.component_files import ComponentNotFound
from services.model_info import ModelInfoError
from services.ocr import DictionaryError, OcrParams, OcrPipeline, open_ocr_pipeline, resolve_ocr_model
from services.runtimes.onnx import OnnxSession
from tests.ocr.ocr_models import build_constant_recogniser
from tests.support.model_dirs import build_ppocr_dir, link_or_copy
from tests.support.testdata import shared_data


def test_meta_is_read_leniently_with_aliases():
    p = OcrParams.from_meta(
        {
            "det_db_thresh": "0.25",
            "box_threshold": "0.6",
            "unclip_ratio": "2",
            "det_limit_side_len": "1280.0",
            "det_limit_type": " MIN ",
            "drop_score": "0.7",
            "use_angle_cls": "false",
            "cls_thresh": "0.95",
            "cls_verify": "no",
        }
    )
    assert p == OcrParams(
        det_threshold=0.25,
        box_threshold=0.6,
        unclip_ratio=2.0,
        limit_side_len=1280,
        limit_type="min",
        rec_threshold=0.7,
        use_angle_cls=False,
        cls_threshold=0.95,
        cls_verify=False,
    )
    assert OcrParams.from_meta({}) == OcrParams()
    base = OcrParams(rec_threshold=0.8)
    assert OcrParams.from_meta({"det_threshold": "0.2"}, base).rec_threshold == 0.8


@pytest.mark.parametrize(
    ("meta", "needle"),
    [
        ({"det_threshold": "1.2"}, "'det_threshold' must be from 0 to 1"),
        ({"det_limit_side_len": "10"}, "'det_limit_side_len' must be from 32"),
        ({"det_limit_type": "longest"}, "'det_limit_type' must be one of max, min"),
        ({"use_angle_cls": "maybe"}, "'use_angle_cls' must be true or false"),
        ({"rec_threshold": "x"}, "'rec_threshold' must be a number"),
    ],
)
def test_bad_meta_names_the_key(meta, needle):
    with pytest.raises(InvalidInput) as info:
        OcrParams.from_meta(meta)
    assert needle in str(info.value)


def test_testdata_folder(ocr_model_dir):
    files = resolve_ocr_model(ocr_model_dir)
    assert files.detector.name == "detection.onnx" and files.classifier.name == "classification.onnx"
    assert files.dictionary == ocr_model_dir / "ppocr_keys_v1.txt" and files.model_id == "PP-OCRv4-test"
    assert resolve_ocr_model(ocr_model_dir, use_classifier=False).classifier is None


def test_rapidocr_file_names_in_a_flat_folder(tmp_path):
    for name in (
        "ch_PP-OCRv4_det_infer.onnx",
        "ch_PP-OCRv4_rec_infer.onnx",
        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    ):
        link_or_copy(shared_data(f"ocr/{name}"), tmp_path / name)
    files = resolve_ocr_model(tmp_path)
    assert files.detector.name.startswith("ch_PP-OCRv4_det") and files.recogniser.name.startswith(
        "ch_PP-OCRv4_rec"
    )
    assert files.classifier.name.startswith("ch_ppocr_mobile") and files.dictionary is None
    # no dictionary file: the recogniser's metadata carries it
    pipeline = open_ocr_pipeline(tmp_path)
    assert len(pipeline.dictionary.chars) == 6623


def test_immich_layout(tmp_path):
    for component in ("detection", "recognition"):
        (tmp_path / component).mkdir()
        (tmp_path / component / "model.onnx").write_bytes(b"x")
    (tmp_path / "recognition" / "charset.txt").write_text("a\nb\n", encoding="utf-8")
    files = resolve_ocr_model(tmp_path)
    assert files.recogniser == tmp_path / "recognition" / "model.onnx"
    assert files.dictionary == tmp_path / "recognition" / "charset.txt" and files.classifier is None


def test_model_info_thresholds_become_the_defaults(tmp_path):
    build_ppocr_dir(tmp_path)
    info = json.loads((tmp_path / "model_info.json").read_text())
    info["task_metadata"] = {
        "tasks": {
            "ocr": {
                "detection": {
                    "thresh": 0.2,
                    "box_thresh": 0.6,
                    "unclip_ratio": 1.5,
                    "limit_side_len": 1280,
                    "mean": [0.485, 0.456, 0.406],
                    "std": [0.229, 0.224, 0.225],
                },
                "recognition": {"score_threshold": 0.8},
                "classification": {"thresh": 0.95},
            }
        }
    }
    (tmp_path / "model_info.json").write_text(json.dumps(info))
    files = resolve_ocr_model(tmp_path)
    assert files.default_params == OcrParams(
        det_threshold=0.2,
        box_threshold=0.6,
        unclip_ratio=1.5,
        limit_side_len=1280,
        rec_threshold=0.8,
        cls_threshold=0.95,
    )
    assert files.det_mean == (0.485, 0.456, 0.406)
    info["task_metadata"]["tasks"]["ocr"]["detection"]["thresh"] = "low"
    (tmp_path / "model_info.json").write_text(json.dumps(info))
    with pytest.raises(ModelInfoError, match="must be a number"):
        resolve_ocr_model(tmp_path)


def test_missing_parts_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="OCR model folder not found"):
        resolve_ocr_model(tmp_path / "none")
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "detection.onnx").write_bytes(b"x")
    with pytest.raises(ComponentNotFound, match="'recognition' or 'rec'"):
        resolve_ocr_model(tmp_path)
    (tmp_path / "a_rec_1.onnx").write_bytes(b"x")
    (tmp_path / "b_rec_2.onnx").write_bytes(b"x")
    with pytest.raises(ComponentNotFound, match="several rec models"):
        resolve_ocr_model(tmp_path)


def test_dictionary_problems(tmp_path):
    det = OnnxSession(shared_data("ocr/ch_PP-OCRv4_det_infer.onnx"))
    rec = OnnxSession(build_constant_recogniser(tmp_path / "rec.onnx", 5))
    with pytest.raises(DictionaryError, match="no character dictionary"):
        OcrPipeline(det, rec)
    from services.ocr import CharDictionary

    with pytest.raises(DictionaryError, match="2 symbols fit a recogniser with 3 or 4 classes.*has 5"):
        OcrPipeline(det, rec, dictionary=CharDictionary.from_text("a\nb"))
    assert OcrPipeline(det, rec, dictionary=CharDictionary.from_text("a\nb\nc")).dictionary.space
    bad = OnnxSession(build_constant_recogniser(tmp_path / "bad.onnx", 5, metadata={"character": "a\n\nb"}))
    with pytest.raises(DictionaryError, match="line 2 is empty"):
        OcrPipeline(det, bad)


def test_empty_line_in_a_dictionary_file(tmp_path):
    build_ppocr_dir(tmp_path, with_classifier=False, with_dictionary=False)
    (tmp_path / "ppocr_keys_v1.txt").write_text("a\n\nb\n", encoding="utf-8")
    # the real recogniser carries its dictionary in its metadata, which is preferred
    assert len(open_ocr_pipeline(tmp_path).dictionary.chars) == 6623
    shutil.rmtree(tmp_path / "onnx")
    (tmp_path / "onnx").mkdir()
    link_or_copy(shared_data("ocr/ch_PP-OCRv4_det_infer.onnx"), tmp_path / "onnx" / "detection.onnx")
    build_constant_recogniser(tmp_path / "onnx" / "recognition.onnx", 4)
    with pytest.raises(DictionaryError, match=r"ppocr_keys_v1.txt: line 2 is empty"):
        open_ocr_pipeline(tmp_path)
