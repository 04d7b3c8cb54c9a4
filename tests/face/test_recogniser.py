from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from services.face import ARCFACE_SPEC, MOBILEFACENET_SPEC, FaceRecogniser, RecogniserSpec, recogniser_preset
from services.runtimes.onnx import OnnxSession
from tests.face.recogniser_models import build_mean_model


class RecordingSession:
    """Wraps a real session and records the batch size of every run."""

    def __init__(self, inner: OnnxSession) -> None:
        self.inner = inner
        self.runtime = inner.runtime
        self.inputs = inner.inputs
        self.outputs = inner.outputs
        self.batches: list[int] = []

    def run(
        self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        self.batches.append(next(iter(feeds.values())).shape[0])
        return self.inner.run(feeds, output_names)

    def close(self) -> None:
        self.inner.close()


def _flat_crops(colours: list[tuple[int, int, int]]) -> np.ndarray:
    return np.stack([np.full((112, 112, 3), c, np.uint8) for c in colours])


COLOURS = [(200, 100, 50), (10, 250, 128), (0, 0, 255)]


def _raw(spec: RecogniserSpec, colour: tuple[int, int, int]) -> np.ndarray:
    rgb = np.asarray(colour, dtype=np.float64)
    values = rgb[::-1] if spec.color_order == "bgr" else rgb
    return (values * spec.scale - np.asarray(spec.mean)) / np.asarray(spec.std)


@pytest.mark.parametrize(
    "spec", [ARCFACE_SPEC, MOBILEFACENET_SPEC, RecogniserSpec(name="bgr", color_order="bgr")]
)
def test_preprocessing_follows_the_spec(tmp_path, spec):
    rec = FaceRecogniser(OnnxSession(build_mean_model(tmp_path / "m.onnx")), spec)
    vectors = rec.embed_crops(_flat_crops(COLOURS))
    for vector, colour in zip(vectors, COLOURS, strict=True):
        want = _raw(spec, colour)
        assert np.allclose(vector, want / np.linalg.norm(want), atol=1e-5)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)


def test_arcface_is_x_minus_127_5_over_127_5(tmp_path):
    rec = FaceRecogniser(OnnxSession(build_mean_model(tmp_path / "m.onnx")), ARCFACE_SPEC)
    v = rec.embed_crops(_flat_crops([(255, 0, 127)]))[0]
    want = np.array([(255 - 127.5) / 127.5, (0 - 127.5) / 127.5, (127 - 127.5) / 127.5])
    assert np.allclose(v, want / np.linalg.norm(want), atol=1e-5)


def test_dynamic_batch_runs_once_static_batch_loops(tmp_path):
    crops = _flat_crops(COLOURS * 2)
    dynamic = RecordingSession(OnnxSession(build_mean_model(tmp_path / "d.onnx")))
    static = RecordingSession(OnnxSession(build_mean_model(tmp_path / "s.onnx", batch=1)))
    a = FaceRecogniser(dynamic).embed_crops(crops)
    b = FaceRecogniser(static).embed_crops(crops)
    assert dynamic.batches == [6]
    assert static.batches == [1] * 6
    assert np.allclose(a, b)


def test_static_batch_larger_than_one_is_padded(tmp_path):
    static = RecordingSession(OnnxSession(build_mean_model(tmp_path / "s4.onnx", batch=4)))
    out = FaceRecogniser(static).embed_crops(_flat_crops(COLOURS * 2))
    assert static.batches == [4, 4] and out.shape == (6, 3)


def test_uint8_nhwc_graphs_get_raw_pixels(tmp_path):
    rec = FaceRecogniser(OnnxSession(build_mean_model(tmp_path / "u.onnx", nhwc_uint8=True)))
    assert rec.layout == "nhwc" and rec.raw_uint8
    v = rec.embed_crops(_flat_crops([(30, 60, 90)]))[0]
    assert np.allclose(v, np.array([30, 60, 90]) / np.linalg.norm([30, 60, 90]), atol=1e-6)


def test_no_faces_no_run(tmp_path):
    session = RecordingSession(OnnxSession(build_mean_model(tmp_path / "m.onnx")))
    assert FaceRecogniser(session).embed_crops(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 3)
    assert session.batches == []


def test_presets_and_overrides():
    assert recogniser_preset("MobileFaceNet") is MOBILEFACENET_SPEC
    assert recogniser_preset("arc-face") is ARCFACE_SPEC
    with pytest.raises(ValueError, match="supported: arcface, mobilefacenet"):
        recogniser_preset("facenet512")
    spec = ARCFACE_SPEC.with_overrides({"color_order": "BGR", "mean": 0.0, "std": [1, 1, 1], "scale": 1})
    assert (spec.color_order, spec.mean, spec.std, spec.scale) == (
        "bgr",
        (0.0, 0.0, 0.0),
        (1.0, 1.0, 1.0),
        1.0,
    )
    with pytest.raises(ValueError, match="color_order"):
        ARCFACE_SPEC.with_overrides({"color_order": "hsv"})
