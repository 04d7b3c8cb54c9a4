"""What can go wrong while fetching a model, as exceptions whose message tells the user what to do.

:class:`DownloadError` subclasses end a download (possibly after trying the next source);
:class:`TransientError` is retried with backoff; :class:`Interrupted` is not an error at all but
a pause, a cancel or a sibling's failure reaching a transfer thread.
"""

from __future__ import annotations


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
