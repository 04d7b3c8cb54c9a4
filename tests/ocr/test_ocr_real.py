"""The OCR pipeline on the real PP-OCRv4 weights and the test images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.ocr import OcrParams, TextDirectionClassifier, TextRecogniser
from tests.ocr.textcompare import errors, same
from tests.support.testdata import expected, load_rgb, shared_data

# What was rendered into the generated images (SOURCES.md), in reading order.
RENDERED = {
    "ocr_rendered_en.png": ["Hello World 2024", "Home AI inference node", "Invoice No. 48213"],
    "ocr_rendered_zh.png": ["欢迎回家 智能家居", "温度 23.5°C 湿度 41%"],
    # the same image turned 180°: the last line is now on top
    "ocr_rendered_en_rot180.png": ["Invoice No. 48213", "Home AI inference node", "Hello World 2024"],
}


def _image(name: str) -> np.ndarray:
    return load_rgb(shared_data(f"images/text/{name}"))


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_rendered_images_read_back_exactly(read_image, name):
    result = read_image(name)
    texts = [item.text for item in result.items]
    assert len(texts) == len(RENDERED[name]), texts
    for want, got in zip(RENDERED[name], texts, strict=True):
        assert same(want, got), (want, got)


def test_upside_down_lines_need_the_classifier(read_image):
    texts = [i.text for i in read_image("ocr_rendered_en_rot180.png", OcrParams(use_angle_cls=False)).items]
    assert not any(same(want, got) for want in RENDERED["ocr_rendered_en_rot180.png"] for got in texts)


def test_boxes_match_the_measurements_and_the_format(read_image):
    image = _image("ocr_rendered_en.png")
    result = read_image("ocr_rendered_en.png")
    truth = expected()["ocr"]["images/text/ocr_rendered_en.png"]["det_min_side_0"]
    h, w = image.shape[:2]
    for item, line in zip(result.items, truth, strict=True):
        assert all(isinstance(v, int) for point in item.box for v in point)
        (tlx, tly), (trx, try_), (brx, bry), (blx, bly) = item.box
        assert tlx < trx and blx < brx and tly < bly and try_ < bry  # TL, TR, BR, BL
        assert all(0 <= x < w and 0 <= y < h for x, y in item.box)
        quad = np.asarray(line["box"])  # measured corners, in min-area-rect order
        want = [quad[:, 0].min(), quad[:, 1].min(), quad[:, 0].max(), quad[:, 1].max()]
        got = [min(tlx, blx), min(tly, try_), max(trx, brx), max(bly, bry)]
        assert np.allclose(got, want, atol=10), (got, want)
    data = json.loads(json.dumps(result.to_json(), ensure_ascii=False))
    assert data["count"] == 3 and data["model_id"] == "PP-OCRv4-test"
    assert set(data["items"][0]) == {"box", "text", "confidence"}
    assert 0.5 <= data["items"][0]["confidence"] <= 1.0


@pytest.mark.parametrize("name", ["page.png", "rapidocr_ch_en_num.jpg"])
def test_photos_read_like_the_measurements(read_image, name):
    """Real scans/photos: character accuracy against the measured lines (native size, no
    classifier) ≥ 90%, line count close, and the clear lines exactly."""
    truth = [
        line["text_no_cls"]
        for line in expected()["ocr"][f"images/text/{name}"]["det_min_side_0"]
        if line["conf_no_cls"] >= 0.5
    ]
    got = [item.text for item in read_image(name).items]
    edits, total = errors("".join(truth), "".join(got))
    assert 1 - edits / total >= 0.9, (truth, got)
    assert abs(len(got) - len(truth)) <= 2
    clear = {
        "page.png": ["Region-based segmentation", "Let us first determine markers of the coins and the"],
        "rapidocr_ch_en_num.jpg": [
            "正品促销",
            "大桶装更划算",
            "强力去污符合国标",
            "惊喜福利不容错过",
            "极速发货",
            "假一赔十",
        ],
    }[name]
    for line in clear:
        assert any(same(line, g) for g in got), (line, got)


def test_reading_order_is_rows_then_left_to_right(read_image):
    items = read_image("rapidocr_ch_en_num.jpg").items
    texts = [i.text for i in items]
    assert texts.index("极速发货") + 1 == texts.index("冰点标准")  # one row, left then right
    assert texts.index("冰点标准") < texts.index("破损就赔") < texts.index("假一赔十")
    tops = [min(y for _, y in i.box) for i in items]
    assert tops[0] == min(tops)


def test_empty_image_gives_zero_items(ocr_pipeline, read_image):
    result = read_image("rapidocr_empty_black.jpg")
    assert result.to_json() == {"items": [], "count": 0, "model_id": "PP-OCRv4-test"}
    assert ocr_pipeline.read(np.full((300, 400, 3), 255, np.uint8)).count == 0
    assert ocr_pipeline.read(np.zeros((1, 1, 3), np.uint8)).count == 0


def test_pre_cropped_lines(ocr_pipeline):
    """The single-line RapidOCR samples, through recogniser and classifier directly."""
    rec: TextRecogniser = ocr_pipeline.recogniser
    cls: TextDirectionClassifier = ocr_pipeline.classifier
    line = np.ascontiguousarray(_image("rapidocr_text_rec.jpg")[..., ::-1])
    upside_down = np.ascontiguousarray(_image("rapidocr_text_cls.jpg")[..., ::-1])
    assert [flag for flag, _ in cls.classify([line, upside_down])] == [False, True]
    text, conf = rec.recognise([line])[0]
    assert text == "韩国小馆" and conf > 0.9
    assert rec.recognise([np.ascontiguousarray(upside_down[::-1, ::-1])])[0][0] == "怪我咯"
    assert [i.text for i in ocr_pipeline.read(_image("rapidocr_text_cls.jpg")).items] == ["怪我咯"]


def test_dictionary_comes_from_the_recogniser_metadata(ocr_pipeline):
    assert len(ocr_pipeline.dictionary.chars) == 6623 and ocr_pipeline.dictionary.space
    assert ocr_pipeline.dictionary.chars[:3] == ("'", "疗", "绚")


def test_rec_threshold_drops_lines(read_image):
    all_lines = read_image("rapidocr_ch_en_num.jpg")  # default rec_threshold 0.5
    strict = read_image("rapidocr_ch_en_num.jpg", OcrParams(rec_threshold=0.95))
    assert strict.count < all_lines.count
    assert all(i.confidence >= 0.95 for i in strict.items)
    assert min(i.confidence for i in all_lines.items) < 0.95
