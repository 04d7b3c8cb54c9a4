"""Face detection and recognition pipelines (SCRFD / YuNet detectors, ArcFace-style recognisers).

Transport-free and runtime-free: pipelines get :class:`~services.runtimes.base.Session` objects and
a decoded RGB image, and return :class:`FaceResult` (``face_v1`` via ``to_json()``).
See docs/face_ocr.md.
"""

from services.face.align import ARCFACE_TEMPLATE_112, align_face, similarity_transform
from services.face.detection import Detections, FaceDetector
from services.face.detectors import DETECTOR_FAMILIES, make_detector, sniff_family
from services.face.params import FACE_META_KEYS, FaceParams
from services.face.pipeline import FacePipeline
from services.face.recognition import (
    ARCFACE_SPEC,
    MOBILEFACENET_SPEC,
    RECOGNISER_PRESETS,
    FaceRecogniser,
    RecogniserSpec,
    recogniser_preset,
)
from services.face.resolve import FaceModelFiles, build_face_pipeline, open_face_pipeline, resolve_face_model
from services.face.results import SCHEMA, Face, FaceResult
from services.face.scrfd import ScrfdDetector
from services.face.yunet import YunetDetector

__all__ = [
    "ARCFACE_SPEC",
    "ARCFACE_TEMPLATE_112",
    "DETECTOR_FAMILIES",
    "FACE_META_KEYS",
    "MOBILEFACENET_SPEC",
    "RECOGNISER_PRESETS",
    "SCHEMA",
    "Detections",
    "Face",
    "FaceDetector",
    "FaceModelFiles",
    "FaceParams",
    "FacePipeline",
    "FaceRecogniser",
    "FaceResult",
    "RecogniserSpec",
    "ScrfdDetector",
    "YunetDetector",
    "align_face",
    "build_face_pipeline",
    "make_detector",
    "open_face_pipeline",
    "recogniser_preset",
    "resolve_face_model",
    "similarity_transform",
    "sniff_family",
]
