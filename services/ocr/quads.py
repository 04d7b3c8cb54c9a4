"""Text boxes as quadrilaterals: DB unclip of a rotated rectangle, corner order, reading order.

Coordinates are ``(x, y)`` with ``x`` to the right and ``y`` down. A quad is a ``[4, 2]`` array in
the order TL, TR, BR, BL: clockwise on screen, starting at the corner where the box's top edge
(the edge closest to pointing right) begins.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

RotatedRect = tuple[tuple[float, float], tuple[float, float], float]  # cv2.minAreaRect form


def unclip_rect(rect: RotatedRect, ratio: float) -> RotatedRect:
    """Grow a rotated rectangle as the DB post-processing does: every side moves outwards by
    ``d = area · ratio / perimeter``.

    PP-OCR offsets the box polygon with pyclipper (round joins) and takes the minimum-area
    rectangle of the result; for a rectangle w × h that rectangle is exactly
    (w + 2d) × (h + 2d) with the same centre and angle (the round corners stay inside it), so no
    polygon clipping library is needed."""
    (cx, cy), (w, h), angle = rect
    perimeter = 2.0 * (w + h)
    d = (w * h * ratio / perimeter) if perimeter > 0 else 0.0
    return (cx, cy), (w + 2.0 * d, h + 2.0 * d), angle


def order_quad(points: np.ndarray) -> np.ndarray:
    """The 4 corners of a convex quad (any start, either direction) as TL, TR, BR, BL."""
    pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
    centre = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - centre[1], pts[:, 0] - centre[0])
    pts = pts[np.argsort(angles)]  # ascending angle with y down = clockwise on screen
    edges = np.roll(pts, -1, axis=0) - pts
    lengths = np.maximum(np.linalg.norm(edges, axis=1), 1e-9)
    start = int(np.argmax(edges[:, 0] / lengths))  # the most rightward-pointing edge is the top one
    return np.roll(pts, -start, axis=0)


def quad_size(quad: np.ndarray) -> tuple[float, float]:
    """``(width, height)`` of a TL, TR, BR, BL quad: the longer of each pair of opposite edges."""
    q = np.asarray(quad, dtype=np.float64)
    width = max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[3] - q[2]))
    height = max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]))
    return float(width), float(height)


def rect_points(rect: RotatedRect) -> np.ndarray:
    return cv2.boxPoints(rect).astype(np.float64)


def reading_order(quads: Sequence[np.ndarray]) -> list[int]:
    """Indices of ``quads`` in reading order: rows top to bottom, left to right in a row.

    Boxes are taken by their vertical centre; a box joins the current row when its centre is
    within half a line height (the smaller of its own and the row's median height) of the row's
    mean centre, else it starts a new row. Rows are ordered by their mean centre, boxes in a row
    by their left edge."""
    if not quads:
        return []
    arr = np.asarray([np.asarray(q, dtype=np.float64).reshape(4, 2) for q in quads])
    cy = arr[:, :, 1].mean(axis=1)
    left = arr[:, :, 0].min(axis=1)
    heights = np.array([quad_size(q)[1] for q in arr])
    rows: list[list[int]] = []
    for i in np.argsort(cy, kind="stable"):
        if rows:
            row = rows[-1]
            row_cy = float(np.mean(cy[row]))
            tolerance = 0.5 * min(float(heights[i]), float(np.median(heights[row])))
            if abs(cy[i] - row_cy) <= tolerance:
                row.append(int(i))
                continue
        rows.append([int(i)])
    rows.sort(key=lambda r: float(np.mean(cy[r])))
    return [i for row in rows for i in sorted(row, key=lambda j: (left[j], cy[j]))]


def crop_quad(image: np.ndarray, quad: np.ndarray, *, tall_ratio: float = 1.5) -> np.ndarray:
    """The quad's content warped to an upright ``height × width`` crop (cubic, replicated border);
    crops at least ``tall_ratio`` times taller than wide (vertical text) are turned 90° counter-
    clockwise so the text runs left to right."""
    q = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    w, h = quad_size(q)
    width, height = max(1, int(round(w))), max(1, int(round(h)))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(q, target)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if height >= tall_ratio * width:
        crop = np.ascontiguousarray(np.rot90(crop))
    return crop
