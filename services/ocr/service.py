"""The ``ocr`` service: PP-OCR text detection, direction classification and recognition.

Task ``ocr`` (images: WebP, JPEG, PNG, AVIF where decodable, raw RGB → ``ocr_v1``): text lines
in reading order, each with a box of 4 INTEGER points TL, TR, BR, BL in pixels of the submitted
image as decoded (EXIF orientation applied), the text and a confidence 0..1.

Meta (lenient numbers/booleans; :class:`~services.ocr.OcrParams`): ``det_threshold``,
``box_threshold``, ``unclip_ratio``, ``min_box_size``, ``det_limit_side_len``, ``det_limit_type``,
``rec_threshold``, ``use_angle_cls``, ``cls_threshold``, ``cls_verify`` and their PaddleOCR /
RapidOCR spellings; defaults come from the model folder's ``model_info.json``.

Model folder: whatever :func:`~services.ocr.resolve_ocr_model` accepts (``onnx/detection.<p>.onnx``,
``onnx/recognition.<p>.onnx``, optional ``onnx/classification.<p>.onnx``, the dictionary from the
recogniser's metadata or a file such as ``ppocrv5_dict.txt``; Immich and RapidOCR layouts).
Runs on onnxruntime (and TorchScript exports); PP-OCR needs dynamic input sizes, which RKNN's
fixed-shape graphs do not have, so an RKNN OCR model is FAILED with that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.api import InferenceRequest, ModelSpec, TaskSpec
from services.lifecycle import ModelLease
from services.ocr.params import KEYS, OcrParams
from services.ocr.pipeline import OcrPipeline
from services.ocr.recognition import CLS_SIZE, REC_HEIGHT
from services.ocr.resolve import OcrModelFiles, build_ocr_pipeline, resolve_ocr_model
from services.ocr.results import SCHEMA
from services.pipeline_service import PipelineService, SessionOpener
from services.runtimes import TensorInfo
from services.service import ModelUnavailable, Task


class OcrService(PipelineService[OcrModelFiles]):
    name = "ocr"

    def tasks(self) -> Sequence[Task]:
        limits = {
            **self.image_limits.as_task_limits(),
            "meta_keys": ",".join(keys[0] for keys in KEYS.values()),
        }
        return [
            Task(
                TaskSpec(
                    "ocr",
                    self.input_mimes(),
                    SCHEMA,
                    limits=limits,
                    description="text lines in reading order: 4 integer corner points TL,TR,BR,BL "
                    "in pixels, text, confidence",
                ),
                self.read,
            )
        ]

    # ------------------------------------------------------------------ model

    def supports_runtime(self, model: ModelSpec) -> None:
        if model.runtime == "rknn":
            raise ModelUnavailable(
                "the ocr service cannot run PP-OCR on RKNN: its detector and recogniser take "
                "images of any size, RKNN graphs have one fixed input shape; use runtime onnx",
                retry=False,
            )

    resolve_folder = staticmethod(resolve_ocr_model)

    def build(self, files: OcrModelFiles, model: ModelSpec, open_file: SessionOpener) -> OcrPipeline:
        # Signatures for runtimes whose files carry none (torch); onnxruntime reads its own.
        det = open_file(files.detector, inputs=(TensorInfo("x", (1, 3, "height", "width"), "float32"),))
        rec = open_file(files.recogniser, inputs=(TensorInfo("x", ("n", 3, REC_HEIGHT, "width"), "float32"),))
        cls = None
        if files.classifier is not None:
            cls = open_file(files.classifier, inputs=(TensorInfo("x", ("n", 3, *CLS_SIZE), "float32"),))
        return build_ocr_pipeline(files, det, rec, cls)

    def facts(self, files: OcrModelFiles, pipeline: OcrPipeline | None) -> dict[str, str]:
        facts = {"classifier": "yes" if files.classifier is not None else "no"}
        if pipeline is not None:
            facts["dictionary_size"] = str(len(pipeline.dictionary.chars))
        facts["box"] = "4 integer points TL,TR,BR,BL"
        return facts

    # ------------------------------------------------------------------ handler

    async def read(self, request: InferenceRequest, model: ModelLease) -> dict[str, Any]:
        pipeline: OcrPipeline = model.model.pipeline
        params = OcrParams.from_meta(request.meta, pipeline.default_params)  # bad meta fails fast
        image = await self.decode(request, model)
        result = await model.run(pipeline.read, image, params)
        return result.to_json()
