"""PP-OCR text detection (DB: a text-probability map) and its post-processing.

Pre-processing: resize so the sides respect the limit (``det_limit_type`` max/min of
``det_limit_side_len``), then each side to the nearest multiple of 32 (at least 32), BGR,
``(x / 255 − mean) / std`` with mean = std = 0.5 (what SOURCES.md verified for the PP-OCRv4
export), NCHW.

Post-processing (DB): binarise ``p > det_threshold``; for each outer contour take its minimum-area
rectangle, drop it when its shorter side < ``min_box_size``; score = mean probability inside it,
drop below ``box_threshold``; widen it by one pixel (the contour runs through the centres of the
blob's edge pixels, the blob reaches half a pixel further), then grow it by
``d = area · unclip_ratio / perimeter``
(:func:`~services.ocr.quads.unclip_rect`), drop when the shorter side < ``min_box_size + 2``;
map to the submitted image (per-axis ratio), clip, order the corners TL, TR, BR, BL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from services.api import InferenceFailed
from services.ocr.params import MAX_LIMIT_SIDE, OcrParams
from services.ocr.quads import order_quad, rect_points, unclip_rect
from services.runtimes.base import Session

MULTIPLE = 32
MAX_DET_PIXELS = 4096 * 4096  # detector input bound (a 200 MB float tensor), whatever the meta asks
MAX_CANDIDATES = 1000


@dataclass(frozen=True)
class TextBox:
    quad: np.ndarray  # [4, 2] float, TL, TR, BR, BL, pixels of the submitted image
    score: float


@dataclass(frozen=True)
class DetInput:
    tensor: np.ndarray
    ratio_w: float  # detector pixels per original pixel
    ratio_h: float


class TextDetector:
    def __init__(
        self,
        session: Session,
        *,
        mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        channel_order: str = "bgr",
    ) -> None:
        if not session.inputs or not session.outputs:
            raise InferenceFailed("text detector graph needs an input and an output")
        self.session = session
        info = session.inputs[0]
        if len(info.shape) != 4:
            raise InferenceFailed(
                f"text detector input {info.name!r} must be [N, 3, H, W] (got {info.shape})"
            )
        self.input_name = info.name
        self.input_dtype = np.dtype(info.dtype if info.dtype in ("float16", "float32") else "float32")
        self.output_name = session.outputs[0].name
        self.channel_order = channel_order
        std_arr = np.asarray(std, dtype=np.float64)
        self._mul = (1.0 / (255.0 * std_arr)).astype(np.float32)
        self._add = (-np.asarray(mean, dtype=np.float64) / std_arr).astype(np.float32)

    @staticmethod
    def target_size(height: int, width: int, params: OcrParams) -> tuple[int, int]:
        """``(h, w)`` of the detector input for an image of ``height × width``: scaled per
        ``limit_type``/``limit_side_len``, never above :data:`MAX_LIMIT_SIDE` per side or
        :data:`MAX_DET_PIXELS` in all, in multiples of 32."""
        limit = params.limit_side_len
        if params.limit_type == "max":
            ratio = min(1.0, limit / max(height, width))
        else:
            ratio = limit / min(height, width) if min(height, width) < limit else 1.0
        # "min" with a large limit would upscale without bound (a 20000×100 strip to 8192 px high)
        ratio = min(ratio, MAX_LIMIT_SIDE / max(height, width), math.sqrt(MAX_DET_PIXELS / (height * width)))
        new_h = max(MULTIPLE, int(round(height * ratio / MULTIPLE)) * MULTIPLE)
        new_w = max(MULTIPLE, int(round(width * ratio / MULTIPLE)) * MULTIPLE)
        return new_h, new_w

    def prepare(self, rgb: np.ndarray, params: OcrParams) -> DetInput:
        h, w = rgb.shape[:2]
        new_h, new_w = self.target_size(h, w, params)
        image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if self.channel_order == "bgr" else rgb
        if (new_h, new_w) != (h, w):
            image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        x = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)[None]
        x *= self._mul[None, :, None, None]
        x += self._add[None, :, None, None]
        tensor = x.astype(self.input_dtype, copy=False)
        return DetInput(tensor, new_w / w, new_h / h)

    def probability_map(self, rgb: np.ndarray, params: OcrParams) -> tuple[np.ndarray, DetInput]:
        prepared = self.prepare(rgb, params)
        out = np.asarray(self.session.run({self.input_name: prepared.tensor}, [self.output_name])[0])
        if out.ndim == 4:
            out = out[0, 0]
        elif out.ndim == 3:
            out = out[0]
        if out.ndim != 2:
            raise InferenceFailed(f"text detector output must be [N, 1, H, W] (got {out.shape})")
        return out.astype(np.float32, copy=False), prepared

    def detect(self, rgb: np.ndarray, params: OcrParams) -> list[TextBox]:
        """Text boxes in ``rgb`` (pixels of ``rgb``), in no particular order."""
        prob, prepared = self.probability_map(rgb, params)
        return boxes_from_map(prob, prepared.ratio_w, prepared.ratio_h, rgb.shape[0], rgb.shape[1], params)


def boxes_from_map(
    prob: np.ndarray, ratio_w: float, ratio_h: float, height: int, width: int, params: OcrParams
) -> list[TextBox]:
    """DB post-processing of a probability map ``[h, w]`` into boxes of the original image."""
    bitmap = (prob > params.det_threshold).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[TextBox] = []
    for contour in contours[:MAX_CANDIDATES]:
        if len(contour) < 2:
            continue
        rect = cv2.minAreaRect(contour)
        if min(rect[1]) < params.min_box_size:
            continue
        score = box_score(prob, rect_points(rect))
        if score < params.box_threshold:
            continue
        # contour points are pixel centres: the blob itself reaches half a pixel beyond them
        (cx, cy), (w, h), angle = rect
        grown = unclip_rect(((cx, cy), (w + 1.0, h + 1.0), angle), params.unclip_ratio)
        if min(grown[1]) < params.min_box_size + 2:
            continue
        pts = rect_points(grown)
        pts[:, 0] = np.clip(pts[:, 0] / ratio_w, 0, width - 1)
        pts[:, 1] = np.clip(pts[:, 1] / ratio_h, 0, height - 1)
        quad = order_quad(pts)
        if min(np.ptp(quad[:, 0]), np.ptp(quad[:, 1])) < 1.0:
            continue  # clipped away to a line
        boxes.append(TextBox(quad, float(score)))
    return boxes


def box_score(prob: np.ndarray, points: np.ndarray) -> float:
    """Mean of ``prob`` inside the polygon ``points`` (``[4, 2]``, map pixels)."""
    h, w = prob.shape
    xmin = int(np.clip(np.floor(points[:, 0].min()), 0, w - 1))
    xmax = int(np.clip(np.ceil(points[:, 0].max()), 0, w - 1))
    ymin = int(np.clip(np.floor(points[:, 1].min()), 0, h - 1))
    ymax = int(np.clip(np.ceil(points[:, 1].max()), 0, h - 1))
    mask = np.zeros((ymax - ymin + 1, xmax - xmin + 1), dtype=np.uint8)
    shifted = np.round(points - [xmin, ymin]).astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    window = prob[ymin : ymax + 1, xmin : xmax + 1]
    if not mask.any():
        return 0.0
    return float(cv2.mean(window, mask)[0])
