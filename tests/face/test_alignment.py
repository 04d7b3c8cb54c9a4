from __future__ import annotations

import numpy as np
import pytest

from services.face import ARCFACE_TEMPLATE_112, align_face, similarity_transform


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_template_is_the_112_arcface_one():
    # not the 96×112 variant 8 px to the left (the earlier Python Lumen's bug)
    assert ARCFACE_TEMPLATE_112[0].tolist() == [38.2946, 51.6963]
    assert ARCFACE_TEMPLATE_112[:, 0].mean() == pytest.approx(56.02, abs=0.01)


@pytest.mark.parametrize(
    ("angle", "scale", "tx", "ty"), [(0.0, 1.0, 0, 0), (0.4, 2.5, 300, -40), (-2.0, 0.3, 7, 9)]
)
def test_umeyama_recovers_a_known_similarity(angle, scale, tx, ty):
    src = np.array([[10, 20], [50, 22], [30, 45], [15, 70], [48, 68]], dtype=np.float64)
    truth = _similarity(angle, scale, tx, ty)
    assert np.allclose(similarity_transform(src, _apply(truth, src)), truth, atol=1e-9)


def test_umeyama_least_squares_and_never_reflects():
    src = ARCFACE_TEMPLATE_112.copy()
    mirrored = src * [-1, 1]  # a reflection fits exactly; a similarity must not use it
    matrix = similarity_transform(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0
    rng = np.random.default_rng(3)
    noisy = _apply(_similarity(0.3, 1.7, 20, 30), src) + rng.normal(0, 0.5, src.shape)
    fit = similarity_transform(src, noisy)
    residual = np.linalg.norm(_apply(fit, src) - noisy)
    for delta in (np.array([[0.01, 0, 0], [0, 0, 0]]), np.array([[0, 0, 0.05], [0, 0, 0]])):
        assert residual <= np.linalg.norm(_apply(fit + delta, src) - noisy) + 1e-9


def test_degenerate_points_are_an_error():
    with pytest.raises(ValueError, match="same point"):
        similarity_transform(np.ones((5, 2)), ARCFACE_TEMPLATE_112)


def test_align_face_puts_the_landmarks_on_the_template():
    """A dot drawn at each landmark of a rotated, scaled, shifted face lands on its template point."""
    truth = _similarity(0.5, 2.2, 400, 150)  # template → image
    marks = _apply(truth, ARCFACE_TEMPLATE_112)
    for k, (x, y) in enumerate(marks):
        image = np.zeros((600, 800, 3), np.uint8)
        image[int(round(y)) - 3 : int(round(y)) + 4, int(round(x)) - 3 : int(round(x)) + 4] = 255
        crop = align_face(image, marks)
        assert crop.shape == (112, 112, 3)
        weight = crop[..., 0].astype(np.float64)
        ys, xs = np.mgrid[0:112, 0:112]
        cx, cy = (weight * xs).sum() / weight.sum(), (weight * ys).sum() / weight.sum()
        tx, ty = ARCFACE_TEMPLATE_112[k]
        assert abs(cx - tx) < 0.6 and abs(cy - ty) < 0.6
