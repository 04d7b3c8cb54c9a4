"""DB post-processing on synthetic probability maps, detector sizing, the direction-classifier
safeguard, and recogniser batching."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from services.ocr import OcrParams, OcrPipeline, TextDetector, TextRecogniser
from services.ocr.detection import boxes_from_map
from services.ocr.recognition import REC_BATCH_PIXELS
from services.runtimes.onnx import OnnxSession
from tests.ocr.ocr_models import build_always_180_classifier
from tests.ocr.textcompare import same
from tests.support.testdata import load_rgb, shared_data


def _map(h: int, w: int, rects: list[tuple[int, int, int, int, float]]) -> np.ndarray:
    prob = np.zeros((h, w), np.float32)
    for x1, y1, x2, y2, p in rects:
        prob[y1:y2, x1:x2] = p
    return prob


def test_db_box_is_the_blob_grown_by_the_unclip_distance_in_original_pixels():
    # a 100 × 20 px blob (columns 50..149, rows 40..59) at map scale 0.5 of a 400 × 240 image
    prob = _map(120, 200, [(50, 40, 150, 60, 0.9)])
    params = OcrParams(unclip_ratio=1.5)
    [box] = boxes_from_map(prob, 0.5, 0.5, 240, 400, params)
    # the blob spans [49.5, 149.5] × [39.5, 59.5]: 100 × 20; d = 100·20·1.5 / 240 = 12.5
    want = np.array([[37, 27], [162, 27], [162, 72], [37, 72]]) * 2.0
    assert np.allclose(box.quad, want, atol=1.0)
    assert box.score == pytest.approx(0.9, abs=0.02)


def test_db_thresholds_and_min_size():
    prob = _map(100, 200, [(10, 10, 90, 30, 0.9), (10, 50, 90, 70, 0.4), (150, 80, 152, 82, 0.95)])
    boxes = boxes_from_map(prob, 1.0, 1.0, 100, 200, OcrParams())
    assert (
        len(boxes) == 1
    )  # the 0.4 blob is text (> 0.3) but scores < box_threshold 0.5; the 2 px dot is too small
    assert len(boxes_from_map(prob, 1.0, 1.0, 100, 200, OcrParams(box_threshold=0.35))) == 2
    assert boxes_from_map(prob, 1.0, 1.0, 100, 200, OcrParams(det_threshold=0.95)) == []


def test_db_boxes_are_clipped_to_the_image():
    prob = _map(64, 64, [(0, 0, 30, 10, 0.9)])
    [box] = boxes_from_map(prob, 1.0, 1.0, 64, 64, OcrParams())
    assert box.quad.min() >= 0 and box.quad.max() <= 63


@pytest.mark.parametrize(
    ("shape", "params", "want"),
    [
        ((220, 900), OcrParams(), (224, 896)),  # native, rounded to 32
        ((3000, 4000), OcrParams(), (704, 960)),  # long side capped at 960
        ((10, 10), OcrParams(), (32, 32)),
        ((220, 900), OcrParams(limit_type="min", limit_side_len=736), (736, 3008)),
        # request meta cannot make the detector input unbounded
        ((3000, 4000), OcrParams(limit_type="min", limit_side_len=8192), (3552, 4736)),
        ((100, 20000), OcrParams(limit_type="min", limit_side_len=8192), (32, 8192)),
    ],
)
def test_detector_input_size(shape, params, want):
    assert TextDetector.target_size(*shape, params) == want


def test_the_classifier_safeguard_keeps_the_better_reading(ocr_model_dir, tmp_path):
    """With a classifier that always (wrongly) says 180°, verification keeps the upright
    reading; without it the lines are read upside down."""
    cls = OnnxSession(build_always_180_classifier(tmp_path / "cls.onnx"))
    pipeline = OcrPipeline(
        OnnxSession(ocr_model_dir / "onnx" / "detection.onnx"),
        OnnxSession(ocr_model_dir / "onnx" / "recognition.onnx"),
        cls,
    )
    image = load_rgb(shared_data("images/text/ocr_rendered_en.png"))
    verified = [i.text for i in pipeline.read(image).items]
    assert [
        same(w, g)
        for w, g in zip(
            ["Hello World 2024", "Home AI inference node", "Invoice No. 48213"], verified, strict=True
        )
    ] == [True] * 3
    trusting = [i.text for i in pipeline.read(image, OcrParams(cls_verify=False)).items]
    assert not any(same("Hello World 2024", t) for t in trusting)


class RecordingSession:
    def __init__(self, inner: OnnxSession) -> None:
        self.inner, self.runtime, self.inputs, self.outputs = (
            inner,
            inner.runtime,
            inner.inputs,
            inner.outputs,
        )
        self.metadata = inner.metadata
        self.shapes: list[tuple[int, ...]] = []

    def run(
        self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        self.shapes.append(next(iter(feeds.values())).shape)
        return self.inner.run(feeds, output_names)

    def close(self) -> None:
        pass


def test_recogniser_batches_similar_widths_and_keeps_the_order(ocr_pipeline):
    line = np.ascontiguousarray(load_rgb(shared_data("images/text/rapidocr_text_rec.jpg"))[..., ::-1])
    long = np.ascontiguousarray(np.concatenate([line] * 5, axis=1))  # 48 px high → ~1110 px wide
    crops = [long, line, long, line, line]
    # an accelerator-sized budget: the 3 short lines in one batch padded to 320, the 2 long ones in
    # another (ceil(48·1810/78) = 1114 → 1120, a multiple of 8)
    session = RecordingSession(ocr_pipeline.recogniser.session)
    out = TextRecogniser(session, ocr_pipeline.dictionary, batch_pixels=REC_BATCH_PIXELS).recognise(crops)
    assert out[0][0] == out[2][0] == "韩国小馆" * 5
    assert out[1][0] == out[3][0] == out[4][0] == "韩国小馆"
    assert sorted((s[0], s[3]) for s in session.shapes) == [(2, 1120), (3, 320)]
    assert all(s[1:3] == (3, 48) for s in session.shapes)
    # on CPU wide lines run alone (batching them is slower there), short ones in pairs
    assert session.runtime == "onnxrt-cpu"
    cpu = RecordingSession(ocr_pipeline.recogniser.session)
    again = TextRecogniser(cpu, ocr_pipeline.dictionary).recognise(crops)
    assert [t for t, _ in again] == [t for t, _ in out]
    assert np.allclose([c for _, c in again], [c for _, c in out], atol=1e-3)
    assert sorted((s[0], s[3]) for s in cpu.shapes) == [(1, 320), (1, 1120), (1, 1120), (2, 320)]
