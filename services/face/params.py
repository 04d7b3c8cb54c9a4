"""Face request parameters and how they are read from request ``meta``.

Meta keys (all optional, parsed leniently: ``"50.0"`` is 50):

============================== ============================================================
``detection_confidence_threshold``  minimum detector score, 0..1 (family default: SCRFD 0.5,
                                    YuNet 0.6)
``nms_threshold``                   IoU above which the weaker of two boxes is dropped, 0..1
                                    (SCRFD 0.4, YuNet 0.3)
``face_size_min``                   drop faces whose box (longer side, pixels of the submitted
                                    image) is smaller; default 20, 0 = no minimum
``face_size_max``                   drop faces whose box longer side is larger; 0 = no maximum
                                    (the default)
``max_faces``                       keep at most this many faces, largest box first; 0 or -1 =
                                    no limit (the default)
============================== ============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from services.api import InvalidInput
from services.meta import meta_float, meta_int

META_SCORE = "detection_confidence_threshold"
META_NMS = "nms_threshold"
META_SIZE_MIN = "face_size_min"
META_SIZE_MAX = "face_size_max"
META_MAX_FACES = "max_faces"
FACE_META_KEYS: tuple[str, ...] = (META_SCORE, META_NMS, META_SIZE_MIN, META_SIZE_MAX, META_MAX_FACES)

MAX_SIDE = 1_000_000.0


@dataclass(frozen=True)
class FaceParams:
    """What to keep of the detector's output. Sizes are pixels of the submitted image."""

    score_threshold: float = 0.5
    nms_threshold: float = 0.4
    min_size: float = 20.0
    max_size: float = 0.0  # 0 = no maximum
    max_faces: int = 0  # 0 = no limit

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise InvalidInput(f"score threshold must be from 0 to 1 (got {self.score_threshold})")
        if not 0.0 <= self.nms_threshold <= 1.0:
            raise InvalidInput(f"NMS threshold must be from 0 to 1 (got {self.nms_threshold})")
        if self.min_size < 0 or self.max_size < 0:
            raise InvalidInput(f"face sizes must be at least 0 (got {self.min_size}, {self.max_size})")
        if self.max_size and self.max_size < self.min_size:
            raise InvalidInput(
                f"{META_SIZE_MAX} ({self.max_size:g}) must not be smaller than "
                f"{META_SIZE_MIN} ({self.min_size:g}); use 0 for no maximum"
            )
        if self.max_faces < 0:
            object.__setattr__(self, "max_faces", 0)

    @classmethod
    def from_meta(cls, meta: Mapping[str, str], defaults: FaceParams | None = None) -> FaceParams:
        """Parameters from request meta; missing keys take ``defaults`` (the detector family's,
        see :attr:`services.face.FacePipeline.default_params`)."""
        base = defaults or cls()
        return replace(
            base,
            score_threshold=meta_float(meta, META_SCORE, base.score_threshold, low=0.0, high=1.0),
            nms_threshold=meta_float(meta, META_NMS, base.nms_threshold, low=0.0, high=1.0),
            min_size=meta_float(meta, META_SIZE_MIN, base.min_size, low=0.0, high=MAX_SIDE),
            max_size=meta_float(meta, META_SIZE_MAX, base.max_size, low=0.0, high=MAX_SIDE),
            max_faces=meta_int(meta, META_MAX_FACES, base.max_faces, low=-1, high=100_000),
        )
