"""The ``clip`` and ``bioclip`` services.

``clip``: ``semantic_text_embed`` (text/plain; alias ``clip_text_embed``) and
``semantic_image_embed`` (images; alias ``clip_image_embed``) → ``embedding_v1``, L2-normalised,
text and image with the same ``model_id`` and dim; ``clip_classify`` (images → ``labels_v1``)
when the default model has a dataset configured.

``bioclip``: ``bioclip_classify`` (images → ``labels_v1``, TreeOfLife labels as 8-slot paths)
against the configured dataset (else the model's only / first dataset). Only the vision
encoder is loaded. It never offers ``semantic_*`` (each task belongs to one service).

Top-k comes from ``meta.top_k`` or an alias (``TopK``, ``topK``, ``top-k``, ``lumen.top_k``),
default 5. Texts are embedded exactly as sent (no prompt rewriting); an empty text or one over
``max_text_chars`` (1024, service env ``MAX_TEXT_CHARS``) is invalid input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from services.api import HostSettings, InferenceRequest, InvalidInput, ModelSpec, ServiceSpec, TaskSpec
from services.clip.model import ClipModel, ModelPlan, plan_model
from services.image_service import ImageService
from services.lifecycle import ModelLease
from services.meta import top_k
from services.runtimes import RuntimeUnavailable, check_runtime
from services.service import ModelUnavailable, Task

TEXT_MIMES: tuple[str, ...] = ("text/plain",)
DEFAULT_MAX_TEXT_CHARS = 1024
DEFAULT_TOP_K = 5
MAX_TOP_K = 1000


class ClipService(ImageService):
    name = "clip"
    needs_text = True

    def __init__(self, spec: ServiceSpec, settings: HostSettings, **options: Any) -> None:
        super().__init__(spec, settings, **options)  # session_factory, image_limits
        self.max_text_chars = _positive_int(spec.env.get("MAX_TEXT_CHARS"), DEFAULT_MAX_TEXT_CHARS)
        self._plans: dict[str, ModelPlan] = {}

    # ------------------------------------------------------------------ declarations

    def dataset_name(self, model: ModelSpec) -> str | None:
        return model.dataset

    def tasks(self) -> Sequence[Task]:
        images = self.input_mimes()
        limits = self.image_limits.as_task_limits()
        tasks = [
            Task(
                TaskSpec(
                    "semantic_text_embed",
                    TEXT_MIMES,
                    "embedding_v1",
                    limits={"max_text_chars": str(self.max_text_chars)},
                    aliases=("clip_text_embed",),
                    description="text → L2-normalised embedding (same space as semantic_image_embed)",
                ),
                self.embed_text,
            ),
            Task(
                TaskSpec(
                    "semantic_image_embed",
                    images,
                    "embedding_v1",
                    limits=limits,
                    aliases=("clip_image_embed",),
                    description="image → L2-normalised embedding (same space as semantic_text_embed)",
                ),
                self.embed_image,
            ),
        ]
        default = self.default_model()
        if default is not None and self.dataset_name(default):
            tasks.append(self._classify_task("clip_classify", images, limits))
        return tasks

    def _classify_task(self, name: str, images: tuple[str, ...], limits: dict[str, str]) -> Task:
        return Task(
            TaskSpec(
                name,
                images,
                "labels_v1",
                limits={**limits, "max_top_k": str(MAX_TOP_K)},
                description="image → top-k labels of the configured dataset, scores descending",
            ),
            self.classify,
        )

    # ------------------------------------------------------------------ model lifecycle

    def check(self, model: ModelSpec) -> None:
        try:
            check_runtime(model.runtime, self.runtime_options(model))
        except RuntimeUnavailable as exc:
            raise ModelUnavailable(str(exc), retry=False) from None
        self._plans[model.alias] = plan_model(
            model.path,
            model.runtime,
            precision=model.precision,
            device=model.rknn_device,
            need_text=self.needs_text,
            dataset=self.dataset_name(model),
        )

    def load(self, model: ModelSpec) -> ClipModel:
        self.check(model)  # the folder may have changed since the last check
        return ClipModel(
            self._plans[model.alias],
            self.runtime_options(model),
            session_factory=self._session_factory,
            image_limits=self.image_limits,
        )

    def precision(self, model: ModelSpec) -> str:
        plan = self._plans.get(model.alias)
        return plan.precision if plan is not None else (model.precision or "fp32")

    def extra(self) -> dict[str, str]:
        default = self.default_model()
        plan = self._plans.get(default.alias) if default is not None else None
        if plan is None:
            return {}
        extra = {"image_size": f"{plan.config.preprocess.width}x{plan.config.preprocess.height}"}
        if plan.info.embedding_dim or plan.config.embed_dim:
            extra["embedding_dim"] = str(plan.info.embedding_dim or plan.config.embed_dim)
        if plan.dataset is not None:
            extra["dataset"] = plan.dataset.name
        return extra

    # ------------------------------------------------------------------ handlers

    async def embed_text(self, request: InferenceRequest, model: ModelLease) -> dict[str, Any]:
        text = self._text(request)
        clip: ClipModel = model.model
        if clip.text is None:
            raise InvalidInput(f"model {model.model_id} has no text encoder")
        vector = await model.batched("text", clip.encode_texts, text)
        return _embedding(vector, model.model_id)

    async def embed_image(self, request: InferenceRequest, model: ModelLease) -> dict[str, Any]:
        vector = await self._image_vector(request, model)
        return _embedding(vector, model.model_id)

    async def classify(self, request: InferenceRequest, model: ModelLease) -> dict[str, Any]:
        k = top_k(request.meta, DEFAULT_TOP_K, high=MAX_TOP_K)
        clip: ClipModel = model.model
        if clip.labels is None:
            raise InvalidInput(f"model {model.model_id} has no dataset configured; classification needs one")
        vector = await self._image_vector(request, model)
        ranked = await model.run(clip.classify, vector, k)
        return {
            "labels": [{"label": label, "score": score} for label, score in ranked],
            "model_id": model.model_id,
        }

    async def _image_vector(self, request: InferenceRequest, model: ModelLease) -> np.ndarray:
        clip: ClipModel = model.model
        tensor = await model.offload(clip.prepare_image, request.payload, request.mime, request.meta)
        return await model.batched("vision", clip.encode_images, tensor)

    def _text(self, request: InferenceRequest) -> str:
        limit = self.max_text_chars
        if len(request.payload) > limit * 4:
            raise InvalidInput(
                f"the text is {len(request.payload)} bytes; at most {limit} characters are accepted"
            )
        try:
            text = request.payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"the text is not valid UTF-8 (byte {exc.start}); send UTF-8 text/plain"
            ) from None
        text = text.strip()
        if not text:
            raise InvalidInput(f"the text is empty; send 1 to {limit} characters of text/plain")
        if len(text) > limit:
            raise InvalidInput(f"the text is {len(text)} characters long; at most {limit} are accepted")
        return text


class BioclipService(ClipService):
    name = "bioclip"
    needs_text = False

    def dataset_name(self, model: ModelSpec) -> str | None:
        if model.dataset:
            return model.dataset
        plan = self._plans.get(model.alias)
        if plan is not None and plan.info.datasets:
            return next(iter(plan.info.datasets))
        return _first_dataset(model)

    def tasks(self) -> Sequence[Task]:
        images = self.input_mimes()
        return [self._classify_task("bioclip_classify", images, self.image_limits.as_task_limits())]

    def check(self, model: ModelSpec) -> None:
        super().check(model)
        if self._plans[model.alias].dataset is None:
            raise ModelUnavailable(
                f"bioclip model {model.model!r} has no dataset: set 'dataset' for it in the config "
                "(e.g. TreeOfLife-200M) and make sure the model folder has it",
                retry=False,
            )


def _first_dataset(model: ModelSpec) -> str | None:
    from services.model_info import ModelInfoError, load_model_info

    try:
        info = load_model_info(model.path)
    except ModelInfoError:
        return None
    return next(iter(info.datasets), None)


def _embedding(vector: np.ndarray, model_id: str) -> dict[str, Any]:
    values = np.asarray(vector, dtype=np.float32).reshape(-1)
    return {"vector": values.tolist(), "dim": int(values.shape[0]), "model_id": model_id}


def _positive_int(value: str | None, default: int) -> int:
    try:
        parsed = int(str(value).strip()) if value is not None else default
    except ValueError:
        return default
    return parsed if parsed > 0 else default
