"""Small vector helpers shared by the embedding services."""

from __future__ import annotations

import numpy as np

NORM_FLOOR = 1e-12  # a vector shorter than this stays as it is (near zero), not blown up


def l2_normalise(rows: np.ndarray) -> np.ndarray:
    """``rows`` (float32) scaled to unit length along the last axis; (near) zero rows unchanged."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms > NORM_FLOOR, norms, 1.0)
