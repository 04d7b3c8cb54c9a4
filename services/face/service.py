"""The ``face`` service: face detection and recognition on the phase-1 pipeline.

Tasks (images: WebP, JPEG, PNG, AVIF where decodable, raw RGB → ``face_v1``):

* ``face_recognition`` (legacy alias ``face_detect_and_embed``): per face ``bbox`` ``[x1, y1, x2,
  y2]``, ``confidence``, ``landmarks`` (5 points, flat) and an L2-normalised ``embedding``;
* ``face_detect``: the same without embeddings.

Coordinates are pixels of the submitted image as decoded (EXIF orientation applied). Meta
(lenient numbers, ``"50.0"`` is 50): ``detection_confidence_threshold``, ``nms_threshold``,
``face_size_min``, ``face_size_max``, ``max_faces`` (:class:`~services.face.FaceParams`); a value
that cannot be read is ``InvalidInput`` naming the key.

Model folder: whatever :func:`~services.face.resolve_face_model` accepts (insightface packs
``onnx/detection.<p>.onnx`` + ``onnx/recognition.<p>.onnx`` with or without ``model_info.json``,
Immich's ``detection/model.onnx`` …, YuNet + MobileFaceNet via ``model_info.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.api import InferenceRequest, ModelSpec, TaskSpec
from services.face.params import FACE_META_KEYS, FaceParams
from services.face.pipeline import FacePipeline
from services.face.resolve import FaceModelFiles, build_face_pipeline, resolve_face_model
from services.face.results import SCHEMA
from services.lifecycle import ModelLease
from services.pipeline_service import PipelineService, SessionOpener
from services.runtimes import TensorInfo
from services.service import Task

STRIDES = (8, 16, 32)
SCRFD_ANCHORS = 2


class FaceService(PipelineService[FaceModelFiles]):
    name = "face"

    def tasks(self) -> Sequence[Task]:
        mimes = self.input_mimes()
        limits = {**self.image_limits.as_task_limits(), "meta_keys": ",".join(FACE_META_KEYS)}
        return [
            Task(
                TaskSpec(
                    "face_recognition",
                    mimes,
                    SCHEMA,
                    limits=limits,
                    aliases=("face_detect_and_embed",),
                    description="faces: box [x1,y1,x2,y2] in pixels, confidence, 5 landmarks, "
                    "L2-normalised embedding",
                ),
                self.recognise,
            ),
            Task(
                TaskSpec(
                    "face_detect",
                    mimes,
                    SCHEMA,
                    limits=limits,
                    description="faces: box [x1,y1,x2,y2] in pixels, confidence, 5 landmarks",
                ),
                self.detect,
            ),
        ]

    # ------------------------------------------------------------------ model

    resolve_folder = staticmethod(resolve_face_model)

    def build(self, files: FaceModelFiles, model: ModelSpec, open_file: SessionOpener) -> FacePipeline:
        fixed = model.runtime == "rknn"
        det_in, det_out = detector_signature(files)
        detector = open_file(files.detector, inputs=det_in, outputs=det_out)
        recogniser = None
        if files.recogniser is not None:
            rec_in, rec_out = recogniser_signature(files, fixed_batch=fixed)
            recogniser = open_file(files.recogniser, inputs=rec_in, outputs=rec_out)
        return build_face_pipeline(files, detector, recogniser)

    def facts(self, files: FaceModelFiles, pipeline: FacePipeline | None) -> dict[str, str]:
        facts = {"detector": files.family or "", "pack": files.pack}
        dim = pipeline.embedding_dim if pipeline is not None else files.embedding_dim
        if pipeline is not None:
            facts["detector"] = pipeline.family
        if dim:
            facts["embedding_dim"] = str(dim)
        facts["bbox"] = "x1,y1,x2,y2"
        return {k: v for k, v in facts.items() if v}

    # ------------------------------------------------------------------ handlers

    async def recognise(self, request: InferenceRequest, model: ModelLease) -> dict[str, Any]:
        return await self._faces(request, model, embed=True)

    async def detect(self, request: InferenceRequest, model: ModelLease) -> dict[str, Any]:
        return await self._faces(request, model, embed=False)

    async def _faces(self, request: InferenceRequest, model: ModelLease, *, embed: bool) -> dict[str, Any]:
        pipeline: FacePipeline = model.model.pipeline
        params = FaceParams.from_meta(request.meta, pipeline.default_params)  # bad meta fails fast
        image = await self.decode(request, model)
        run = pipeline.analyze if embed else pipeline.detect
        result = await model.run(run, image, params)
        return result.to_json()


def detector_signature(files: FaceModelFiles) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """The detector's inputs/outputs, for runtimes whose files carry no signature (RKNN, torch):
    a fixed square input of ``detector_input_size`` and the family's per-stride outputs. ONNX
    reads its own and ignores these."""
    size = files.detector_input_size
    inputs = (TensorInfo("input", (1, 3, size, size), "float32"),)
    outputs: list[TensorInfo] = []
    if files.family == "yunet":
        for kind, channels in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)):
            outputs += [
                TensorInfo(f"{kind}_{s}", (1, (size // s) ** 2, channels), "float32") for s in STRIDES
            ]
    else:  # SCRFD (the insightface packs): scores, boxes, landmarks per stride
        names = list(files.detector_output_names)
        for k, channels in enumerate((1, 4, 10)):
            for level, s in enumerate(STRIDES):
                index = k * len(STRIDES) + level
                name = names[index] if index < len(names) else f"scrfd_{channels}_{s}"
                outputs.append(TensorInfo(name, ((size // s) ** 2 * SCRFD_ANCHORS, channels), "float32"))
    return inputs, tuple(outputs)


def recogniser_signature(
    files: FaceModelFiles, *, fixed_batch: bool
) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    size = files.recogniser_spec.input_size
    batch: int | str = 1 if fixed_batch else "batch"
    return (
        (TensorInfo("input", (batch, 3, size, size), "float32"),),
        (TensorInfo("embedding", (batch, files.embedding_dim), "float32"),),
    )
