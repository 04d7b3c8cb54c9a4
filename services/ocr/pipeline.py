"""The OCR pipeline: detect → crop → (direction) → recognise, on one decoded RGB image."""

from __future__ import annotations

import numpy as np

from services.imaging import ensure_rgb_image
from services.ocr.detection import TextDetector
from services.ocr.dictionary import CharDictionary, DictionaryError
from services.ocr.params import OcrParams
from services.ocr.quads import crop_quad, reading_order
from services.ocr.recognition import TextDirectionClassifier, TextRecogniser
from services.ocr.results import OcrItem, OcrResult
from services.runtimes.base import Session

METADATA_DICT_KEY = "character"
VERIFY_BELOW = 0.9  # a line the classifier turned is read the original way too below this confidence


def dictionary_from_session(session: Session) -> CharDictionary | None:
    """The dictionary a PaddleOCR export carries in its metadata (``character``), if any."""
    metadata = getattr(session, "metadata", None) or {}
    text = metadata.get(METADATA_DICT_KEY) if hasattr(metadata, "get") else None
    if not text:
        return None
    return CharDictionary.from_text(str(text), source="recogniser metadata 'character'")


class OcrPipeline:
    """``read(rgb, params)`` → :class:`OcrResult`. Blocking: run it in an executor.

    ``default_params`` (the model folder's thresholds, see :func:`resolve_ocr_model`) apply when
    ``read`` gets none; pass them to :meth:`OcrParams.from_meta` as its defaults.

    ``dictionary`` None = the recogniser's own metadata ``character`` (PaddleOCR exports carry
    it); a :class:`DictionaryError` when neither is there or it does not fit the recogniser."""

    def __init__(
        self,
        det: Session,
        rec: Session,
        cls: Session | None = None,
        *,
        dictionary: CharDictionary | None = None,
        model_id: str = "",
        det_mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        det_std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        default_params: OcrParams | None = None,
    ) -> None:
        chosen = dictionary_from_session(rec) or dictionary
        if chosen is None:
            raise DictionaryError(
                "no character dictionary: the recogniser has no 'character' metadata and no "
                "dictionary was given; pass dictionary=CharDictionary.from_file(<the model's .txt>)"
            )
        self.detector = TextDetector(det, mean=det_mean, std=det_std)
        self.recogniser = TextRecogniser(rec, chosen)
        self.classifier = TextDirectionClassifier(cls) if cls is not None else None
        self.model_id = model_id
        self.default_params = default_params or OcrParams()

    @property
    def dictionary(self) -> CharDictionary:
        return self.recogniser.dictionary

    def read(self, rgb: np.ndarray, params: OcrParams | None = None) -> OcrResult:
        params = params or self.default_params
        image = ensure_rgb_image(rgb)
        boxes = self.detector.detect(image, params)
        if not boxes:
            return OcrResult((), self.model_id)
        boxes = [boxes[i] for i in reading_order([b.quad for b in boxes])]
        bgr = np.ascontiguousarray(image[..., ::-1])
        crops = [crop_quad(bgr, b.quad) for b in boxes]
        readings = self._recognise(crops, params)
        items = []
        for box, (text, conf) in zip(boxes, readings, strict=True):
            text = text.strip()
            if not text or conf < params.rec_threshold:
                continue
            corners = tuple((int(round(x)), int(round(y))) for x, y in box.quad)
            items.append(OcrItem(corners, text, min(max(conf, 0.0), 1.0)))  # type: ignore[arg-type]
        return OcrResult(tuple(items), self.model_id)

    def _recognise(self, crops: list[np.ndarray], params: OcrParams) -> list[tuple[str, float]]:
        flipped: list[int] = []
        if self.classifier is not None and params.use_angle_cls:
            for i, (is_180, prob) in enumerate(self.classifier.classify(crops)):
                if is_180 and prob > params.cls_threshold:
                    flipped.append(i)
        originals = {i: crops[i] for i in flipped}
        for i in flipped:
            crops[i] = np.ascontiguousarray(crops[i][::-1, ::-1])
        readings = self.recogniser.recognise(crops)
        if not params.cls_verify:
            return readings
        # The classifier sometimes turns an upright line (SOURCES.md): when the turned line
        # reads poorly, read it the original way too and keep the more confident reading.
        doubtful = [i for i in flipped if readings[i][1] < VERIFY_BELOW]
        for i, again in zip(
            doubtful, self.recogniser.recognise([originals[i] for i in doubtful]), strict=True
        ):
            if again[1] > readings[i][1]:
                readings[i] = again
        return readings
