"""OCR results, mapping 1:1 onto the ``ocr_v1`` JSON schema (DESIGN.md §3.2).

``ocr_v1``: ``{"items": [{"box": [[x, y] × 4], "text": "...", "confidence": c}], "count": n,
"model_id": "..."}``. Box points are INTEGER pixels of the submitted (decoded, EXIF-oriented)
image in the order top-left, top-right, bottom-right, bottom-left; items are in reading order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEMA = "ocr_v1"

Point = tuple[int, int]


@dataclass(frozen=True)
class OcrItem:
    box: tuple[Point, Point, Point, Point]  # TL, TR, BR, BL
    text: str
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [[int(x), int(y)] for x, y in self.box],
            "text": self.text,
            "confidence": round(float(self.confidence), 4),
        }


@dataclass(frozen=True)
class OcrResult:
    items: tuple[OcrItem, ...]
    model_id: str = ""

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def text(self) -> str:
        """All lines, in reading order, one per line."""
        return "\n".join(item.text for item in self.items)

    def to_json(self) -> dict[str, Any]:
        """The ``ocr_v1`` object."""
        return {"items": [i.to_json() for i in self.items], "count": self.count, "model_id": self.model_id}
