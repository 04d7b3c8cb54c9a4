"""PP-OCR text detection and recognition pipelines (DB detector, optional 0°/180° classifier,
CTC recogniser, character dictionary).

Transport-free and runtime-free: pipelines get :class:`~services.runtimes.base.Session` objects and
a decoded RGB image, and return :class:`OcrResult` (``ocr_v1`` via ``to_json()``).
See docs/face_ocr.md.
"""

from services.ocr.detection import TextBox, TextDetector
from services.ocr.dictionary import CharDictionary, DictionaryError, ctc_greedy_decode
from services.ocr.params import OCR_META_KEYS, OcrParams
from services.ocr.pipeline import OcrPipeline, dictionary_from_session
from services.ocr.quads import crop_quad, order_quad, reading_order, unclip_rect
from services.ocr.recognition import TextDirectionClassifier, TextRecogniser
from services.ocr.resolve import OcrModelFiles, build_ocr_pipeline, open_ocr_pipeline, resolve_ocr_model
from services.ocr.results import SCHEMA, OcrItem, OcrResult

__all__ = [
    "OCR_META_KEYS",
    "SCHEMA",
    "CharDictionary",
    "DictionaryError",
    "OcrItem",
    "OcrModelFiles",
    "OcrParams",
    "OcrPipeline",
    "OcrResult",
    "TextBox",
    "TextDetector",
    "TextDirectionClassifier",
    "TextRecogniser",
    "build_ocr_pipeline",
    "crop_quad",
    "ctc_greedy_decode",
    "dictionary_from_session",
    "open_ocr_pipeline",
    "order_quad",
    "reading_order",
    "resolve_ocr_model",
    "unclip_rect",
]
