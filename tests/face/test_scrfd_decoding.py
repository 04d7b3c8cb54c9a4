"""SCRFD decoding against a generated graph with SCRFD's 9-output signature and planted faces
(no permissively licensed SCRFD weights exist for tests)."""

from __future__ import annotations

import numpy as np
import pytest

from services.api import InferenceFailed
from services.face import FaceParams, FacePipeline, ScrfdDetector, make_detector, sniff_family
from services.runtimes.onnx import OnnxSession
from tests.face.scrfd_model import Planted, build_scrfd_model

OFFSETS = (-1.0, -1.0, 1.0, -1.0, 0.0, 0.0, -0.8, 1.0, 0.8, 1.0)
BIG = Planted(8, col=20, row=30, anchor=0, score=0.95, distances=(3, 4, 3.5, 5), offsets=OFFSETS)
WIDE = Planted(32, col=12, row=5, anchor=1, score=0.88, distances=(2, 2.5, 2, 3), offsets=OFFSETS)
# the same face as WIDE found again at stride 16 with a lower score: NMS must drop it
DUPLICATE = Planted(16, col=24, row=10, anchor=0, score=0.70, distances=(3.9, 4.9, 4.1, 6), offsets=OFFSETS)
WEAK = Planted(16, col=5, row=5, anchor=1, score=0.2, distances=(2, 2, 2, 2))
# scored by the input pixel: present only when that pixel is (255 - 127.5) / 128 > threshold
PIXEL = Planted(
    16, col=30, row=3, anchor=1, score=0.0, distances=(2, 2, 2, 2), offsets=OFFSETS, from_input=True
)
ALL = [BIG, WIDE, DUPLICATE, WEAK, PIXEL]


@pytest.fixture(scope="module")
def scrfd_session(tmp_path_factory):
    return OnnxSession(build_scrfd_model(tmp_path_factory.mktemp("scrfd") / "detection.onnx", ALL))


def _image(height: int, width: int, top_left_rgb: tuple[int, int, int]) -> np.ndarray:
    image = np.full((height, width, 3), 90, np.uint8)
    image[:40, :40] = top_left_rgb  # survives the resize as a flat patch
    return image


def test_family_is_read_from_the_graph(scrfd_session):
    assert sniff_family(scrfd_session) == "scrfd"
    assert isinstance(make_detector(scrfd_session), ScrfdDetector)


def test_planted_faces_decode_exactly_in_original_pixels(scrfd_session):
    """1280 × 960 image: scaled by 0.5 into the top-left of the 640 canvas, so every planted
    box / landmark comes back × 2."""
    pipeline = FacePipeline(make_detector(scrfd_session), model_id="planted")
    result = pipeline.detect(_image(960, 1280, (0, 0, 255)), FaceParams(score_threshold=0.5, min_size=0))
    assert result.count == 2  # WEAK under threshold, DUPLICATE suppressed, PIXEL off (blue pixel)
    by_score = sorted(result.faces, key=lambda f: -f.confidence)
    for face, planted in zip(by_score, (BIG, WIDE), strict=True):
        assert face.confidence == pytest.approx(planted.score, abs=1e-6)
        assert np.allclose(face.bbox, planted.box() * 2, atol=1e-3)
        assert np.allclose(face.landmarks, planted.landmarks() * 2, atol=1e-3)
    # largest first: WIDE (256 × 352 here) before BIG (104 × 144)
    assert result.faces[0].confidence == pytest.approx(WIDE.score)


def test_input_is_rgb_normalised_by_127_5_and_128(scrfd_session):
    pipeline = FacePipeline(make_detector(scrfd_session))
    red = pipeline.detect(_image(640, 640, (255, 0, 0)), FaceParams(score_threshold=0.5, min_size=0))
    scores = sorted(f.confidence for f in red.faces)
    assert scores[-1] == pytest.approx((255 - 127.5) / 128, abs=1e-6)  # channel 0 is R
    planted = [f for f in red.faces if f.confidence > 0.99][0]
    assert np.allclose(planted.bbox, PIXEL.box(), atol=1e-3)  # 1:1 scale for a 640 × 640 image
    blue = pipeline.detect(_image(640, 640, (0, 0, 255)), FaceParams(score_threshold=0.5, min_size=0))
    assert all(f.confidence < 0.99 for f in blue.faces)


def test_landscape_letterbox_and_clipping(scrfd_session):
    """640 × 200 image: 1:1 scale, canvas rows below 200 are padding; boxes there are clipped to
    the image and shrink accordingly."""
    pipeline = FacePipeline(make_detector(scrfd_session))
    result = pipeline.detect(_image(200, 640, (0, 0, 0)), FaceParams(score_threshold=0.5, min_size=0))
    for face in result.faces:
        x1, y1, x2, y2 = face.bbox
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 200
    wide = [f for f in result.faces if f.confidence == pytest.approx(WIDE.score)][0]
    assert np.allclose(wide.bbox, [320, 80, 448, 200], atol=1e-3)  # bottom clipped at 200
    assert wide.landmarks[3][1] <= 200  # reported landmarks are clipped too


def test_filters_nms_and_max_faces(scrfd_session):
    pipeline = FacePipeline(make_detector(scrfd_session))
    image = _image(640, 640, (0, 0, 0))
    low = pipeline.detect(image, FaceParams(score_threshold=0.1, nms_threshold=1.0, min_size=0))
    assert low.count == 4  # WEAK and DUPLICATE too when NMS keeps everything
    nms = pipeline.detect(image, FaceParams(score_threshold=0.1, nms_threshold=0.4, min_size=0))
    assert nms.count == 3
    assert pipeline.detect(image, FaceParams(score_threshold=0.1, max_faces=1, min_size=0)).faces[
        0
    ].confidence == (pytest.approx(WIDE.score))
    only_small = pipeline.detect(image, FaceParams(score_threshold=0.5, min_size=0, max_size=150))
    assert [round(f.confidence, 2) for f in only_small.faces] == [0.95]
    only_big = pipeline.detect(image, FaceParams(score_threshold=0.5, min_size=160))  # WIDE: 128 × 176
    assert [round(f.confidence, 2) for f in only_big.faces] == [0.88]


@pytest.mark.parametrize("three_d", [False, True])
def test_output_layout_and_order_do_not_matter(tmp_path, three_d):
    """Outputs ``[N, C]`` or ``[1, N, C]``, listed in any order, with any names."""
    order = (8, 0, 4, 2, 6, 1, 5, 3, 7)
    names = tuple(f"out{i}" for i in range(9))
    session = OnnxSession(
        build_scrfd_model(tmp_path / "m.onnx", ALL, three_d=three_d, names=names, order=order)
    )
    result = FacePipeline(make_detector(session, "scrfd")).detect(
        _image(960, 1280, (0, 0, 0)), FaceParams(score_threshold=0.5, min_size=0)
    )
    assert sorted(round(f.confidence, 2) for f in result.faces) == [0.88, 0.95]
    big = max(result.faces, key=lambda f: f.confidence)
    assert np.allclose(big.bbox, BIG.box() * 2, atol=1e-3)


def test_metadata_output_names_choose_the_outputs(scrfd_session):
    det = ScrfdDetector(scrfd_session, output_names=list(reversed([o.name for o in scrfd_session.outputs])))
    assert det.output_names[0] == "500"  # the listed order is used (grouping is by shape anyway)


def test_wrong_graph_is_a_clear_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64, 64])],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    session = OnnxSession(path)
    with pytest.raises(InferenceFailed, match="cannot tell the face detector family"):
        make_detector(session)
    with pytest.raises(InferenceFailed, match="multiple of 3"):
        make_detector(session, "scrfd")
