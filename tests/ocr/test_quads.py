from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.ocr import crop_quad, order_quad, reading_order, unclip_rect


@pytest.mark.parametrize(("w", "h", "ratio"), [(200, 30, 1.6), (80, 80, 1.5), (400, 12, 2.0)])
def test_unclip_equals_the_min_area_rect_of_the_offset_polygon(w, h, ratio):
    """Reference: the rectangle offset by d with round joins, rasterised 4× finer (every pixel
    within distance d of the rectangle), and its minimum-area rectangle."""
    (cx, cy), (gw, gh), _ = unclip_rect(((0.0, 0.0), (w, h), 0.0), ratio)
    d = w * h * ratio / (2 * (w + h))
    assert (cx, cy) == (0.0, 0.0) and gw == pytest.approx(w + 2 * d) and gh == pytest.approx(h + 2 * d)
    k = 4
    pad = int(d * k) + 4
    outside = np.ones((int(h * k) + 2 * pad, int(w * k) + 2 * pad), np.uint8)
    outside[pad : pad + int(h * k), pad : pad + int(w * k)] = 0
    distance = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
    grown = (distance <= d * k).astype(np.uint8)
    contours, _ = cv2.findContours(grown, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    (_, _), (rw, rh), _ = cv2.minAreaRect(contours[0])
    rw, rh = sorted(((rw + 1) / k, (rh + 1) / k), reverse=w >= h)
    assert rw == pytest.approx(gw, abs=0.5) and rh == pytest.approx(gh, abs=0.5)


def test_unclip_keeps_centre_and_angle():
    assert unclip_rect(((50.0, 60.0), (100.0, 20.0), 17.0), 1.5)[0::2] == ((50.0, 60.0), 17.0)


@pytest.mark.parametrize("angle", [-40, -20, -3, 0, 5, 25, 40])
@pytest.mark.parametrize("start", [0, 1, 2, 3])
@pytest.mark.parametrize("reverse", [False, True])
def test_order_quad_gives_tl_tr_br_bl(angle, start, reverse):
    t = np.deg2rad(angle)
    u, v = np.array([np.cos(t), np.sin(t)]), np.array([-np.sin(t), np.cos(t)])  # along, down
    c = np.array([300.0, 200.0])
    tl, tr, br, bl = c - 80 * u - 15 * v, c + 80 * u - 15 * v, c + 80 * u + 15 * v, c - 80 * u + 15 * v
    pts = np.roll(np.array([tl, tr, br, bl]), start, axis=0)
    if reverse:
        pts = pts[::-1]
    assert np.allclose(order_quad(pts), [tl, tr, br, bl])


def test_order_quad_on_a_tall_box_is_image_top_left_first():
    pts = np.array([[10, 10], [40, 10], [40, 200], [10, 200]], float)
    assert np.allclose(order_quad(pts[[2, 0, 3, 1]]), pts)


def _box(x, y, w, h):
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], float)


def test_reading_order_rows_then_left_to_right():
    boxes = [
        _box(300, 104, 100, 20),  # row 2, right (slightly higher than its neighbour)
        _box(10, 10, 100, 20),  # row 1, left
        _box(10, 108, 120, 20),  # row 2, left
        _box(250, 14, 60, 20),  # row 1, right (4 px lower)
        _box(10, 200, 300, 40),  # row 3, a big heading
    ]
    assert reading_order(boxes) == [1, 3, 2, 0, 4]


def test_reading_order_does_not_merge_lines_of_small_text_next_to_big_text():
    big = _box(10, 10, 100, 60)  # a price, centre y 40
    small_top = _box(120, 12, 60, 14)  # centre 19
    small_bottom = _box(120, 50, 60, 14)  # centre 57
    order = reading_order([small_bottom, big, small_top])
    assert order == [2, 1, 0]


def test_crop_quad_straightens_and_turns_tall_crops():
    image = np.zeros((100, 200, 3), np.uint8)
    image[20:40, 50:150] = 255
    crop = crop_quad(image, _box(50, 20, 100, 20))
    assert crop.shape == (20, 100, 3) and crop.mean() > 250
    tall = crop_quad(image, _box(60, 10, 10, 60))
    assert tall.shape == (10, 60, 3)  # 60 high, 10 wide → turned to 10 × 60
