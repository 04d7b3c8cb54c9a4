"""Face detectors: the shared pre- and post-processing around a family-specific decoder.

A detector takes the submitted RGB image, letterboxes it (top-left, black padding) into the
graph input, runs the session, lets the family decoder turn the raw outputs into candidate
boxes / scores / 5 landmarks in detector-input pixels, and then, in pixels of the submitted
image: score threshold → map back → clip boxes → size filter → NMS → rank (largest box first,
then higher score) → ``max_faces``.

Families (one module each): :mod:`services.face.scrfd` (insightface packs) and
:mod:`services.face.yunet`. :func:`make_detector` builds one from a session, reading the family
from the graph's outputs when not told.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from services.api import InferenceFailed
from services.face.geometry import Letterbox, nms, plan_letterbox, resize_for
from services.face.params import FaceParams
from services.runtimes.base import Session

DEFAULT_INPUT_SIZE = 640


@dataclass(frozen=True)
class Detections:
    """Kept faces, best-ranked first, in pixels of the submitted image.

    ``boxes`` ``[N, 4]`` x1, y1, x2, y2 clipped to the image; ``scores`` ``[N]``; ``landmarks``
    ``[N, 5, 2]`` in ArcFace template order, NOT clipped (alignment needs the true points)."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


@dataclass(frozen=True)
class Candidates:
    """Decoder output in detector-input pixels (already above the score threshold)."""

    boxes: np.ndarray  # [N, 4]
    scores: np.ndarray  # [N]
    landmarks: np.ndarray  # [N, 5, 2]


class FaceDetector:
    """Base class; subclasses set :attr:`family`, :attr:`default_params`, the input transform
    (:attr:`channel_order`, :attr:`pixel_scale`, :attr:`pixel_offset`) and :meth:`decode`."""

    family: str = ""
    default_params: FaceParams = FaceParams()
    channel_order: str = "rgb"  # what the graph wants
    pixel_scale: float = 1.0  # graph value = pixel * pixel_scale + pixel_offset
    pixel_offset: float = 0.0
    # Position k of the landmarks the graph emits → position in ArcFace template order.
    landmark_order: tuple[int, ...] = (0, 1, 2, 3, 4)

    def __init__(self, session: Session, *, input_size: int = DEFAULT_INPUT_SIZE) -> None:
        if not session.inputs:
            raise InferenceFailed(f"{self.family} detector graph has no inputs")
        self.session = session
        info = session.inputs[0]
        self.input_name = info.name
        self.input_dtype = np.dtype(info.dtype if info.dtype.startswith("float") else "float32")
        dims = info.static_dims
        if len(dims) != 4 or (dims[1] not in (None, 3)):
            raise InferenceFailed(
                f"{self.family} detector input {info.name!r} must be [N, 3, H, W] (got {info.shape})"
            )
        self.fixed_hw: tuple[int, int] | None = (
            (int(dims[2]), int(dims[3])) if dims[2] is not None and dims[3] is not None else None
        )
        if input_size < 32:
            raise ValueError(f"detector input_size must be at least 32 (got {input_size})")
        self.input_size = int(input_size)
        self.output_names = [o.name for o in session.outputs]

    # -- the pipeline ---------------------------------------------------------------------

    def prepare(self, rgb: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The input tensor ``[1, 3, H, W]`` and where the image sits in it (the padding is what
        a black pixel becomes)."""
        h, w = rgb.shape[:2]
        plan = plan_letterbox(h, w, canvas=self.fixed_hw, target=self.input_size)
        source = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if self.channel_order == "bgr" else rgb
        resized = resize_for(source, plan)
        tensor = np.full((1, 3, plan.canvas_h, plan.canvas_w), self.pixel_offset, dtype=np.float32)
        region = tensor[0, :, : plan.new_h, : plan.new_w]
        region[...] = resized.transpose(2, 0, 1)
        if self.pixel_scale != 1.0:
            region *= self.pixel_scale
        if self.pixel_offset != 0.0:
            region += self.pixel_offset
        return tensor.astype(self.input_dtype, copy=False), plan

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.session.run({self.input_name: tensor}, self.output_names)

    def decode(
        self, outputs: Sequence[np.ndarray], input_hw: tuple[int, int], threshold: float
    ) -> Candidates:
        raise NotImplementedError

    def detect(self, rgb: np.ndarray, params: FaceParams | None = None) -> Detections:
        """Faces in ``rgb`` (H, W, 3 uint8, RGB)."""
        params = params or self.default_params
        tensor, plan = self.prepare(rgb)
        outputs = self.run(tensor)
        cand = self.decode(outputs, (plan.canvas_h, plan.canvas_w), params.score_threshold)
        return finish(cand, plan, rgb.shape[0], rgb.shape[1], params, self.landmark_order)


def finish(
    cand: Candidates,
    plan: Letterbox,
    height: int,
    width: int,
    params: FaceParams,
    landmark_order: Sequence[int] = (0, 1, 2, 3, 4),
) -> Detections:
    """Map candidates to the submitted image and apply size filter, NMS, ranking, max_faces."""
    if len(cand.scores) == 0:
        return Detections.empty()
    keep = cand.scores >= params.score_threshold
    boxes = plan.to_original(cand.boxes[keep])
    scores = cand.scores[keep].astype(np.float32)
    marks = plan.to_original(cand.landmarks[keep].reshape(-1, 10)).reshape(-1, 5, 2)
    marks = marks[:, list(landmark_order)]
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0.0, float(width))
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0.0, float(height))
    bw = boxes[:, 2] - boxes[:, 0]
    bh = boxes[:, 3] - boxes[:, 1]
    size = np.maximum(bw, bh)
    ok = (bw > 0) & (bh > 0) & (size >= params.min_size)
    if params.max_size > 0:
        ok &= size <= params.max_size
    boxes, scores, marks = boxes[ok], scores[ok], marks[ok]
    kept = nms(boxes, scores, params.nms_threshold)
    boxes, scores, marks = boxes[kept], scores[kept], marks[kept]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.lexsort((-scores, -area))  # largest box first, then the higher score
    if params.max_faces > 0:
        order = order[: params.max_faces]
    return Detections(boxes[order], scores[order], marks[order])


def as_rows(array: np.ndarray, channels: int, what: str) -> np.ndarray:
    """An output of shape ``[N, C]`` or ``[1, N, C]`` as ``[N, C]`` float32."""
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[1] != channels:
        raise InferenceFailed(f"{what}: expected an output of shape [N, {channels}] (got {arr.shape})")
    return arr.astype(np.float32, copy=False)
