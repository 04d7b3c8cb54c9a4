"""The shared part of the image-pipeline services (``face``, ``ocr``): a model folder resolved to
weight files, sessions opened on the configured runtime, one pipeline, images decoded safely.

A subclass says how to resolve a folder (:meth:`PipelineService.resolve`, phase-1 resolvers)
and how to build its pipeline from sessions (:meth:`PipelineService.build`). This class does
the rest the same way for both:

* :meth:`check` — the runtime can run here (else FAILED for good, with the runtime's reason),
  the folder exists, resolves, and every chosen weight file is on disk (else FAILED naming the
  missing files; checked again on the next request, a download may finish meanwhile);
* :meth:`load` — sessions through :func:`services.runtimes.open_session` (or the injected
  factory) with the host's :class:`~services.runtimes.RuntimeOptions`; every session opened is
  closed again if building fails, and on unload;
* :meth:`decode` — the request payload through :func:`services.imaging.decode_rgb_array` in
  the preprocessing executor (formats, EXIF orientation, size bounds, raw RGB payloads).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from services.api import HostSettings, InferenceRequest, ModelSpec, ServiceSpec
from services.component_files import ComponentNotFound
from services.image_service import ImageService
from services.imaging import decode_rgb_array
from services.lifecycle import ModelLease
from services.model_info import ModelInfoError
from services.runtimes import RuntimeUnavailable, Session, TensorInfo, check_runtime
from services.service import ModelUnavailable


class ResolvedFiles(Protocol):
    """What a phase-1 resolver returns (``FaceModelFiles``, ``OcrModelFiles``)."""

    folder: Path
    precision: str

    def missing(self) -> list[str]: ...


F = TypeVar("F", bound=ResolvedFiles)


class SessionOpener(Protocol):
    def __call__(
        self, path: Path, *, inputs: Sequence[TensorInfo] = (), outputs: Sequence[TensorInfo] = ()
    ) -> Session: ...


@dataclass(eq=False)
class LoadedPipeline:
    """A loaded model: its pipeline and the sessions under it. ``runtime`` is the label of the
    first session (``onnxrt-cpu`` ...)."""

    pipeline: Any
    sessions: list[Session] = field(default_factory=list)
    runtime: str = ""

    def close(self) -> None:
        for session in self.sessions:
            session.close()
        self.sessions.clear()


class PipelineService(ImageService, Generic[F]):
    """Base of ``face`` and ``ocr``; see the module docstring."""

    def __init__(self, spec: ServiceSpec, settings: HostSettings, **options: Any) -> None:
        super().__init__(spec, settings, **options)  # session_factory, image_limits
        self._files: dict[str, F] = {}
        self._facts: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ for subclasses

    @staticmethod
    @abstractmethod
    def resolve_folder(
        folder: Path, *, precision: str | None, model_id: str, runtime: str, device: str | None
    ) -> F:
        """The phase-1 resolver (``resolve_face_model``, ``resolve_ocr_model``): the folder's
        files (raises FileNotFoundError, ModelInfoError, ValueError)."""

    def resolve(self, model: ModelSpec) -> F:
        return self.resolve_folder(
            model.path,
            precision=model.precision,
            model_id=self.model_id(model),
            runtime=model.runtime,
            device=model.rknn_device,
        )

    @abstractmethod
    def build(self, files: F, model: ModelSpec, open_file: SessionOpener) -> Any:
        """The pipeline over sessions opened with ``open_file`` (blocking)."""

    def supports_runtime(self, model: ModelSpec) -> None:
        """Raise :class:`ModelUnavailable` when this service cannot run ``model.runtime`` at all."""

    def facts(self, files: F, pipeline: Any | None) -> dict[str, str]:
        """Capability ``extra`` entries for a resolved model (``pipeline`` once it is loaded)."""
        return {}

    # ------------------------------------------------------------------ Service

    def check(self, model: ModelSpec) -> None:
        self.supports_runtime(model)  # first: "cannot run X on RKNN" whatever this machine is
        try:
            check_runtime(model.runtime, self.runtime_options(model))
        except RuntimeUnavailable as exc:
            raise ModelUnavailable(str(exc), retry=False) from None
        if not model.path.is_dir():
            raise ModelUnavailable(f"model folder {model.path} does not exist (download the model first)")
        try:
            files = self.resolve(model)
        except ComponentNotFound as exc:
            raise ModelUnavailable(str(exc), retry=not exc.listed) from None
        except FileNotFoundError as exc:
            raise ModelUnavailable(str(exc)) from None
        except (ModelInfoError, ValueError) as exc:
            raise ModelUnavailable(f"model {model.model!r}: {exc}", retry=False) from None
        missing = files.missing()
        if missing:
            raise ModelUnavailable(f"model folder {model.path} is missing {', '.join(missing)}")
        self._files[model.alias] = files
        self._facts.setdefault(model.alias, self.facts(files, None))

    def load(self, model: ModelSpec) -> LoadedPipeline:
        self.check(model)  # the folder may have changed since the last check
        files = self._files[model.alias]
        options = self.runtime_options(model)
        loaded = LoadedPipeline(None)

        def open_file(
            path: Path, *, inputs: Sequence[TensorInfo] = (), outputs: Sequence[TensorInfo] = ()
        ) -> Session:
            session = self._session_factory(path, model.runtime, options, inputs=inputs, outputs=outputs)
            loaded.sessions.append(session)
            return session

        try:
            loaded.pipeline = self.build(files, model, open_file)
        except BaseException:
            loaded.close()
            raise
        loaded.runtime = loaded.sessions[0].runtime if loaded.sessions else model.runtime
        self._facts[model.alias] = self.facts(files, loaded.pipeline)
        return loaded

    def precision(self, model: ModelSpec) -> str:
        files = self._files.get(model.alias)
        return files.precision if files is not None else (model.precision or "fp32")

    def extra(self) -> dict[str, str]:
        default = self.default_model()
        return dict(self._facts.get(default.alias, {})) if default is not None else {}

    # ------------------------------------------------------------------ handler helpers

    async def decode(self, request: InferenceRequest, model: ModelLease) -> np.ndarray:
        """The request's image as RGB ``uint8`` ``(H, W, 3)``, decoded in the prep executor."""
        return await model.offload(
            decode_rgb_array, request.payload, request.mime, self.image_limits, request.meta
        )
