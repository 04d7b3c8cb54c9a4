"""Letterboxing into a detector input and non-maximum suppression."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

STRIDE_MULTIPLE = 32


@dataclass(frozen=True)
class Letterbox:
    """The image resized to ``(new_w, new_h)`` and pasted at the top-left of an
    ``(canvas_w, canvas_h)`` canvas. ``sx``/``sy`` map original → detector pixels."""

    canvas_w: int
    canvas_h: int
    new_w: int
    new_h: int
    sx: float
    sy: float

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Detector-input coordinates (``[..., 2k]`` interleaved x, y) → original pixels."""
        out = np.array(xy, dtype=np.float32, copy=True)
        out[..., 0::2] /= self.sx
        out[..., 1::2] /= self.sy
        return out


def plan_letterbox(
    height: int, width: int, *, canvas: tuple[int, int] | None, target: int, multiple: int = STRIDE_MULTIPLE
) -> Letterbox:
    """Where the image goes. ``canvas`` = the graph's fixed ``(h, w)``; None (dynamic graph) =
    scale the longer side to ``target`` and pad each side up to a multiple of ``multiple``."""
    if canvas is not None:
        ch, cw = canvas
        scale = min(ch / height, cw / width)
    else:
        scale = target / max(height, width)
    new_w = max(1, int(round(width * scale)))
    new_h = max(1, int(round(height * scale)))
    if canvas is None:
        cw = -(-new_w // multiple) * multiple
        ch = -(-new_h // multiple) * multiple
    else:
        new_w, new_h = min(new_w, cw), min(new_h, ch)
    return Letterbox(cw, ch, new_w, new_h, new_w / width, new_h / height)


def resize_for(image: np.ndarray, plan: Letterbox) -> np.ndarray:
    """``image`` resized to the plan's ``(new_w, new_h)`` (area averaging when shrinking)."""
    h, w = image.shape[:2]
    if (plan.new_w, plan.new_h) == (w, h):
        return image
    shrinking = plan.new_w < w
    return cv2.resize(
        image, (plan.new_w, plan.new_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first. ``boxes`` ``[N, 4]`` x1,y1,x2,y2."""
    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)
