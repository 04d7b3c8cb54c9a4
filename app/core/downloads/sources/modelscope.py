"""ModelScope, spoken over plain HTTP (the endpoints modelscope / modelscope_hub call).

* ``GET {endpoint}/api/v1/models/{owner}/{name}/repo/files?Revision=master&Recursive=True`` →
  ``{"Code": 200, "Success": true, "Data": {"Files": [{Path, Name, Type: blob|tree, Size, Sha256}]}}``
* ``GET {endpoint}/api/v1/models/{owner}/{name}/repo?Revision=master&FilePath=<path>`` with ``Range``
  (may redirect to object storage).

Every file carries a SHA-256, checked before it enters the cache.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlencode

from app.core.downloads.errors import RepoNotFound, SourceError
from app.core.downloads.sources.base import ByteStream, HubSource, RemoteFile, RepoListing
from app.core.downloads.sources.http import HttpClient, HttpStatusError

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://www.modelscope.cn"
LISTING_LIMIT = 3000  # the server silently truncates a listing at this many entries


class ModelScopeSource(HubSource):
    name = "modelscope"
    label = "ModelScope"

    def __init__(self, http: HttpClient, *, endpoint: str, owner: str, revision: str = "master") -> None:
        super().__init__(http, endpoint=endpoint, owner=owner, revision=revision)

    def _repo_url(self, repo: str) -> str:
        return f"{self._endpoint}/api/v1/models/{quote(repo, safe='/')}"

    def list_files(self, model: str) -> RepoListing:
        repo = self.repo_id(model)
        what = f"ModelScope listing of {repo}"
        url = f"{self._repo_url(repo)}/repo/files?" + urlencode(
            {"Revision": self._revision, "Recursive": "True"}
        )
        try:
            body, _ = self._http.get_json(url, what=what)
        except HttpStatusError as exc:
            if exc.status == 403:  # it exists but we may not read it
                raise self._refused(exc, repo, code=_message(exc.body).removeprefix(": ")) from exc
            if exc.status in (401, 404):  # 401: not public; private ones are not told apart
                public, private = ("public ", ", or it is private") if exc.status == 401 else ("", "")
                raise RepoNotFound(
                    f"ModelScope ({self._endpoint}) has no {public}repository {repo!r} (HTTP {exc.status}"
                    f"{_message(exc.body)}); check the model name and downloads.owners.modelscope{private}"
                ) from exc
            raise
        if not isinstance(body, dict):
            raise SourceError(f"{what}: answer is not a JSON object")
        if body.get("Success") is False or body.get("Code") not in (None, 200, "200"):
            raise RepoNotFound(
                f"ModelScope ({self._endpoint}) refused {repo!r}: {body.get('Message') or body.get('Code')}; "
                "check the model name and downloads.owners.modelscope"
            )
        data = body.get("Data", body)
        entries = data.get("Files") if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise SourceError(f"{what}: no 'Data.Files' list in the answer")
        if len(entries) >= LISTING_LIMIT:
            log.warning("%s: %d entries, the listing may be truncated by the server", what, len(entries))
        files: dict[str, RemoteFile] = {}
        for entry in entries:
            remote = _remote_file(entry)
            if remote is not None:
                files[remote.path] = remote
        return RepoListing(self.name, repo, self._revision, files, location=self._endpoint)

    def open(self, listing: RepoListing, file: RemoteFile, offset: int) -> ByteStream:
        url = f"{self._repo_url(listing.repo_id)}/repo?" + urlencode(
            {"Revision": listing.revision, "FilePath": file.path}
        )
        what = f"ModelScope download of {listing.repo_id}/{file.path}"
        try:
            return self._http.open_range(url, what=what, size=file.size, offset=offset)
        except HttpStatusError as exc:
            raise self._file_error(exc, listing, file, what) from exc


def _message(body: str) -> str:
    import json

    try:
        data = json.loads(body)
    except ValueError:
        return ""
    message = data.get("Message") if isinstance(data, dict) else None
    return f": {message}" if isinstance(message, str) and message else ""


def _remote_file(entry: Any) -> RemoteFile | None:
    if not isinstance(entry, dict) or entry.get("Type", "blob") != "blob":
        return None
    path = entry.get("Path") or entry.get("Name")
    size = entry.get("Size")
    if not isinstance(path, str) or not path or not isinstance(size, int) or size < 0:
        raise SourceError(f"ModelScope file entry without a path and size: {entry!r}")
    sha = entry.get("Sha256")
    sha = sha.lower() if isinstance(sha, str) and len(sha) == 64 else None
    etag = entry.get("Revision") or entry.get("CommitId")
    return RemoteFile(path=path, size=size, sha256=sha, etag=str(etag) if etag else None)
