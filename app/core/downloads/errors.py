"""What can go wrong while fetching a model, as exceptions whose message tells the user what to do.

:class:`DownloadError` subclasses end a download (possibly after trying the next source);
:class:`TransientError` is retried with backoff; :class:`Interrupted` is not an error at all but
a pause, a cancel or a sibling's failure reaching a transfer thread.
"""

from __future__ import annotations

import errno
from pathlib import Path

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


class DownloadError(Exception):
    """A model download failed. ``fallback`` False means another source would not help."""

    fallback = True


class RepoNotFound(DownloadError):
    """The source has no such repository (or refuses to show it)."""


class SourceError(DownloadError):
    """The source answered with something unusable (unexpected status, malformed listing)."""


class SelectionError(DownloadError):
    """``model_info.json`` is invalid, or the repository does not offer what the config asks for."""


class VerificationError(DownloadError):
    """A file's size or checksum does not match what the source announced (even after a re-fetch)."""


class NotEnoughSpace(DownloadError):
    fallback = False


class DiskError(DownloadError):
    """Staging or the cache cannot be written (permissions, read-only or failing disk)."""

    fallback = False


def disk_error(exc: OSError, path: Path | str) -> DownloadError:
    """The download error for ``exc``, raised while writing ``path`` (or the file it names):
    :class:`NotEnoughSpace` for a full disk or quota, :class:`DiskError` otherwise."""
    where = exc.filename or path
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in NO_SPACE_ERRNOS:
        return NotEnoughSpace(
            f"not enough disk space to write {where} ({reason}); free up space on that disk "
            "or move metadata.cache_dir (downloads.keep_free_mb keeps a margin free)"
        )
    return DiskError(f"cannot write {where} ({reason}); check that metadata.cache_dir is writable")


class DownloadBusy(DownloadError):
    """Another process holds the model's staging lock."""

    fallback = False


class TransientError(DownloadError):
    """A network hiccup worth retrying: connection refused/reset/cut, timeout, 429, 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Interrupted(Exception):
    """A transfer stopped on request; the partial file is kept for resume."""


class Cancelled(Interrupted):
    pass


class Paused(Interrupted):
    pass


class Aborted(Interrupted):
    """Another file of the same repository failed; this transfer stops so the job can fall back."""
