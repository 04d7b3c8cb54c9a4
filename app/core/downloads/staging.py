"""The staging area: where files are downloaded before they may enter the cache.

``<cache_dir>/models/.staging/<model>/<path>.partial`` holds the bytes received so far (they
survive crashes and restarts; a later run resumes with a ranged GET), and
``<path>.partial.meta`` records which remote version they belong to, so a partial file of an
older version is never completed with bytes of a newer one. Staging lives on the cache's
filesystem, so moving a verified file into the cache is an atomic rename.

A per-model lock file (``.staging/<model>.lock``, an OS advisory lock released when the process
dies) keeps two processes from downloading the same model at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from app.core.downloads.errors import DownloadBusy, disk_error
from app.core.downloads.sources.base import RemoteFile

STAGING_DIR = ".staging"
PARTIAL_SUFFIX = ".partial"
META_SUFFIX = ".partial.meta"


def safe_relpath(rel: str) -> str:
    """``rel`` if it is a plain repository-relative path; ValueError otherwise."""
    pure = PurePosixPath(rel)
    if (
        not rel
        or pure.is_absolute()
        or ".." in pure.parts
        or "\\" in rel
        or (pure.parts and ":" in pure.parts[0])
    ):
        raise ValueError(f"refusing the repository path {rel!r}: it must stay inside the model folder")
    return pure.as_posix()


def compatible(meta: dict[str, Any] | None, remote: RemoteFile, source: str) -> bool:
    """True when staged bytes described by ``meta`` are a prefix of ``remote``'s content."""
    if not meta or meta.get("size") != remote.size:
        return False
    if remote.sha256 and meta.get("sha256"):
        return meta["sha256"] == remote.sha256
    if remote.git_sha1 and meta.get("git_sha1"):
        return meta["git_sha1"] == remote.git_sha1
    if remote.etag and meta.get("etag") and meta.get("source") == source:
        return meta["etag"] == remote.etag
    return False


class Staging:
    def __init__(self, models_dir: Path, model: str) -> None:
        self.models_dir = Path(models_dir)
        self.root = self.models_dir / STAGING_DIR / model
        self.lock_path = self.models_dir / STAGING_DIR / f"{model}.lock"

    def partial(self, rel: str) -> Path:
        return self.root / (safe_relpath(rel) + PARTIAL_SUFFIX)

    def meta_path(self, rel: str) -> Path:
        return self.root / (safe_relpath(rel) + META_SUFFIX)

    def read_meta(self, rel: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.meta_path(rel).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_meta(self, rel: str, remote: RemoteFile, source: str, *, digest: str | None = None) -> None:
        meta = {**remote.identity(), "source": source, "path": rel, "verified_sha256": digest}
        path = self.meta_path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp, path)

    def staged_bytes(self, rel: str, remote: RemoteFile, source: str) -> int:
        """Bytes of ``remote`` already staged (0 when the partial is of another version)."""
        if not compatible(self.read_meta(rel), remote, source):
            return 0
        try:
            size = self.partial(rel).stat().st_size
        except OSError:
            return 0
        return size if size <= remote.size else 0

    def prepare(self, rel: str, remote: RemoteFile, source: str) -> int:
        """Ready the partial file for ``remote``: keep bytes of the same version, else start empty.
        Returns the number of bytes kept."""
        kept = self.staged_bytes(rel, remote, source)
        if kept:
            meta = self.read_meta(rel) or {}
            if meta.get("source") != source or meta.get("verified_sha256"):
                self.write_meta(rel, remote, source, digest=meta.get("verified_sha256"))
            return kept
        self.reset(rel)
        self.write_meta(rel, remote, source)
        partial = self.partial(rel)
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.touch()
        return 0

    def verified_digest(self, rel: str, remote: RemoteFile, source: str) -> str | None:
        """The SHA-256 of a staged file already verified against ``remote``, else None."""
        meta = self.read_meta(rel)
        if not compatible(meta, remote, source) or not meta or not meta.get("verified_sha256"):
            return None
        try:
            size = self.partial(rel).stat().st_size
        except OSError:
            return None
        return str(meta["verified_sha256"]) if size == remote.size else None

    def mark_verified(self, rel: str, remote: RemoteFile, source: str, digest: str) -> None:
        self.write_meta(rel, remote, source, digest=digest)

    def reset(self, rel: str) -> None:
        for path in (self.partial(rel), self.meta_path(rel)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def total_bytes(self) -> int:
        total = 0
        if self.root.is_dir():
            for path in self.root.rglob("*" + PARTIAL_SUFFIX):
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
        return total

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        prune_empty(self.root.parent)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the model's download lock; :class:`DownloadBusy` if another process has it."""
        fd = self.acquire()
        try:
            yield
        finally:
            self.release(fd)

    def acquire(self) -> int:
        """Take the model's download lock (blocking disk work: call it from a worker thread).
        Returns the descriptor to pass to :meth:`release`. :class:`DownloadBusy` if another
        process has it; :class:`NotEnoughSpace` / :class:`DiskError` if it cannot be created."""
        with writing(self.lock_path):
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            raise DownloadBusy(
                f"another lumen-hub process is downloading {self.root.name!r} "
                f"(lock {self.lock_path}); wait for it or stop it"
            ) from None
        return fd

    @staticmethod
    def release(fd: int) -> None:
        """Give back a lock taken by :meth:`acquire`."""
        try:
            _unlock(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` into the download error that says what to do."""
    try:
        yield
    except OSError as exc:
        raise disk_error(exc, path) from exc


def prune_empty(folder: Path) -> None:
    """Remove ``folder`` if it is empty (best effort)."""
    with contextlib.suppress(OSError):
        folder.rmdir()


try:  # POSIX
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # Windows
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
