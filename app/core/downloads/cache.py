"""The model cache: ``<cache_dir>/models/<model>/<path>`` plus an index of what is complete.

The index is one manifest per model, ``<cache_dir>/models/.index/<model>.json``, recording the
source, revision, model version and each file's size and SHA-256. Files enter the cache only
through :meth:`ModelCache.commit`, which moves verified files from staging with atomic renames and
marks the manifest complete last; an interrupted commit leaves ``complete: false`` and the next
download finishes it. Nothing here touches the network; every method may block on disk and is
called from worker threads (or the CLI).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.downloads.errors import SelectionError
from app.core.downloads.selection import MODEL_INFO, ModelRequest, plan_files
from app.core.downloads.sources.base import RemoteFile
from app.core.downloads.staging import STAGING_DIR, Staging, prune_empty, safe_relpath
from services.model_info import ModelInfo, ModelInfoError, WeightFile, load_model_info

log = logging.getLogger(__name__)

INDEX_DIR = ".index"
MANIFEST_FORMAT = 1
HASH_CHUNK = 4 * 1024 * 1024
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_model_name(model: str) -> str:
    """``model`` if it names a model folder; ValueError (saying why) for paths, ``..`` and the like."""
    if not _MODEL_NAME.match(model or "") or ".." in model:
        raise ValueError(
            f"{model!r} is not a model name: give the folder name as `lumen-hub list` shows it "
            "(letters, digits, '.', '_', '-'; no '/', no '..')"
        )
    return model


def file_sha256(path: Path, on_block: Callable[[int], None] | None = None) -> str:
    """The file's SHA-256; ``on_block(n)`` after each block read (progress; it may raise to stop)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_CHUNK):
            digest.update(block)
            if on_block is not None:
                on_block(len(block))
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheCheck:
    satisfied: bool
    reason: str = ""  # why not (or "no download record" when files are used unverified)


@dataclass(frozen=True)
class CacheEntry:
    """One row of ``lumen-hub list``."""

    model: str
    version: str
    runtimes: tuple[str, ...]  # "onnx fp16,fp32", "rknn rk3588"
    size_bytes: int
    complete: bool
    status: str  # "complete" | "incomplete: ..." | "no download record" | "partial download"
    staged_bytes: int = 0
    source: str = ""


class ModelCache:
    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)

    # ---------------------------------------------------------------- paths and manifests

    def model_dir(self, model: str) -> Path:
        return self.models_dir / check_model_name(model)

    def manifest_path(self, model: str) -> Path:
        return self.models_dir / INDEX_DIR / f"{check_model_name(model)}.json"

    def staging(self, model: str) -> Staging:
        return Staging(self.models_dir, check_model_name(model))

    def read_manifest(self, model: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.manifest_path(model).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            return None
        return data

    def write_manifest(self, model: str, manifest: Mapping[str, Any]) -> None:
        path = self.manifest_path(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)

    # ---------------------------------------------------------------- what is there

    def cached_digest(self, model: str, remote: RemoteFile) -> str | None:
        """The SHA-256 of the cached copy of ``remote.path`` if it is the same content as ``remote``
        (by the manifest's record and the file's size), without hashing."""
        manifest = self.read_manifest(model)
        record = (manifest or {}).get("files", {}).get(remote.path)
        if not isinstance(record, dict) or record.get("size") != remote.size:
            return None
        if not self._has_size(model, remote):
            return None
        sha = record.get("sha256")
        if remote.sha256:
            return sha if sha == remote.sha256 else None
        if remote.git_sha1:
            return sha if record.get("git_sha1") == remote.git_sha1 else None
        if (
            remote.etag
            and record.get("etag") == remote.etag
            and record.get("source") == manifest.get("source")
        ):
            return sha
        return None

    def _has_size(self, model: str, remote: RemoteFile) -> bool:
        """Whether the cached copy of ``remote.path`` exists with ``remote``'s size."""
        try:
            return (self.model_dir(model) / safe_relpath(remote.path)).stat().st_size == remote.size
        except OSError:
            return False

    def recorded_digest(self, model: str, remote: RemoteFile) -> str | None:
        """The SHA-256 recorded for the cached copy of ``remote.path`` when that copy has
        ``remote``'s size (whatever source it came from), without hashing."""
        record = (self.read_manifest(model) or {}).get("files", {}).get(remote.path)
        if not isinstance(record, dict) or record.get("size") != remote.size or not record.get("sha256"):
            return None
        return str(record["sha256"]) if self._has_size(model, remote) else None

    def adopt(
        self, model: str, remote: RemoteFile, on_block: Callable[[int], None] | None = None
    ) -> str | None:
        """For a file in the cache without a record (copied by hand, an older node): hash it and
        return its SHA-256 if it matches ``remote``'s. Hashes the whole file, calling
        ``on_block`` after each block (which may raise to stop: a cancel or pause)."""
        if not remote.sha256:
            return None
        if not self._has_size(model, remote):
            return None
        what = f"{model}/{remote.path}"
        log.info("checking %s (%d bytes, no download record) against its SHA-256", what, remote.size)
        digest = file_sha256(self.model_dir(model) / safe_relpath(remote.path), on_block)
        return digest if digest == remote.sha256 else None

    def check(self, request: ModelRequest) -> CacheCheck:
        """Whether the cache holds everything ``request`` needs (by the cached model_info.json)."""
        model_dir = self.model_dir(request.model)
        manifest = self.read_manifest(request.model)
        if manifest is not None and not manifest.get("complete"):
            return CacheCheck(False, "the last download did not finish")
        try:
            info = load_model_info(model_dir / MODEL_INFO)
        except ModelInfoError as exc:
            return CacheCheck(False, "not downloaded" if not model_dir.exists() else exc.reason)
        records: dict[str, Any] = manifest["files"] if manifest else {}
        present = set(records) if manifest else set(_walk(model_dir))
        named = {f for rt in info.runtimes.values() for f in rt.all_files()}
        named |= {f for ds in info.datasets.values() for f in ds.files}
        try:  # every named file counts as known here: what is missing on disk is reported below
            needed = plan_files(info, present | named | {MODEL_INFO}, request.variants)
        except SelectionError as exc:
            return CacheCheck(False, str(exc))
        for rel in needed:
            path = model_dir / rel
            try:
                size = path.stat().st_size
            except OSError:
                return CacheCheck(False, f"{rel} is missing")
            record = records.get(rel)
            if manifest is not None and (not isinstance(record, dict) or record.get("size") != size):
                return CacheCheck(False, f"{rel} is not the downloaded file")
        return CacheCheck(True, "" if manifest else "no download record (files used as found)")

    # ---------------------------------------------------------------- commit

    def commit(
        self,
        model: str,
        staged: Mapping[str, Path],
        records: Mapping[str, Mapping[str, Any]],
        *,
        source: str,
        repo_id: str,
        revision: str,
        version: str,
    ) -> None:
        """Move verified staged files into place (atomic renames) and record them, complete last."""
        manifest = self.read_manifest(model) or {"files": {}}
        previous = manifest.get("source")
        manifest.update(format=MANIFEST_FORMAT, model=model, complete=False)
        self.write_manifest(model, manifest)
        model_dir = self.model_dir(model)
        for rel, src in staged.items():
            dst = model_dir / safe_relpath(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        files = dict(manifest["files"])
        if previous and previous != source:  # etags of another source mean nothing here
            files = {k: {key: v for key, v in r.items() if key != "etag"} for k, r in files.items()}
        for rel, record in records.items():
            files[rel] = {**record, "source": source}
        manifest.update(
            files=files,
            source=source,
            repo_id=repo_id,
            revision=revision,
            version=version,
            complete=True,
            updated_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
        self.write_manifest(model, manifest)

    # ---------------------------------------------------------------- list / remove

    def entries(self) -> list[CacheEntry]:
        names: set[str] = set()
        if self.models_dir.is_dir():
            names.update(
                p.name for p in self.models_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
            )
            index = self.models_dir / INDEX_DIR
            if index.is_dir():
                names.update(p.stem for p in index.glob("*.json"))
            staging = self.models_dir / STAGING_DIR
            if staging.is_dir():
                names.update(p.name for p in staging.iterdir() if p.is_dir())
        return [self.entry(name) for name in sorted(names, key=str.lower) if _MODEL_NAME.match(name)]

    def entry(self, model: str) -> CacheEntry:
        model_dir = self.model_dir(model)
        manifest = self.read_manifest(model)
        staged = self.staging(model).total_bytes()
        files = dict(_walk(model_dir)) if model_dir.is_dir() else {}
        size = sum(files.values())
        info: ModelInfo | None = None
        with contextlib.suppress(ModelInfoError):
            info = load_model_info(model_dir / MODEL_INFO)
        version = info.version if info else (manifest or {}).get("version", "")
        runtimes = _local_runtimes(info, files) if info else ()
        if manifest is None:
            if not files:
                status, complete = "partial download", False
            else:
                status, complete = "no download record", False
        elif not manifest.get("complete"):
            status, complete = "incomplete: the last download did not finish", False
        else:
            missing = [
                rel
                for rel, record in manifest["files"].items()
                if not isinstance(record, dict) or files.get(rel) != record.get("size")
            ]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                status, complete = f"incomplete: {missing[0]} missing or changed{more}", False
            else:
                status, complete = "complete", True
        if staged and complete:
            status += f" (+{staged} bytes staged)"
        return CacheEntry(
            model=model,
            version=str(version or ""),
            runtimes=runtimes,
            size_bytes=size,
            complete=complete,
            status=status,
            staged_bytes=staged,
            source=str((manifest or {}).get("source", "")),
        )

    def remove(self, model: str) -> int:
        """Delete the model's folder, manifest and staged files; bytes freed. FileNotFoundError if
        there is nothing; DownloadBusy while another process downloads it."""
        model_dir = self.model_dir(model)
        manifest = self.manifest_path(model)
        staging = self.staging(model)
        if not (model_dir.exists() or manifest.exists() or staging.root.exists()):
            raise FileNotFoundError(model)
        with staging.lock():
            freed = sum(_walk(model_dir).values()) if model_dir.is_dir() else 0
            freed += staging.total_bytes()
            shutil.rmtree(model_dir, ignore_errors=True)
            staging.clear()
            with contextlib.suppress(FileNotFoundError):
                manifest.unlink()
            prune_empty(manifest.parent)
        with contextlib.suppress(FileNotFoundError):
            staging.lock_path.unlink()
        prune_empty(staging.lock_path.parent)
        return freed


def _walk(folder: Path) -> dict[str, int]:
    """``{relative posix path: size}`` of every regular file below ``folder``."""
    found: dict[str, int] = {}
    if not folder.is_dir():
        return found
    for dirpath, _dirs, filenames in os.walk(folder):
        for filename in filenames:
            path = Path(dirpath) / filename
            with contextlib.suppress(OSError):
                found[path.relative_to(folder).as_posix()] = path.stat().st_size
    return found


def _local_runtimes(info: ModelInfo, present: Mapping[str, int]) -> tuple[str, ...]:
    """Runtimes whose weights are complete on disk: ``onnx fp16,fp32``, ``rknn rk3588``."""
    out: list[str] = []
    for name, runtime in info.runtimes.items():
        if not runtime.available:
            continue
        if name == "rknn":
            devices = [
                d for d, files in runtime.device_files.items() if files and _all_present(files, present)
            ]
            if devices:
                out.append(f"rknn {','.join(sorted(devices))}")
            continue
        by_precision: dict[str, list[str]] = {}
        for path in runtime.files:
            by_precision.setdefault(WeightFile.parse(path).effective_precision, []).append(path)
        complete = sorted(p for p, files in by_precision.items() if _all_present(files, present))
        if complete:
            out.append(f"{name} {','.join(complete)}")
    return tuple(out)


def _all_present(files: Iterable[str], present: Mapping[str, int]) -> bool:
    return all(f in present for f in files)
