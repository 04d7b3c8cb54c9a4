"""Face results, mapping 1:1 onto the ``face_v1`` JSON schema (DESIGN.md §3.2).

``face_v1``: ``{"faces": [{"bbox": [x1, y1, x2, y2], "confidence": c, "landmarks": [x1, y1, …, x5, y5],
"embedding": [...]}], "count": n, "model_id": "..."}``. Coordinates are pixels of the submitted
(decoded, EXIF-oriented) image, ``x`` to the right and ``y`` down from its top-left corner;
``landmarks`` and ``embedding`` are optional (``face_detect`` has no embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SCHEMA = "face_v1"
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")
COORD_DECIMALS = 2
EMBEDDING_DECIMALS = 7


@dataclass(frozen=True)
class Face:
    """One face. ``landmarks`` are the 5 ArcFace-order points (image-left eye, image-right eye,
    nose tip, image-left mouth corner, image-right mouth corner) as ``(x, y)`` pairs."""

    bbox: tuple[float, float, float, float]
    confidence: float
    landmarks: tuple[tuple[float, float], ...]
    embedding: np.ndarray | None = None  # float32, L2-normalised

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "bbox": [round(float(v), COORD_DECIMALS) for v in self.bbox],
            "confidence": round(float(self.confidence), 4),
            "landmarks": [round(float(v), COORD_DECIMALS) for point in self.landmarks for v in point],
        }
        if self.embedding is not None:
            out["embedding"] = np.round(self.embedding.astype(np.float64), EMBEDDING_DECIMALS).tolist()
        return out


@dataclass(frozen=True)
class FaceResult:
    faces: tuple[Face, ...]
    model_id: str = ""

    @property
    def count(self) -> int:
        return len(self.faces)

    def to_json(self) -> dict[str, Any]:
        """The ``face_v1`` object."""
        return {"faces": [f.to_json() for f in self.faces], "count": self.count, "model_id": self.model_id}
