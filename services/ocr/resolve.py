"""Which OCR model a folder holds, and building its pipeline.

Layout (PP-OCR; see docs/face_ocr.md)::

    <folder>/model_info.json              optional
    <folder>/onnx/detection[.<p>].onnx    text detector (DB)
    <folder>/onnx/recognition[.<p>].onnx  text-line recogniser (CTC)
    <folder>/onnx/classification[.<p>].onnx   optional 0°/180° direction classifier
    <folder>/<dictionary>.txt             one symbol per line, unless the recogniser's ONNX
                                          metadata carries it (``character``)

Immich's ``detection/model.onnx`` … and RapidOCR's file names (``*_det_*.onnx``, ``*_rec_*.onnx``,
``*_cls_*.onnx``) are accepted too. The dictionary file is, in order: the name in
``task_metadata.tasks.ocr.recognition.character_dict_path`` (Lumen-Hub) or
``task_metadata.rec_config.character_dict_path`` (Python Lumen), looked up in the folder, its
``onnx/`` and ``recognition/``; else one of ``ppocr_keys_v1.txt``, ``ppocrv5_dict.txt``,
``charset.txt`` there. Thresholds in ``task_metadata.tasks.ocr.{detection, recognition,
classification}`` (or ``det_config`` / ``rec_config``) become the model's default parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from services.component_files import (
    ComponentFile,
    ComponentNotFound,
    WeightCandidates,
    candidate_files,
    find_component,
    missing_files,
)
from services.model_info import ModelInfo, ModelInfoError, WeightFile, load_model_info, per_channel
from services.ocr.dictionary import CharDictionary, DictionaryError
from services.ocr.params import OcrParams
from services.ocr.pipeline import OcrPipeline, dictionary_from_session
from services.runtimes.base import Session
from services.runtimes.onnx import open_onnx

DET_NAMES = ("detection", "det")
REC_NAMES = ("recognition", "rec")
CLS_NAMES = ("classification", "cls", "textline_orientation")
DICT_NAMES = ("ppocr_keys_v1.txt", "ppocrv5_dict.txt", "charset.txt", "dict.txt")
DEFAULT_DET_NORM = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

SessionOpener = Callable[[Path], Session]


@dataclass(frozen=True)
class OcrModelFiles:
    folder: Path
    model_id: str
    detector: Path
    recogniser: Path
    classifier: Path | None
    dictionary: Path | None  # None = the recogniser's metadata must carry it
    dictionary_names: tuple[str, ...] = DICT_NAMES  # the file names looked for (for errors)
    default_params: OcrParams = OcrParams()
    det_mean: tuple[float, float, float] = DEFAULT_DET_NORM[0]
    det_std: tuple[float, float, float] = DEFAULT_DET_NORM[1]
    precision: str = "fp32"  # of the detector file

    def missing(self) -> list[str]:
        """The chosen weight files not on disk (yet), relative to the folder. A dictionary that
        is absent is not listed: the recogniser's metadata may carry it (checked on load)."""
        return missing_files(self.folder, (self.detector, self.recogniser, self.classifier))


def resolve_ocr_model(
    folder: Path,
    *,
    precision: str | None = None,
    model_id: str | None = None,
    use_classifier: bool = True,
    runtime: str = "onnx",
    device: str | None = None,
) -> OcrModelFiles:
    """Resolve ``folder`` for ``runtime`` (``device``: the RKNN SoC); weight files are chosen as
    :mod:`services.component_files` says (a chosen file may still be absent:
    :meth:`OcrModelFiles.missing`). Raises FileNotFoundError / ComponentNotFound, ModelInfoError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"OCR model folder not found: {folder}")
    info = load_model_info(folder) if (folder / "model_info.json").is_file() else None
    det_cfg, rec_cfg, cls_cfg = _configs(info)
    found = candidate_files(folder, runtime, info, device=device)
    detector = _component(folder, DET_NAMES, "det", precision, found, runtime, required=True)
    recogniser = _component(folder, REC_NAMES, "rec", precision, found, runtime, required=True)
    classifier = (
        _component(folder, CLS_NAMES, "cls", precision, found, runtime, required=False)
        if use_classifier
        else None
    )
    assert detector is not None and recogniser is not None
    dictionary_names = _dictionary_names(rec_cfg)
    dictionary = _dictionary(folder, dictionary_names)
    mean, std = DEFAULT_DET_NORM
    if "mean" in det_cfg or "std" in det_cfg:
        mean = _triple(det_cfg.get("mean", mean), "detection.mean")
        std = _triple(det_cfg.get("std", std), "detection.std")
    return OcrModelFiles(
        folder=folder,
        model_id=model_id or (info.name if info else folder.name),
        detector=detector.path,
        recogniser=recogniser.path,
        classifier=classifier.path if classifier else None,
        dictionary=dictionary,
        dictionary_names=dictionary_names,
        default_params=_params(det_cfg, rec_cfg, cls_cfg),
        det_mean=mean,
        det_std=std,
        precision=detector.precision,
    )


def build_ocr_pipeline(
    files: OcrModelFiles, det_session: Session, rec_session: Session, cls_session: Session | None = None
) -> OcrPipeline:
    """The pipeline over sessions opened (by whatever runtime) for the resolved files. The
    dictionary file is read only when the recogniser's metadata does not carry one."""
    dictionary = dictionary_from_session(rec_session)
    if dictionary is None and files.dictionary is not None:
        dictionary = CharDictionary.from_file(files.dictionary)
    if dictionary is None:
        raise DictionaryError(_no_dictionary(files))
    return OcrPipeline(
        det_session,
        rec_session,
        cls_session,
        dictionary=dictionary,
        model_id=files.model_id,
        det_mean=files.det_mean,
        det_std=files.det_std,
        default_params=files.default_params,
    )


def open_ocr_pipeline(
    folder: Path,
    *,
    precision: str | None = None,
    use_classifier: bool = True,
    open_session: SessionOpener | None = None,
) -> OcrPipeline:
    files = resolve_ocr_model(folder, precision=precision, use_classifier=use_classifier)
    opener = open_session or open_onnx
    cls = opener(files.classifier) if files.classifier else None
    return build_ocr_pipeline(files, opener(files.detector), opener(files.recogniser), cls)


def _component(
    folder: Path,
    names: tuple[str, ...],
    token: str,
    precision: str | None,
    candidates: WeightCandidates,
    runtime: str,
    *,
    required: bool,
) -> ComponentFile | None:
    chosen = find_component(
        folder, names, runtime=runtime, precision=precision, candidates=candidates, required=False
    )
    if chosen is not None:
        return chosen
    if runtime != "onnx":
        if required:
            find_component(folder, names, runtime=runtime, precision=precision, candidates=candidates)
        return None
    # RapidOCR / PaddleOCR file names: ch_PP-OCRv4_det_infer.onnx, ch_ppocr_mobile_v2.0_cls_infer.onnx
    pattern = re.compile(rf"(^|[_.\-]){token}([_.\-]|$)", re.IGNORECASE)
    loose = sorted(
        p for d in (folder, folder / "onnx") if d.is_dir() for p in d.glob("*.onnx") if pattern.search(p.stem)
    )
    if len(loose) == 1:
        relpath = loose[0].relative_to(folder).as_posix()
        parsed = WeightFile.parse(relpath)
        return ComponentFile(loose[0], relpath, parsed.component, parsed.effective_precision, False)
    if len(loose) > 1:
        raise ComponentNotFound(f"{folder}: several {token} models, cannot choose: {[p.name for p in loose]}")
    if required:  # raises, naming the files seen
        find_component(folder, names, runtime=runtime, precision=precision, candidates=candidates)
    return None


def _configs(info: ModelInfo | None) -> tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
    if info is None:
        return {}, {}, {}
    meta = info.task_metadata
    tasks = meta.get("tasks", {})
    block = tasks.get("ocr", {}) if isinstance(tasks, Mapping) else {}
    if not isinstance(block, Mapping):
        raise ModelInfoError("must be an object", field_path="task_metadata.tasks.ocr")

    def pick(hub_key: str, py_key: str) -> Mapping[str, Any]:
        value = block.get(hub_key, meta.get(py_key, {}))
        if not isinstance(value, Mapping):
            raise ModelInfoError("must be an object", field_path=f"task_metadata.tasks.ocr.{hub_key}")
        return value

    return (
        pick("detection", "det_config"),
        pick("recognition", "rec_config"),
        pick("classification", "cls_config"),
    )


def _params(det: Mapping[str, Any], rec: Mapping[str, Any], cls: Mapping[str, Any]) -> OcrParams:
    mapping = {
        "det_threshold": (det, ("thresh", "det_db_thresh")),
        "box_threshold": (det, ("box_thresh", "det_db_box_thresh")),
        "unclip_ratio": (det, ("unclip_ratio", "det_db_unclip_ratio")),
        "min_box_size": (det, ("min_size",)),
        "limit_side_len": (det, ("limit_side_len",)),
        "rec_threshold": (rec, ("score_threshold", "drop_score", "rec_threshold")),
        "cls_threshold": (cls, ("thresh", "cls_thresh")),
    }
    values: dict[str, Any] = {}
    for field_name, (cfg, keys) in mapping.items():
        for key in keys:
            if key in cfg:
                raw = cfg[key]
                if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                    raise ModelInfoError(
                        f"must be a number (got {raw!r})", field_path=f"task_metadata.tasks.ocr.*.{key}"
                    )
                values[field_name] = int(raw) if field_name == "limit_side_len" else float(raw)
                break
    limit_type = det.get("limit_type")
    if isinstance(limit_type, str) and limit_type.lower() in ("max", "min"):
        values["limit_type"] = limit_type.lower()
    return replace(OcrParams(), **values)


DICT_PLACES = ("", "onnx/", "recognition/")  # where in the folder a dictionary file may be
DICT_CONFIG_KEY = "task_metadata.tasks.ocr.recognition.character_dict_path"


def _dictionary_names(rec_cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """The dictionary file names to look for: the configured one first, then the usual ones."""
    named = rec_cfg.get("character_dict_path")
    names = [str(named)] if isinstance(named, str) and named.strip() else []
    return tuple(names + [n for n in DICT_NAMES if n not in names])


def _dictionary(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The dictionary file, or None (then the recogniser's metadata must carry it)."""
    for name in names:
        base = Path(name).name
        for candidate in (folder / name, *(folder / place / base for place in DICT_PLACES)):
            if candidate.is_file():
                return candidate
    return None


def _no_dictionary(files: OcrModelFiles) -> str:
    places = ", ".join(f"{place or './'}" for place in DICT_PLACES)
    return (
        f"no character dictionary for the OCR model in {files.folder}: its recogniser "
        f"{files.recogniser.name} has no 'character' metadata and none of "
        f"{', '.join(files.dictionary_names)} is in the folder ({places}); put the model's "
        f"dictionary file there, or name it in model_info.json at {DICT_CONFIG_KEY}"
    )


def _triple(value: Any, path: str) -> tuple[float, float, float]:
    triple = per_channel(value)
    if triple is not None:
        return triple
    raise ModelInfoError(
        f"must be a number or 3 numbers (got {value!r})", field_path=f"task_metadata.tasks.ocr.{path}"
    )
