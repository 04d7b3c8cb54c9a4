"""Checks on the decoded images the face and OCR pipelines receive.

The pipelines take an already decoded, EXIF-oriented RGB image: a numpy ``uint8`` array of shape
``(height, width, 3)``. Everything they return (face boxes, landmarks, OCR boxes) is in pixels of
exactly that array. Decoding (Pillow, ``ImageOps.exif_transpose``, pixel limits) is the caller's
job; these checks only make a wrong array a clear error instead of garbage results.
"""

from __future__ import annotations

import numpy as np

from services.api import InvalidInput

MIN_SIDE = 1


def ensure_rgb_image(image: object, *, what: str = "image") -> np.ndarray:
    """``image`` as a C-contiguous ``uint8`` ``(H, W, 3)`` array, or :class:`InvalidInput`."""
    if not isinstance(image, np.ndarray):
        raise InvalidInput(f"{what} must be a numpy array (got {type(image).__name__})")
    if image.dtype != np.uint8:
        raise InvalidInput(f"{what} must have dtype uint8 (got {image.dtype})")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInput(
            f"{what} must be an RGB array of shape (height, width, 3) (got shape {tuple(image.shape)})"
        )
    if image.shape[0] < MIN_SIDE or image.shape[1] < MIN_SIDE:
        raise InvalidInput(f"{what} is empty (shape {tuple(image.shape)})")
    return np.ascontiguousarray(image)
