"""Label sets for zero-shot classification: label names + one text embedding per label.

Accepted forms (MODEL_FORMATS §2.1, §4.2, §8.6):

* one ``.npz`` with a ``labels`` array (unicode strings) and an ``embeddings`` array;
* ``{labels: <file>.json, embeddings: <file>.npy}`` as ``model_info.datasets.<name>`` gives
  them, or Lumen-Hub's ``datasets/<name>.json`` (or the suffix-stripped ``TreeOfLife.json``) +
  ``datasets/<name>.npy`` beside the model.

Labels JSON: a list of strings (ImageNet), of TreeOfLife pairs ``[[kingdom, phylum, class,
order, family, genus, species], common_name]``, or of objects with those keys. Taxonomic labels
become the 8-slot path ``kingdom/phylum/class/order/family/genus/species/common_name`` (empty
slot → ``*``) that Lumilio parses. Embeddings: ``[N, D]`` or ``[D, N]`` (told apart by the label
count), float16 or float32; ``.npy`` files are memory-mapped. Rows are L2-normalised (row norms
are computed once at load, the matrix itself is not copied).

Scores: softmax over all labels of ``exp(logit_scale) * cosine``, top-k sorted descending.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.model_info import ModelInfo, ModelInfoError

RANKS: tuple[str, ...] = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
CHUNK_ROWS = 65536
MAX_LABELS_JSON_BYTES = 512 * 1024 * 1024


class DatasetError(ValueError):
    pass


@dataclass(frozen=True)
class DatasetFiles:
    """Where a dataset's data lives: one ``.npz``, or labels + embeddings files."""

    name: str
    npz: Path | None = None
    labels: Path | None = None
    embeddings: Path | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.npz, self.labels, self.embeddings) if p is not None)

    def missing(self) -> list[Path]:
        return [p for p in self.paths if not p.is_file()]


def _dataset_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def locate_dataset(model_dir: Path, info: ModelInfo, name: str) -> DatasetFiles:
    """The files of dataset ``name``: from ``model_info.datasets`` if listed there, else the
    Hub layout ``datasets/<name>.{npz,json,npy}`` (or the same at the model root)."""
    try:
        ds = info.dataset(name)
    except ModelInfoError:
        ds = None
    if ds is not None:
        if ds.labels or ds.embeddings:
            if not (ds.labels and ds.embeddings):
                raise DatasetError(
                    f"dataset {name!r} in model_info.json needs both 'labels' and 'embeddings'"
                )
            return DatasetFiles(name, labels=model_dir / ds.labels, embeddings=model_dir / ds.embeddings)
        (file,) = ds.files[:1] or ("",)
        if file.endswith(".npz"):
            return DatasetFiles(name, npz=model_dir / file)
        raise DatasetError(
            f"dataset {name!r} is a single file {file!r}; use a .npz with 'labels' and 'embeddings' "
            "arrays, or {labels: <.json>, embeddings: <.npy>}"
        )
    wanted = _dataset_key(name)
    for folder in (model_dir / "datasets", model_dir):
        if not folder.is_dir():
            continue
        stems = {_dataset_key(p.stem): p.stem for p in folder.iterdir() if p.suffix in (".npz", ".npy")}
        stem = stems.get(wanted)
        if stem is None:
            continue
        if (folder / f"{stem}.npz").is_file():
            return DatasetFiles(name, npz=folder / f"{stem}.npz")
        labels = folder / f"{stem}.json"
        short = folder / (re.sub(r"[-_]?\d+[A-Za-z]*$", "", stem) + ".json")  # TreeOfLife200M → TreeOfLife
        if not labels.is_file() and short.is_file():
            labels = short
        return DatasetFiles(name, labels=labels, embeddings=folder / f"{stem}.npy")
    offered = ", ".join(info.datasets) or "none"
    raise DatasetError(
        f"dataset {name!r} is neither in model_info.json (datasets: {offered}) nor in "
        f"{model_dir / 'datasets'} as {name}.npz / {name}.npy"
    )


def label_text(item: Any, *, index: int = 0) -> str:
    """One label of any accepted shape as display text (8-slot path for taxonomy)."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        slots = [item.get(rank, "") for rank in RANKS] + [item.get("common_name", item.get("common", ""))]
        return _path(slots)
    if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], (list, tuple)):
        ranks = list(item[0])[: len(RANKS)]
        ranks += [""] * (len(RANKS) - len(ranks))
        return _path([*ranks, item[1]])
    raise DatasetError(
        f"label #{index} has an unsupported shape {type(item).__name__}; use a string, "
        "[[kingdom..species], common_name] or an object with rank keys"
    )


def _path(slots: Sequence[Any]) -> str:
    cleaned = []
    for slot in slots:
        text = "" if slot is None else str(slot).strip().replace("/", "-")
        cleaned.append(text or "*")
    return "/".join(cleaned)


class LabelSet:
    """Labels + their text embeddings, and top-k scoring against an image embedding."""

    def __init__(self, name: str, labels: list[str], embeddings: np.ndarray) -> None:
        if embeddings.ndim != 2:
            raise DatasetError(f"dataset {name!r}: embeddings must be 2-D (got shape {embeddings.shape})")
        n = len(labels)
        if n == 0:
            raise DatasetError(f"dataset {name!r} has no labels")
        if embeddings.shape[0] != n:
            if embeddings.shape[1] == n:
                embeddings = np.ascontiguousarray(embeddings.T, dtype=np.float32)
            else:
                raise DatasetError(
                    f"dataset {name!r}: {n} labels but embeddings of shape {embeddings.shape} "
                    "(expected [labels, dim] or [dim, labels])"
                )
        if embeddings.dtype not in (np.float16, np.float32, np.float64):
            raise DatasetError(
                f"dataset {name!r}: embeddings must be float16/float32 (got {embeddings.dtype})"
            )
        self.name = name
        self.labels = labels
        self.embeddings = embeddings
        self.dim = int(embeddings.shape[1])
        norms = np.empty(n, dtype=np.float32)
        for start in range(0, n, CHUNK_ROWS):
            chunk = np.asarray(embeddings[start : start + CHUNK_ROWS], dtype=np.float32)
            norms[start : start + len(chunk)] = np.linalg.norm(chunk, axis=1)
        norms[norms <= 1e-12] = 1.0
        self._norms = norms

    def __len__(self) -> int:
        return len(self.labels)

    def cosines(self, vector: np.ndarray) -> np.ndarray:
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise DatasetError(
                f"dataset {self.name!r} has dim {self.dim}; the image embedding has {q.shape[0]}"
            )
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        out = np.empty(len(self.labels), dtype=np.float32)
        for start in range(0, len(self.labels), CHUNK_ROWS):
            chunk = np.asarray(self.embeddings[start : start + CHUNK_ROWS], dtype=np.float32)
            out[start : start + len(chunk)] = chunk @ q
        return out / self._norms

    def top_k(self, vector: np.ndarray, k: int, logit_scale: float) -> list[tuple[str, float]]:
        logits = self.cosines(vector) * np.float32(np.exp(logit_scale))
        k = max(1, min(k, len(self.labels)))
        best = np.argpartition(-logits, k - 1)[:k] if k < len(logits) else np.arange(len(logits))
        best = best[np.argsort(-logits[best], kind="stable")]
        peak = float(logits.max())
        denominator = float(np.exp(logits - peak).sum())
        return [(self.labels[i], float(np.exp(float(logits[i]) - peak) / denominator)) for i in best]


def load_label_set(files: DatasetFiles) -> LabelSet:
    """Read a dataset (blocking: runs in an executor)."""
    missing = files.missing()
    if missing:
        raise DatasetError(f"dataset {files.name!r} is missing {', '.join(str(p) for p in missing)}")
    if files.npz is not None:
        labels, embeddings = _read_npz(files.name, files.npz)
    else:
        assert files.labels is not None and files.embeddings is not None
        labels = _read_labels_json(files.name, files.labels)
        try:
            embeddings = np.load(files.embeddings, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DatasetError(
                f"dataset {files.name!r}: {files.embeddings.name} is not a .npy array: {exc}"
            ) from None
    return LabelSet(files.name, labels, embeddings)


def _read_npz(name: str, path: Path) -> tuple[list[str], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            label_key = next((k for k in ("labels", "names", "label_names", "classes") if k in keys), None)
            emb_key = next(
                (k for k in ("embeddings", "text_embeddings", "vectors", "features") if k in keys), None
            )
            if label_key is None or emb_key is None:
                raise DatasetError(
                    f"dataset {name!r}: {path.name} must hold 'labels' and 'embeddings' arrays "
                    f"(it has: {', '.join(sorted(keys)) or 'nothing'})"
                )
            raw_labels = archive[label_key]
            embeddings = np.asarray(archive[emb_key])
    except DatasetError:
        raise
    except ValueError as exc:
        raise DatasetError(
            f"dataset {name!r}: {path.name} cannot be read without pickle ({exc}); "
            "store labels as a unicode string array"
        ) from None
    except (OSError, EOFError) as exc:
        raise DatasetError(f"dataset {name!r}: {path.name} is not a readable .npz: {exc}") from None
    if raw_labels.dtype.kind not in ("U", "S"):
        raise DatasetError(f"dataset {name!r}: labels must be strings (got {raw_labels.dtype})")
    labels = [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in raw_labels.reshape(-1).tolist()]
    return labels, embeddings


def _read_labels_json(name: str, path: Path) -> list[str]:
    if path.stat().st_size > MAX_LABELS_JSON_BYTES:
        raise DatasetError(f"dataset {name!r}: {path.name} is larger than {MAX_LABELS_JSON_BYTES} bytes")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"dataset {name!r}: {path.name} is not valid JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("labels"), list):
        data = data["labels"]
    if not isinstance(data, list):
        raise DatasetError(f"dataset {name!r}: {path.name} must hold a list of labels")
    return [label_text(item, index=i) for i, item in enumerate(data)]
