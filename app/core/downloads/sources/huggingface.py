"""Hugging Face Hub, spoken over plain HTTP (the endpoints huggingface_hub itself calls).

* ``GET {endpoint}/api/models/{repo}/revision/{revision}`` → ``{"sha": <commit>}``
* ``GET {endpoint}/api/models/{repo}/tree/{commit}?recursive=true`` → ``[{type, path, size, oid,
  lfs: {oid, size}}]``, paged with ``Link: <next>; rel="next"``
* ``GET {endpoint}/{repo}/resolve/{commit}/{path}`` with ``Range`` (redirects to the CDN for LFS).

LFS files are verified by their ``lfs.oid`` (SHA-256), small files by their git blob id (SHA-1
of ``blob <size>\\0<bytes>``). The commit is pinned for the whole download, so every file comes
from one revision even if the repository changes meanwhile.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urljoin

from app.core.downloads.errors import RepoNotFound, SourceError
from app.core.downloads.sources.base import ByteStream, HubSource, RemoteFile, RepoListing
from app.core.downloads.sources.http import HttpClient, HttpStatusError

DEFAULT_ENDPOINT = "https://huggingface.co"
MAX_TREE_PAGES = 1000
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


class HuggingFaceSource(HubSource):
    name = "huggingface"
    label = "Hugging Face"

    def __init__(self, http: HttpClient, *, endpoint: str, owner: str, revision: str = "main") -> None:
        super().__init__(http, endpoint=endpoint, owner=owner, revision=revision)

    def list_files(self, model: str) -> RepoListing:
        repo = self.repo_id(model)
        what = f"Hugging Face listing of {repo}"
        info_url = f"{self._endpoint}/api/models/{repo}/revision/{quote(self._revision, safe='')}"
        try:
            info, _ = self._http.get_json(info_url, what=what)
        except HttpStatusError as exc:
            raise self._not_found(exc, repo) from exc
        commit = info.get("sha") if isinstance(info, dict) else None
        if not isinstance(commit, str) or not commit:
            raise SourceError(f"{what}: {info_url} gave no commit id ('sha')")
        files: dict[str, RemoteFile] = {}
        url: str | None = f"{self._endpoint}/api/models/{repo}/tree/{commit}?recursive=true"
        for _ in range(MAX_TREE_PAGES):
            if url is None:
                break
            try:
                page, headers = self._http.get_json(url, what=what)
            except HttpStatusError as exc:
                raise self._not_found(exc, repo) from exc
            if not isinstance(page, list):
                raise SourceError(f"{what}: the tree of {repo} is not a list")
            for entry in page:
                remote = _remote_file(entry)
                if remote is not None:
                    files[remote.path] = remote
            match = _LINK_NEXT.search(headers.get("link", ""))
            url = urljoin(url, match.group(1)) if match else None
        return RepoListing(self.name, repo, commit, files, location=self._endpoint)

    def open(self, listing: RepoListing, file: RemoteFile, offset: int) -> ByteStream:
        url = f"{self._endpoint}/{listing.repo_id}/resolve/{listing.revision}/{quote(file.path)}"
        what = f"Hugging Face download of {listing.repo_id}/{file.path}"
        try:
            return self._http.open_range(url, what=what, size=file.size, offset=offset)
        except HttpStatusError as exc:
            raise self._file_error(exc, listing, file, what) from exc

    def _not_found(self, exc: HttpStatusError, repo: str) -> Exception:
        code = exc.headers.get("x-error-code", "")
        if code == "GatedRepo" or (exc.status == 403 and code != "RepoNotFound"):
            return self._refused(exc, repo, code=code)
        if exc.status == 404 or code in ("RepoNotFound", "RevisionNotFound") or exc.status == 401:
            what = "revision " + repr(self._revision) + " of " if code == "RevisionNotFound" else ""
            return RepoNotFound(
                f"Hugging Face ({self._endpoint}) has no {what}repository {repo!r} (HTTP {exc.status}); "
                "check the model name and downloads.owners.huggingface"
            )
        return exc


def _remote_file(entry: Any) -> RemoteFile | None:
    if not isinstance(entry, dict) or entry.get("type") != "file":
        return None
    path, size = entry.get("path"), entry.get("size")
    if not isinstance(path, str) or not isinstance(size, int) or size < 0:
        raise SourceError(f"Hugging Face tree entry without a path and size: {entry!r}")
    lfs = entry.get("lfs")
    oid = entry.get("oid") if isinstance(entry.get("oid"), str) else None
    if isinstance(lfs, dict):
        sha = str(lfs.get("oid") or lfs.get("sha256") or "").lower().removeprefix("sha256:")
        lfs_size = lfs.get("size", size)
        return RemoteFile(
            path=path,
            size=lfs_size if isinstance(lfs_size, int) else size,
            sha256=sha if _SHA256.match(sha) else None,
            etag=oid,
        )
    return RemoteFile(path=path, size=size, git_sha1=oid if oid and _SHA1.match(oid) else None, etag=oid)
