"""PP-OCR text-line recognition (CTC) and the 0°/180° text-direction classifier.

Recognition: each crop (BGR) is scaled to height 48 keeping its aspect; crops are sorted by
aspect ratio and run in batches of similar width (within 20%; on CPU only short lines share a
batch, see :data:`REC_BATCH_PIXELS_CPU`), each batch padded on the right to
``max(320, widest)`` pixels with 0 (after normalisation ``(x / 255 − 0.5) / 0.5``, i.e. mid-grey,
as PaddleOCR pads); the output ``[N, W/8, classes]`` is decoded greedily
(:func:`~services.ocr.dictionary.ctc_greedy_decode`).

Direction classifier: crops scaled to height 48 (width ≤ 192), padded to 48 × 192, same
normalisation; output ``[N, 2]`` = probabilities of ``0`` and ``180``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from services.api import InferenceFailed
from services.ocr.dictionary import CharDictionary, ctc_greedy_decode
from services.runtimes.base import Session

REC_HEIGHT = 48
REC_MIN_WIDTH = 320
REC_BATCH = 8
# Cap on batch size × padded width. On CPU the PP-OCRv4 recogniser gets SLOWER per line in
# batches of wide lines (measured: 88 ms for one 832-px line, 205 ms per line in threes, one
# thread), so CPU sessions batch only short lines; accelerators take bigger batches.
REC_BATCH_PIXELS_CPU = 2 * REC_MIN_WIDTH
REC_BATCH_PIXELS = 8 * 400
REC_WIDTH_SPREAD = 1.2  # widest / narrowest crop in one batch
REC_MAX_WIDTH = 48 * 64  # a longer line is squeezed to this width
CLS_SIZE = (48, 192)
CLS_BATCH = 16


def _normalise(image: np.ndarray) -> np.ndarray:
    """uint8 HWC → float32 CHW in [−1, 1]."""
    x = np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)
    x *= 2.0 / 255.0
    x -= 1.0
    return x


def _resize_to_height(crop: np.ndarray, height: int, max_width: int) -> np.ndarray:
    h, w = crop.shape[:2]
    width = max(1, min(max_width, int(math.ceil(height * w / max(h, 1)))))
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)


def _input_dtype(session: Session) -> np.dtype:
    dtype = session.inputs[0].dtype
    return np.dtype(dtype if dtype in ("float16", "float32") else "float32")


class TextRecogniser:
    def __init__(
        self,
        session: Session,
        dictionary: CharDictionary,
        *,
        batch_size: int = REC_BATCH,
        batch_pixels: int | None = None,
    ) -> None:
        if not session.inputs or not session.outputs:
            raise InferenceFailed("text recogniser graph needs an input and an output")
        self.session = session
        self.input_name = session.inputs[0].name
        self.output_name = session.outputs[0].name
        self.input_dtype = _input_dtype(session)
        dims = session.inputs[0].static_dims
        self.height = int(dims[2]) if len(dims) == 4 and dims[2] else REC_HEIGHT
        self.fixed_width = int(dims[3]) if len(dims) == 4 and dims[3] else None
        classes = session.outputs[0].static_dims[-1] if session.outputs[0].shape else None
        self.dictionary = dictionary.fitted_to(classes) if classes else dictionary
        self._symbols = self.dictionary.symbols()
        self.batch_size = max(1, batch_size)
        on_cpu = str(getattr(session, "runtime", "")).endswith("cpu")
        self.batch_pixels = batch_pixels or (REC_BATCH_PIXELS_CPU if on_cpu else REC_BATCH_PIXELS)

    def recognise(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """``(text, confidence)`` for each BGR crop, in the order given."""
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        if not crops:
            return results
        ratios = np.array([c.shape[1] / max(c.shape[0], 1) for c in crops])
        order = np.argsort(ratios, kind="stable")
        resized_all = {
            int(i): _resize_to_height(crops[int(i)], self.height, self.fixed_width or REC_MAX_WIDTH)
            for i in order
        }
        for chunk in self._batches([int(i) for i in order], resized_all):
            resized = [resized_all[i] for i in chunk]
            width = self.fixed_width or max(REC_MIN_WIDTH, max(r.shape[1] for r in resized))
            width = -(-width // 8) * 8 if self.fixed_width is None else width
            batch = np.zeros((len(chunk), 3, self.height, width), dtype=np.float32)
            for row, image in enumerate(resized):
                batch[row, :, :, : image.shape[1]] = _normalise(image)
            probs = np.asarray(
                self.session.run(
                    {self.input_name: batch.astype(self.input_dtype, copy=False)}, [self.output_name]
                )[0]
            ).astype(np.float32, copy=False)
            if probs.ndim != 3:
                raise InferenceFailed(f"text recogniser output must be [N, T, classes] (got {probs.shape})")
            probs = _as_probabilities(probs)
            for i, decoded in zip(chunk, ctc_greedy_decode(probs, self._symbols), strict=True):
                results[i] = decoded
        return results

    def _batches(self, order: list[int], resized: dict[int, np.ndarray]) -> list[list[int]]:
        """Consecutive runs of ``order`` (ascending width): at most ``batch_size`` crops,
        ``batch_pixels`` of padded width, and widths within :data:`REC_WIDTH_SPREAD` of
        the batch's narrowest (padding is computed for nothing)."""
        batches: list[list[int]] = []
        current: list[int] = []
        first = 0
        for i in order:
            width = max(REC_MIN_WIDTH, resized[i].shape[1])  # the widest so far, as order ascends
            if current and (
                len(current) >= self.batch_size
                or (len(current) + 1) * width > self.batch_pixels
                or width > REC_WIDTH_SPREAD * first
            ):
                batches.append(current)
                current = []
            if not current:
                first = width
            current.append(i)
        if current:
            batches.append(current)
        return batches


class TextDirectionClassifier:
    def __init__(self, session: Session, *, batch_size: int = CLS_BATCH) -> None:
        if not session.inputs or not session.outputs:
            raise InferenceFailed("text direction classifier graph needs an input and an output")
        self.session = session
        self.input_name = session.inputs[0].name
        self.output_name = session.outputs[0].name
        self.input_dtype = _input_dtype(session)
        dims = session.inputs[0].static_dims
        h = dims[2] if len(dims) == 4 and dims[2] else CLS_SIZE[0]
        w = dims[3] if len(dims) == 4 and dims[3] else CLS_SIZE[1]
        self.size = (int(h), int(w))
        self.batch_size = max(1, batch_size)

    def classify(self, crops: Sequence[np.ndarray]) -> list[tuple[bool, float]]:
        """``(is_180, probability of that label)`` for each BGR crop."""
        out: list[tuple[bool, float]] = []
        h, w = self.size
        for start in range(0, len(crops), self.batch_size):
            chunk = crops[start : start + self.batch_size]
            batch = np.zeros((len(chunk), 3, h, w), dtype=np.float32)
            for row, crop in enumerate(chunk):
                image = _resize_to_height(crop, h, w)
                batch[row, :, :, : image.shape[1]] = _normalise(image)
            probs = np.asarray(
                self.session.run(
                    {self.input_name: batch.astype(self.input_dtype, copy=False)}, [self.output_name]
                )[0]
            ).reshape(len(chunk), -1)
            if probs.shape[1] < 2:
                raise InferenceFailed(f"text direction classifier must output [N, 2] (got {probs.shape})")
            for row in probs:
                label = int(np.argmax(row[:2]))
                out.append((label == 1, float(row[label])))
        return out


def _as_probabilities(scores: np.ndarray) -> np.ndarray:
    """Recognisers export softmax probabilities; a logits export (rows not summing to 1) gets a
    softmax here so confidences stay probabilities."""
    sums = scores.sum(axis=2)
    if np.all(np.abs(sums - 1.0) < 1e-2) and scores.min() >= 0.0:
        return scores
    shifted = scores - scores.max(axis=2, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=2, keepdims=True)
