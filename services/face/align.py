"""Face alignment: a similarity transform of the 5 landmarks onto the ArcFace template.

The landmarks are in pixels of the ORIGINAL (submitted) image, and the warp samples that same
image, so there is exactly one coordinate frame (the bug of the earlier Python Lumen was to mix
detector-canvas landmarks with a box crop, MODEL_FORMATS §9 #2).
"""

from __future__ import annotations

import cv2
import numpy as np

ARCFACE_SIZE = 112
# The standard 112×112 ArcFace destination points (x, y): image-left eye, image-right eye, nose
# tip, image-left mouth corner, image-right mouth corner.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def arcface_template(size: int = ARCFACE_SIZE) -> np.ndarray:
    """The template for a square ``size`` crop (the 112 points scaled by ``size / 112``)."""
    return ARCFACE_TEMPLATE_112 * (size / ARCFACE_SIZE)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 matrix ``M`` of the least-squares similarity (rotation, uniform scale,
    translation; no reflection, no shear) with ``dst ≈ M @ [src, 1]`` (Umeyama 1991)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching (N, 2) point sets with N >= 2 (got {src.shape}, {dst.shape})")
    mu_src = src.mean(axis=0)
    mu_dst = dst.mean(axis=0)
    src_c = src - mu_src
    dst_c = dst - mu_dst
    var_src = float((src_c**2).sum()) / len(src)
    if var_src <= 1e-12:
        raise ValueError("source points are all the same point; no transform exists")
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0  # the best fit would be a reflection: take the best proper rotation instead
    rotation = u @ np.diag(d) @ vt
    scale = float((s * d).sum()) / var_src
    translation = mu_dst - scale * rotation @ mu_src
    matrix = np.empty((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = translation
    return matrix


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """The ``size``×``size`` aligned crop of ``image`` (H, W, 3) for 5 ``landmarks`` (x, y) given
    in pixels of ``image``; outside the image is black."""
    matrix = similarity_transform(
        np.asarray(landmarks, dtype=np.float64).reshape(5, 2), arcface_template(size)
    )
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
