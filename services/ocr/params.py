"""OCR request parameters and how they are read from request ``meta``.

Meta keys (all optional, parsed leniently; the PaddleOCR / RapidOCR spellings in brackets are
accepted as aliases):

======================== ======= =================================================================
key                      default meaning
======================== ======= =================================================================
``det_threshold``        0.3     text-probability above which a pixel is text (``det_db_thresh``)
``box_threshold``        0.5     minimum mean probability inside a box (``det_db_box_thresh``)
``unclip_ratio``         1.6     box growth: each side moves out by area·ratio/perimeter
                                 (``det_db_unclip_ratio``)
``min_box_size``         3       drop boxes whose shorter side (detector pixels) is smaller
``det_limit_side_len``   960     detector input size limit (``limit_side_len``), see the next key
``det_limit_type``       max     ``max``: shrink so the LONGER side ≤ limit (never enlarge);
                                 ``min``: scale so the SHORTER side ≥ limit (``limit_type``)
``rec_threshold``        0.5     drop lines whose confidence is lower (``drop_score``,
                                 ``text_score``)
``use_angle_cls``        true    run the text-direction classifier when the model has one
                                 (``use_cls``)
``cls_threshold``        0.9     rotate a line 180° only when "180" is more probable than this
                                 (``cls_thresh``)
``cls_verify``           true    when a line the classifier turned reads with confidence < 0.9,
                                 read it unturned too and keep the more confident reading (guards
                                 against classifier misfires on upright lines)
======================== ======= =================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from services.api import InvalidInput
from services.meta import meta_bool, meta_float, meta_int

LIMIT_TYPES = ("max", "min")
MAX_LIMIT_SIDE = 8192

KEYS: dict[str, tuple[str, ...]] = {
    "det_threshold": ("det_threshold", "det_db_thresh"),
    "box_threshold": ("box_threshold", "det_db_box_thresh", "det_box_thresh"),
    "unclip_ratio": ("unclip_ratio", "det_db_unclip_ratio", "det_unclip_ratio"),
    "min_box_size": ("min_box_size", "det_min_size"),
    "limit_side_len": ("det_limit_side_len", "limit_side_len"),
    "limit_type": ("det_limit_type", "limit_type"),
    "rec_threshold": ("rec_threshold", "drop_score", "text_score"),
    "use_angle_cls": ("use_angle_cls", "use_cls"),
    "cls_threshold": ("cls_threshold", "cls_thresh"),
    "cls_verify": ("cls_verify",),
}
OCR_META_KEYS: tuple[str, ...] = tuple(k for keys in KEYS.values() for k in keys)


@dataclass(frozen=True)
class OcrParams:
    det_threshold: float = 0.3
    box_threshold: float = 0.5
    unclip_ratio: float = 1.6
    min_box_size: float = 3.0
    limit_side_len: int = 960
    limit_type: str = "max"
    rec_threshold: float = 0.5
    use_angle_cls: bool = True
    cls_threshold: float = 0.9
    cls_verify: bool = True

    def __post_init__(self) -> None:
        for name in ("det_threshold", "box_threshold", "rec_threshold", "cls_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInput(f"{name} must be from 0 to 1 (got {value})")
        if not 0.0 <= self.unclip_ratio <= 10.0:
            raise InvalidInput(f"unclip_ratio must be from 0 to 10 (got {self.unclip_ratio})")
        if self.min_box_size < 0:
            raise InvalidInput(f"min_box_size must be at least 0 (got {self.min_box_size})")
        if not 32 <= self.limit_side_len <= MAX_LIMIT_SIDE:
            raise InvalidInput(
                f"det_limit_side_len must be from 32 to {MAX_LIMIT_SIDE} (got {self.limit_side_len})"
            )
        if self.limit_type not in LIMIT_TYPES:
            raise InvalidInput(
                f"det_limit_type must be one of {', '.join(LIMIT_TYPES)} (got {self.limit_type!r})"
            )

    @classmethod
    def from_meta(cls, meta: Mapping[str, str], defaults: OcrParams | None = None) -> OcrParams:
        base = defaults or cls()
        limit_type = base.limit_type
        for key in KEYS["limit_type"]:
            raw = meta.get(key)
            if raw is not None and str(raw).strip():
                limit_type = str(raw).strip().lower()
                if limit_type not in LIMIT_TYPES:
                    raise InvalidInput(f"meta {key!r} must be one of {', '.join(LIMIT_TYPES)} (got {raw!r})")
                break
        return replace(
            base,
            det_threshold=meta_float(meta, KEYS["det_threshold"], base.det_threshold, low=0.0, high=1.0),
            box_threshold=meta_float(meta, KEYS["box_threshold"], base.box_threshold, low=0.0, high=1.0),
            unclip_ratio=meta_float(meta, KEYS["unclip_ratio"], base.unclip_ratio, low=0.0, high=10.0),
            min_box_size=meta_float(meta, KEYS["min_box_size"], base.min_box_size, low=0.0, high=1000.0),
            limit_side_len=meta_int(
                meta, KEYS["limit_side_len"], base.limit_side_len, low=32, high=MAX_LIMIT_SIDE
            ),
            limit_type=limit_type,
            rec_threshold=meta_float(meta, KEYS["rec_threshold"], base.rec_threshold, low=0.0, high=1.0),
            use_angle_cls=meta_bool(meta, KEYS["use_angle_cls"], base.use_angle_cls),
            cls_threshold=meta_float(meta, KEYS["cls_threshold"], base.cls_threshold, low=0.0, high=1.0),
            cls_verify=meta_bool(meta, KEYS["cls_verify"], base.cls_verify),
        )
