"""Which face model a folder holds, and building its pipeline.

Layouts accepted (see docs/face_ocr.md):

* insightface packs (antelopev2, buffalo_l …) as Lumen / Lumen-Hub ship them:
  ``onnx/detection[.<precision>].onnx`` (SCRFD) + ``onnx/recognition[.<precision>].onnx`` (ArcFace),
  ``model_info.json`` optional; Immich's ``detection/model.onnx`` + ``recognition/model.onnx`` too.
* any other detector/recogniser pair with a ``model_info.json`` whose
  ``task_metadata.tasks.face_recognition`` block names them, e.g. the YuNet + MobileFaceNet test
  model::

      "task_metadata": {"tasks": {"face_recognition": {
          "detection": {"family": "yunet"},
          "recognition": {"preset": "mobilefacenet"}}}}

Block keys: ``pack`` (an insightface pack name ⇒ SCRFD + ArcFace), ``detection.{component,
family (scrfd|yunet), input_size, output_names}``, ``recognition.{component, preset
(arcface|mobilefacenet), color_order, scale, mean, std, input_size}``. The blocks of
``face_detect`` / ``face_detect_and_embed`` are read when ``face_recognition`` is absent.

Family order of precedence: the explicit argument, then ``detection.family``, then an insightface
``pack`` (or model name) ⇒ SCRFD, else it is read from the graph's outputs when the detector loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.component_files import candidate_files, find_component, missing_files
from services.face.detection import DEFAULT_INPUT_SIZE
from services.face.detectors import make_detector, normalise_family
from services.face.pipeline import FacePipeline
from services.face.recognition import ARCFACE_SPEC, FaceRecogniser, RecogniserSpec
from services.face.recognition import recogniser_preset as preset_spec
from services.model_info import ModelInfo, ModelInfoError, load_model_info
from services.runtimes.base import Session
from services.runtimes.onnx import open_onnx

FACE_TASK_KEYS: tuple[str, ...] = ("face_recognition", "face_detect_and_embed", "face_detect")
INSIGHTFACE_PACKS: frozenset[str] = frozenset(
    {"antelopev2", "buffalo_l", "buffalo_m", "buffalo_s", "buffalo_sc"}
)
DETECTION_COMPONENT = "detection"
RECOGNITION_COMPONENT = "recognition"

SessionOpener = Callable[[Path], Session]


@dataclass(frozen=True)
class FaceModelFiles:
    """A resolved face model folder: which files, which detector family, which preprocessing."""

    folder: Path
    model_id: str
    detector: Path
    recogniser: Path | None  # None = detection only
    family: str | None  # "scrfd" | "yunet"; None = read from the graph when it loads
    recogniser_spec: RecogniserSpec = ARCFACE_SPEC
    detector_input_size: int = DEFAULT_INPUT_SIZE
    detector_output_names: tuple[str, ...] = ()
    pack: str = ""
    precision: str = "fp32"  # of the detector file
    embedding_dim: int | None = None  # as model_info.json states it (the graph decides)

    def missing(self) -> list[str]:
        """The chosen weight files not on disk (yet), relative to the folder."""
        return missing_files(self.folder, (self.detector, self.recogniser))


def resolve_face_model(
    folder: Path,
    *,
    family: str | None = None,
    recogniser_preset: str | None = None,
    precision: str | None = None,
    model_id: str | None = None,
    runtime: str = "onnx",
    device: str | None = None,
) -> FaceModelFiles:
    """Resolve ``folder`` for ``runtime`` (``device``: the RKNN SoC). ``family`` /
    ``recogniser_preset`` override what the folder says. Files are chosen as
    :mod:`services.component_files` says; a chosen file may still be absent
    (:meth:`FaceModelFiles.missing`). Raises FileNotFoundError (no folder, no detector file:
    :class:`~services.component_files.ComponentNotFound`), ModelInfoError or ValueError (bad names)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"face model folder not found: {folder}")
    info = load_model_info(folder) if (folder / "model_info.json").is_file() else None
    block = _task_block(info)
    det_block = _sub(block, "detection")
    rec_block = _sub(block, "recognition")
    pack = str(block.get("pack") or "").strip().lower()
    name = info.name if info else folder.name
    if not pack and name.lower() in INSIGHTFACE_PACKS:
        pack = name.lower()

    chosen = family or det_block.get("family") or ("scrfd" if pack else None)
    chosen_family = normalise_family(str(chosen)) if chosen else None

    spec = preset_spec(recogniser_preset or str(rec_block.get("preset") or "arcface"))
    try:
        spec = spec.with_overrides(rec_block)
    except (TypeError, ValueError) as exc:
        raise ModelInfoError(
            f"bad recognition preprocessing: {exc}", field_path=_path("recognition"), source=str(folder)
        ) from None

    det_component = str(det_block.get("component") or DETECTION_COMPONENT)
    rec_component = str(rec_block.get("component") or RECOGNITION_COMPONENT)
    candidates = candidate_files(folder, runtime, info, device=device)
    detector = find_component(
        folder, det_component, runtime=runtime, precision=precision, candidates=candidates
    )
    rec_file = find_component(
        folder, rec_component, runtime=runtime, precision=precision, candidates=candidates, required=False
    )
    assert detector is not None

    input_size = det_block.get("input_size", DEFAULT_INPUT_SIZE)
    if isinstance(input_size, list) and input_size:
        input_size = max(input_size)
    if not isinstance(input_size, int) or isinstance(input_size, bool) or input_size < 32:
        raise ModelInfoError(
            f"must be a whole number of pixels >= 32 (got {input_size!r})",
            field_path=_path("detection.input_size"),
            source=str(folder),
        )
    names = det_block.get("output_names") or ()
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ModelInfoError(
            f"must be a list of output names (got {names!r})",
            field_path=_path("detection.output_names"),
            source=str(folder),
        )
    return FaceModelFiles(
        folder=folder,
        model_id=model_id or name,
        detector=detector.path,
        recogniser=rec_file.path if rec_file else None,
        family=chosen_family,
        recogniser_spec=spec,
        detector_input_size=input_size,
        detector_output_names=tuple(names),
        pack=pack,
        precision=detector.precision,
        embedding_dim=info.embedding_dim if info else None,
    )


def build_face_pipeline(
    files: FaceModelFiles, detector_session: Session, recogniser_session: Session | None = None
) -> FacePipeline:
    """The pipeline over sessions opened (by whatever runtime) for ``files.detector`` /
    ``files.recogniser``."""
    detector = make_detector(
        detector_session,
        files.family,
        input_size=files.detector_input_size,
        output_names=files.detector_output_names or None,
    )
    recogniser = FaceRecogniser(recogniser_session, files.recogniser_spec) if recogniser_session else None
    return FacePipeline(detector, recogniser, model_id=files.model_id)


def open_face_pipeline(
    folder: Path,
    *,
    family: str | None = None,
    recogniser_preset: str | None = None,
    precision: str | None = None,
    open_session: SessionOpener | None = None,
) -> FacePipeline:
    """Resolve ``folder`` and open its sessions (onnxruntime by default)."""
    files = resolve_face_model(
        folder, family=family, recogniser_preset=recogniser_preset, precision=precision
    )
    opener = open_session or open_onnx
    det = opener(files.detector)
    rec = opener(files.recogniser) if files.recogniser else None
    return build_face_pipeline(files, det, rec)


def _task_block(info: ModelInfo | None) -> Mapping[str, Any]:
    if info is None:
        return {}
    tasks = info.task_metadata.get("tasks", {})
    if not isinstance(tasks, Mapping):
        raise ModelInfoError("must be an object", field_path="task_metadata.tasks")
    for key in FACE_TASK_KEYS:
        block = tasks.get(key)
        if block is not None:
            if not isinstance(block, Mapping):
                raise ModelInfoError("must be an object", field_path=f"task_metadata.tasks.{key}")
            return block
    return {}


def _sub(block: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = block.get(key, {})
    if not isinstance(value, Mapping):
        raise ModelInfoError(f"must be an object (got {value!r})", field_path=_path(key))
    return value


def _path(key: str) -> str:
    return f"task_metadata.tasks.face_recognition.{key}"
