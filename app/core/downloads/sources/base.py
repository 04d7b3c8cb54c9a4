"""The source interface: list a repository's files, open a file at a byte offset.

Every method blocks (network or disk) and is called from the download manager's worker threads,
never from the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from app.core.downloads.errors import RepoNotFound, SourceError

if TYPE_CHECKING:
    from app.core.downloads.sources.http import HttpClient, HttpStatusError

GATED_ADVICE = (
    "the node downloads public repositories only (it has no access tokens): accept the licence "
    "on the hub and copy the files into downloads.local_dir, or use a mirror (downloads.endpoints)"
)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository as the source announces it.

    ``sha256`` is the content hash where the source gives one (HF LFS ``oid``, ModelScope
    ``Sha256``); ``git_sha1`` is the git blob id of a small Hugging Face file; ``etag`` is a weak
    identity used to recognise a partial file of the same version when no hash exists."""

    path: str
    size: int
    sha256: str | None = None
    git_sha1: str | None = None
    etag: str | None = None

    def identity(self) -> dict[str, object]:
        return {"size": self.size, "sha256": self.sha256, "git_sha1": self.git_sha1, "etag": self.etag}


@dataclass(frozen=True)
class RepoListing:
    source: str  # "huggingface" | "modelscope" | "local"
    repo_id: str  # "Lumilio-Photos/MobileCLIP2-S2"
    revision: str  # commit id (HF), "master" (ModelScope), "" (local)
    files: Mapping[str, RemoteFile] = field(default_factory=dict)
    location: str = ""  # endpoint or folder, for messages


class ByteStream(Protocol):
    """An open response delivering a file from byte ``start`` to its end."""

    start: int

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end. Raises TransientError on network trouble."""
        ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Unblock a pending :meth:`read` from another thread (cancel / pause)."""
        ...


class Source(ABC):
    name: str = ""
    label: str = ""  # shown to users: "Hugging Face"

    @abstractmethod
    def repo_id(self, model: str) -> str: ...

    @property
    @abstractmethod
    def location(self) -> str:
        """The endpoint URL or folder this source reads from."""

    @abstractmethod
    def list_files(self, model: str) -> RepoListing:
        """Every file of the model's repository with its size (and hash where known).
        Raises RepoNotFound, SourceError or TransientError."""

    @abstractmethod
    def open(self, listing: RepoListing, file: RemoteFile, offset: int) -> ByteStream:
        """Open ``file`` from byte ``offset`` (a ranged GET). The stream's ``start`` says where it
        really starts (0 when the server ignored the range)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"


class HubSource(Source):
    """A model hub reached over HTTP: an endpoint, a default owner, a revision."""

    def __init__(self, http: HttpClient, *, endpoint: str, owner: str, revision: str) -> None:
        self._http = http
        self._endpoint = endpoint.rstrip("/")
        self._owner = owner
        self._revision = revision

    @property
    def location(self) -> str:
        return self._endpoint

    def repo_id(self, model: str) -> str:
        return f"{self._owner}/{model}"

    def _refused(self, exc: HttpStatusError, repo: str, *, code: str = "") -> RepoNotFound:
        """The hub refuses ``repo`` (HTTP 401/403): gated or private. Another source may have it."""
        return RepoNotFound(
            f"{self.label} ({self._endpoint}) refuses access to {repo!r} "
            f"(HTTP {exc.status}, {code or 'forbidden'}): it is gated or private; {GATED_ADVICE}"
        )

    def _file_error(
        self, exc: HttpStatusError, listing: RepoListing, file: RemoteFile, what: str
    ) -> Exception:
        """The error for a file download the hub answered ``exc`` to (it listed the file)."""
        if exc.status in (401, 403):
            return self._refused(
                exc, f"{listing.repo_id}/{file.path}", code=exc.headers.get("x-error-code", "")
            )
        if exc.status == 404:
            return SourceError(f"{what}: the repository lists the file but the server answers 404 ({exc})")
        return exc
