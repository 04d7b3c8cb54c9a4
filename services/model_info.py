"""``model_info.json``: the manifest of a model repository, in every dialect users download.

Three shapes exist (see ``MODEL_FORMATS.md``): the seed form (``runtimes.<rt>.files`` lists,
``datasets`` mapping a name to one file), the Python-Lumen form (``datasets.<name>`` =
``{labels, embeddings}``, ``extra_metadata``) and the Lumen-Hub form (``runtimes.<rt>`` =
``{available, components, precisions}``, ``task_metadata``). One lenient parser reads them all
into :class:`ModelInfo`: unknown keys are ignored, known keys are type-checked, and every
error names the field (``runtimes.onnx.files[2]``) and what is allowed.

:func:`select_runtime_files` answers "which weight files does this runtime / precision / RKNN
device need", for the downloader (what to fetch) and the services (what to load).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

RUNTIME_NAMES: tuple[str, ...] = ("onnx", "torch", "rknn")
WEIGHT_EXTENSIONS: dict[str, str] = {"onnx": ".onnx", "torch": ".pt", "rknn": ".rknn"}
# Precision spellings that load another file (``fp16q8`` is an in-memory step of Lumen-Hub).
PRECISION_ALIASES: dict[str, str] = {"fp16q8": "fp16", "float32": "fp32", "float16": "fp16"}
DEFAULT_PRECISION_ORDER: tuple[str, ...] = ("fp32", "fp16", "int8", "q4fp16")
MAX_MODEL_INFO_BYTES = 1024 * 1024

_PRECISION_RE = re.compile(r"^(fp\d+|int\d+|uint\d+|q\d+\w*|bf16|fp16q8)$")


class ModelInfoError(ValueError):
    """``model_info.json`` is unusable, or does not offer what was asked for."""

    def __init__(self, message: str, *, field_path: str = "", source: str = "model_info.json") -> None:
        where = f"{source}: {field_path}: " if field_path else f"{source}: "
        super().__init__(where + message)
        self.field_path = field_path
        self.source = source
        self.reason = message


@dataclass(frozen=True)
class WeightFile:
    """One weight file: ``onnx/vision.fp16.onnx`` → component ``vision``, precision ``fp16``.

    ``precision`` is None when the name carries none (``onnx/text.onnx``, taken as fp32)."""

    path: str
    component: str
    precision: str | None

    @classmethod
    def parse(cls, path: str) -> WeightFile:
        name = PurePosixPath(path).name
        stem = name.rsplit(".", 1)[0] if "." in name else name
        parts = stem.split(".")
        if len(parts) >= 2 and _PRECISION_RE.match(parts[-1].lower()):
            return cls(path, ".".join(parts[:-1]), parts[-1].lower())
        return cls(path, stem, None)

    @property
    def effective_precision(self) -> str:
        return self.precision or "fp32"


@dataclass(frozen=True)
class RuntimeInfo:
    """What a repository offers for one runtime."""

    name: str
    available: bool
    files: tuple[str, ...] = ()  # onnx / torch: every weight file listed (or derived)
    device_files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # rknn: per SoC
    devices: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ()

    def all_files(self) -> tuple[str, ...]:
        seen = dict.fromkeys(self.files)
        for paths in self.device_files.values():
            seen.update(dict.fromkeys(paths))
        return tuple(seen)

    def offered_precisions(self, device: str | None = None) -> tuple[str, ...]:
        files = self.device_files.get(device or "", ()) if self.name == "rknn" else self.files
        found = [WeightFile.parse(p).effective_precision for p in files]
        return tuple(dict.fromkeys(found)) or self.precisions


@dataclass(frozen=True)
class DatasetInfo:
    """A label set for classification: one file (seed ``.npz``) or ``labels`` + ``embeddings``."""

    name: str
    files: tuple[str, ...]
    labels: str | None = None
    embeddings: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str = ""
    description: str = ""
    model_type: str = ""
    embedding_dim: int | None = None
    source_format: str = ""
    source_repo: str = ""
    runtimes: Mapping[str, RuntimeInfo] = field(default_factory=dict)
    datasets: Mapping[str, DatasetInfo] = field(default_factory=dict)
    task_metadata: Mapping[str, Any] = field(default_factory=dict)  # task_metadata ∪ extra_metadata
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def available_runtimes(self) -> tuple[str, ...]:
        return tuple(name for name, rt in self.runtimes.items() if rt.available)

    def runtime(self, name: str) -> RuntimeInfo:
        """The runtime ``name``, or a :class:`ModelInfoError` listing what the repo offers."""
        info = self.runtimes.get(name)
        if info is None or not info.available:
            offered = ", ".join(self.available_runtimes()) or "none"
            raise ModelInfoError(
                f"model {self.name!r} does not offer runtime {name!r}; it offers: {offered}",
                field_path=f"runtimes.{name}",
            )
        return info

    def dataset(self, name: str) -> DatasetInfo:
        """The dataset ``name`` (``TreeOfLife-200M`` and ``TreeOfLife200M`` are the same)."""
        if name in self.datasets:
            return self.datasets[name]
        wanted = _dataset_key(name)
        for key, info in self.datasets.items():
            if _dataset_key(key) == wanted:
                return info
        offered = ", ".join(self.datasets) or "none"
        raise ModelInfoError(
            f"model {self.name!r} has no dataset {name!r}; it has: {offered}", field_path="datasets"
        )


def normalise_precision(precision: str | None) -> str | None:
    if precision is None:
        return None
    lowered = precision.strip().lower()
    return PRECISION_ALIASES.get(lowered, lowered)


def runtime_files(info: ModelInfo, runtime: str, *, device: str | None = None) -> tuple[str, ...]:
    """Every weight file ``model_info.json`` lists for ``runtime`` (for RKNN: for ``device``), any
    precision. Raises :class:`ModelInfoError` naming what the repository offers instead."""
    rt = info.runtime(runtime)
    if runtime == "rknn":
        if not device:
            raise ModelInfoError(
                "runtime 'rknn' needs an rknn_device; this model offers: "
                + (", ".join(rt.device_files or rt.devices) or "no devices"),
                field_path="runtimes.rknn.files",
            )
        files = rt.device_files.get(device.lower(), ())
        if not files:
            offered = ", ".join(rt.device_files) or ", ".join(rt.devices) or "none"
            raise ModelInfoError(
                f"model {info.name!r} has no RKNN files for {device!r}; devices offered: {offered}",
                field_path="runtimes.rknn.files",
            )
        return files
    if not rt.files:
        raise ModelInfoError(
            f"model {info.name!r} lists no files for runtime {runtime!r}", field_path=f"runtimes.{runtime}"
        )
    return rt.files


def select_runtime_files(
    info: ModelInfo, runtime: str, *, precision: str | None = None, device: str | None = None
) -> list[str]:
    """The weight files ``runtime`` needs: one file per component at ``precision`` (None = the
    best offered: fp32, then fp16, ...), only for ``device`` when the runtime is RKNN.

    Raises :class:`ModelInfoError` naming what the repository offers instead."""
    files = runtime_files(info, runtime, device=device)
    wanted = normalise_precision(precision)
    return _pick_precision(info.name, runtime, [WeightFile.parse(p) for p in files], wanted)


# Files a runtime needs besides its weights: tokenizers, configs, vocabularies, OCR dictionaries
# (MODEL_FORMATS.md 1.1 and 8). Weight and dataset formats are never "support" files.
SUPPORT_FILE_SUFFIXES: tuple[str, ...] = (".json", ".txt", ".model", ".vocab", ".yaml", ".yml", ".tiktoken")
NOT_SUPPORT_FILES: frozenset[str] = frozenset({".gitattributes", ".gitignore"})


def support_files(info: ModelInfo, repo_paths: Iterable[str], weight_files: Iterable[str]) -> list[str]:
    """The non-weight files to fetch with ``weight_files``: every file with a support suffix
    (:data:`SUPPORT_FILE_SUFFIXES`) at the repository root or in the folder of a chosen weight
    file. Files that belong to a dataset of ``info`` are left out (a dataset is fetched only when
    it is configured), and so is ``model_info.json`` itself. Result in ``repo_paths`` order."""
    folders = {str(PurePosixPath(p).parent) for p in weight_files} | {"."}
    dataset_files = {f for ds in info.datasets.values() for f in ds.files}
    chosen: list[str] = []
    for path in repo_paths:
        pure = PurePosixPath(path)
        if (
            str(pure.parent) in folders
            and pure.suffix.lower() in SUPPORT_FILE_SUFFIXES
            and pure.name not in NOT_SUPPORT_FILES
            and path != "model_info.json"
            and path not in dataset_files
        ):
            chosen.append(path)
    return chosen


def _pick_precision(model: str, runtime: str, files: list[WeightFile], wanted: str | None) -> list[str]:
    by_component: dict[str, list[WeightFile]] = {}
    for wf in files:
        by_component.setdefault(wf.component, []).append(wf)
    chosen: list[str] = []
    for component, candidates in by_component.items():
        offered = [c.effective_precision for c in candidates]
        if wanted is not None:
            match = [c for c in candidates if c.effective_precision == wanted]
            if not match:
                raise ModelInfoError(
                    f"model {model!r} has no {wanted} {runtime} file for {component!r}; "
                    f"precisions offered: {', '.join(dict.fromkeys(offered))}",
                    field_path=f"runtimes.{runtime}.files",
                )
            chosen.append(match[0].path)
            continue
        ranked = sorted(candidates, key=lambda c: precision_rank(c.effective_precision))
        chosen.append(ranked[0].path)
    return chosen


def per_channel(value: Any) -> tuple[float, float, float] | None:
    """A per-channel value as model configs write it (mean, std): one number for all three
    channels or a list of three; None when it is neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),) * 3  # type: ignore[return-value]
    if (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return float(value[0]), float(value[1]), float(value[2])
    return None


def precision_rank(precision: str) -> int:
    """Position of ``precision`` in :data:`DEFAULT_PRECISION_ORDER` (unknown ones last)."""
    try:
        return DEFAULT_PRECISION_ORDER.index(precision)
    except ValueError:
        return len(DEFAULT_PRECISION_ORDER)


def _dataset_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def load_model_info(path: Path) -> ModelInfo:
    """Read and parse ``path`` (a ``model_info.json`` file, or a model folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model_info.json"
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_INFO_BYTES:
            raise ModelInfoError(
                f"file is {size} bytes; at most {MAX_MODEL_INFO_BYTES} allowed", source=source
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelInfoError("file not found", source=source) from None
    except OSError as exc:
        raise ModelInfoError(
            f"cannot read it ({exc.strerror or exc}); it must be a readable file", source=source
        ) from exc
    return parse_model_info_bytes(raw, source=source)


def parse_model_info_bytes(raw: bytes, *, source: str = "model_info.json") -> ModelInfo:
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ModelInfoError("not UTF-8 text", source=source) from None
    except json.JSONDecodeError as exc:
        raise ModelInfoError(
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", source=source
        ) from None
    return parse_model_info(data, source=source)


def parse_model_info(data: Any, *, source: str = "model_info.json") -> ModelInfo:
    """Parse a decoded ``model_info.json`` object of any dialect."""
    p = _Parser(source)
    obj = p.obj(data, "")
    name = p.text(obj.get("name"), "name", required=True)
    source_obj = p.obj(obj.get("source", {}), "source")
    embedding_dim = obj.get("embedding_dim")
    if embedding_dim is not None and (
        not isinstance(embedding_dim, int) or isinstance(embedding_dim, bool) or embedding_dim < 1
    ):
        p.error("embedding_dim", f"must be a positive whole number (got {embedding_dim!r})")
    task_metadata = {
        **p.obj(obj.get("extra_metadata", {}), "extra_metadata"),
        **p.obj(obj.get("task_metadata", {}), "task_metadata"),
    }
    if embedding_dim is None and isinstance(task_metadata.get("embedding_dim"), int):
        embedding_dim = task_metadata["embedding_dim"]
    runtimes_obj = p.obj(obj.get("runtimes"), "runtimes", required=True)
    runtimes = {
        rt_name: p.runtime(rt_name, body)
        for rt_name, body in runtimes_obj.items()
        if rt_name in RUNTIME_NAMES
    }
    if not runtimes:
        p.error(
            "runtimes",
            f"must describe at least one of: {', '.join(RUNTIME_NAMES)} "
            f"(got {', '.join(runtimes_obj) or 'nothing'})",
        )
    datasets = {
        ds_name: p.dataset(ds_name, body)
        for ds_name, body in p.obj(obj.get("datasets", {}), "datasets").items()
    }
    return ModelInfo(
        name=name,
        version=p.text(obj.get("version"), "version"),
        description=p.text(obj.get("description"), "description"),
        model_type=p.text(obj.get("model_type"), "model_type"),
        embedding_dim=embedding_dim,
        source_format=p.text(source_obj.get("format"), "source.format"),
        source_repo=p.text(source_obj.get("repo_id"), "source.repo_id"),
        runtimes=runtimes,
        datasets=datasets,
        task_metadata=task_metadata,
        metadata=p.obj(obj.get("metadata", {}), "metadata"),
    )


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, path: str, message: str) -> None:
        raise ModelInfoError(message, field_path=path, source=self.source)

    def obj(self, value: Any, path: str, *, required: bool = False) -> dict[str, Any]:
        if value is None:
            if required:
                self.error(path, "is required (an object)")
            return {}
        if not isinstance(value, dict):
            self.error(path or "(top level)", f"must be an object (got {type(value).__name__})")
        return value

    def text(self, value: Any, path: str, *, required: bool = False) -> str:
        if value is None:
            if required:
                self.error(path, "is required (a non-empty string)")
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            self.error(path, f"must be a non-empty string (got {value!r})")
        return value.strip()

    def relpath(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.error(path, f"must be a repository-relative file path (got {value!r})")
        cleaned = value.strip().replace("\\", "/")
        parts = PurePosixPath(cleaned).parts
        if cleaned.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
            self.error(path, f"must stay inside the repository (got {value!r})")
        return cleaned

    def str_list(self, value: Any, path: str, *, paths: bool = False) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(path, f"must be a list (got {type(value).__name__})")
        out = []
        for i, item in enumerate(value):
            out.append(
                self.relpath(item, f"{path}[{i}]")
                if paths
                else self.text(item, f"{path}[{i}]", required=True)
            )
        return tuple(dict.fromkeys(out))

    def runtime(self, name: str, body: Any) -> RuntimeInfo:
        path = f"runtimes.{name}"
        body = self.obj(body, path, required=True)
        available = body.get("available", True)
        if not isinstance(available, bool):
            self.error(f"{path}.available", f"must be true or false (got {available!r})")
        devices = tuple(d.lower() for d in self.str_list(body.get("devices"), f"{path}.devices"))
        components = self.str_list(body.get("components"), f"{path}.components")
        precisions = tuple(
            normalise_precision(p) or p for p in self.str_list(body.get("precisions"), f"{path}.precisions")
        )
        raw_files = body.get("files")
        files: tuple[str, ...] = ()
        device_files: dict[str, tuple[str, ...]] = {}
        if isinstance(raw_files, dict):
            for device, listed in raw_files.items():
                device_files[str(device).lower()] = self.str_list(
                    listed, f"{path}.files.{device}", paths=True
                )
        elif raw_files is not None:
            files = self.str_list(raw_files, f"{path}.files", paths=True)
        if name == "rknn" and files and not device_files:
            device_files = _group_by_device(files)
            files = ()
        if not files and not device_files and components:
            files, device_files = self._derive_files(name, components, precisions or ("fp32",), devices)
        if available and not files and not device_files:
            self.error(
                f"{path}.files", "an available runtime must list its files (or components and precisions)"
            )
        return RuntimeInfo(
            name=name,
            available=available,
            files=files,
            device_files=device_files,
            devices=devices or tuple(device_files),
            components=components or tuple(dict.fromkeys(WeightFile.parse(f).component for f in files)),
            precisions=precisions,
        )

    @staticmethod
    def _derive_files(
        name: str, components: Sequence[str], precisions: Sequence[str], devices: Sequence[str]
    ) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        ext = WEIGHT_EXTENSIONS[name]
        if name == "rknn":
            return (), {
                device: tuple(f"rknn/{device}/{c}.{p}{ext}" for c in components for p in precisions)
                for device in devices
            }
        return tuple(f"{name}/{c}.{p}{ext}" for c in components for p in precisions), {}

    def dataset(self, name: str, body: Any) -> DatasetInfo:
        path = f"datasets.{name}"
        if isinstance(body, str):
            file = self.relpath(body, path)
            return DatasetInfo(name=name, files=(file,))
        body = self.obj(body, path, required=True)
        labels = self.relpath(body["labels"], f"{path}.labels") if "labels" in body else None
        embeddings = self.relpath(body["embeddings"], f"{path}.embeddings") if "embeddings" in body else None
        if labels is None and embeddings is None:
            self.error(path, "must be a file path, or an object with 'labels' and 'embeddings' paths")
        files = tuple(f for f in (labels, embeddings) if f)
        return DatasetInfo(name=name, files=files, labels=labels, embeddings=embeddings)


def _group_by_device(files: Sequence[str]) -> dict[str, tuple[str, ...]]:
    grouped: dict[str, list[str]] = {}
    for file in files:
        parts = PurePosixPath(file).parts
        device = parts[1].lower() if len(parts) >= 3 and parts[0] == "rknn" else ""
        grouped.setdefault(device, []).append(file)
    return {device: tuple(paths) for device, paths in grouped.items()}
