"""The face pipeline: detect → align → embed, on one decoded RGB image."""

from __future__ import annotations

import numpy as np

from services.api import InvalidInput
from services.face.detection import Detections, FaceDetector
from services.face.params import FaceParams
from services.face.recognition import FaceRecogniser
from services.face.results import Face, FaceResult
from services.imaging import ensure_rgb_image


class FacePipeline:
    """``detect`` (boxes, scores, landmarks) and ``analyze`` (the same plus embeddings).

    Both take an RGB ``uint8`` ``(H, W, 3)`` image, already EXIF-oriented, and return a
    :class:`FaceResult` in pixels of exactly that image. Blocking: run it in an executor."""

    def __init__(
        self, detector: FaceDetector, recogniser: FaceRecogniser | None = None, *, model_id: str = ""
    ) -> None:
        self.detector = detector
        self.recogniser = recogniser
        self.model_id = model_id

    @property
    def family(self) -> str:
        return self.detector.family

    @property
    def default_params(self) -> FaceParams:
        """The detector family's defaults; pass to :meth:`FaceParams.from_meta`."""
        return self.detector.default_params

    @property
    def embedding_dim(self) -> int | None:
        return self.recogniser.embedding_dim if self.recogniser else None

    def detect(self, rgb: np.ndarray, params: FaceParams | None = None) -> FaceResult:
        image = ensure_rgb_image(rgb)
        found = self.detector.detect(image, params or self.default_params)
        return self._result(image, found, None)

    def analyze(self, rgb: np.ndarray, params: FaceParams | None = None) -> FaceResult:
        if self.recogniser is None:
            raise InvalidInput("this face model has no recogniser; only face detection is available")
        image = ensure_rgb_image(rgb)
        found = self.detector.detect(image, params or self.default_params)
        embeddings = self.recogniser.embed(image, found.landmarks) if len(found) else None
        return self._result(image, found, embeddings)

    def _result(self, image: np.ndarray, found: Detections, embeddings: np.ndarray | None) -> FaceResult:
        h, w = image.shape[:2]
        faces = []
        for i in range(len(found)):
            marks = np.empty((5, 2), dtype=np.float64)
            marks[:, 0] = np.clip(found.landmarks[i, :, 0], 0.0, w)
            marks[:, 1] = np.clip(found.landmarks[i, :, 1], 0.0, h)
            faces.append(
                Face(
                    bbox=tuple(float(v) for v in found.boxes[i]),  # type: ignore[arg-type]
                    confidence=float(min(max(found.scores[i], 0.0), 1.0)),
                    landmarks=tuple((float(x), float(y)) for x, y in marks),
                    embedding=None if embeddings is None else embeddings[i],
                )
            )
        return FaceResult(faces=tuple(faces), model_id=self.model_id)
