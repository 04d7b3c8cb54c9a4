"""A folder on disk holding ``<model>/...`` trees (a USB stick, a NAS share) for air-gapped users.

No hashes exist here; files are checked by size, hashed while copied, and the hash is recorded
in the cache manifest like any other download. Lacking hashes, this source never replaces a cached
file of the same size that has a recorded hash (the manager's plan; ``--force`` does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from app.core.downloads.errors import RepoNotFound, SourceError
from app.core.downloads.sources.base import ByteStream, RemoteFile, RepoListing, Source


class LocalSource(Source):
    name = "local"
    label = "local folder"

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def location(self) -> str:
        return str(self._root)

    def repo_id(self, model: str) -> str:
        return model

    def list_files(self, model: str) -> RepoListing:
        base = self._root / model
        if not base.is_dir():
            raise RepoNotFound(f"the local folder {self._root} has no model folder {model!r}")
        resolved = base.resolve()
        files: dict[str, RemoteFile] = {}
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                full = Path(dirpath) / filename
                real = full.resolve()
                if not real.is_file() or not real.is_relative_to(resolved):
                    continue  # a link leaving the model folder is not part of it
                rel = full.relative_to(base).as_posix()
                stat = real.stat()
                files[rel] = RemoteFile(
                    path=rel, size=stat.st_size, etag=f"{stat.st_size}-{stat.st_mtime_ns}"
                )
        return RepoListing(self.name, model, "", files, location=str(base))

    def open(self, listing: RepoListing, file: RemoteFile, offset: int) -> ByteStream:
        path = Path(listing.location) / file.path
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise _read_error(path, exc) from exc
        try:
            size = os.fstat(handle.fileno()).st_size
            if size != file.size:
                raise SourceError(f"{path} changed while downloading ({size} bytes, listed {file.size})")
            handle.seek(offset)
        except BaseException as exc:
            handle.close()
            if isinstance(exc, OSError):
                raise _read_error(path, exc) from exc
            raise
        return _FileStream(handle, offset, path)


def _read_error(path: Path, exc: OSError) -> SourceError:
    """A read failure of the local folder: the next source is tried."""
    return SourceError(
        f"cannot read {path}: {exc.strerror or exc}; check the disk or share behind downloads.local_dir"
    )


class _FileStream:
    def __init__(self, handle: BinaryIO, start: int, path: Path) -> None:
        self._handle = handle
        self._path = path
        self.start = start

    def read(self, size: int) -> bytes:
        try:
            return self._handle.read(size)
        except OSError as exc:
            raise _read_error(self._path, exc) from exc

    def close(self) -> None:
        self._handle.close()

    def abort(self) -> None:
        pass  # local reads never block for long
