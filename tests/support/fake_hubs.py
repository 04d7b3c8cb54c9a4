"""Hugging Face and ModelScope look-alikes on 127.0.0.1, for download tests and the benchmark.

They speak the HTTP protocol of the real hubs as the client libraries (and our downloader) use it
(``../shared/PLATFORM.md``, "Downloads"):

Hugging Face
    ``GET /api/models/{repo}/revision/{rev}`` → ``{"id", "sha", "siblings"}``;
    ``GET /api/models/{repo}/tree/{rev}?recursive=true`` → entries ``{type, path, size, oid, lfs}``,
    paged with a ``Link: <…>; rel="next"`` header;
    ``HEAD|GET /{repo}/resolve/{rev}/{path}`` → small files directly (``ETag`` = git blob id), LFS
    files as a 302 to ``/cdn-lfs/…`` with ``X-Linked-Etag`` / ``X-Linked-Size``; every resolve
    answer carries ``X-Repo-Commit``; ``Range`` → 206 + ``Content-Range``; unknown repos → 401 with
    ``X-Error-Code: RepoNotFound``.

ModelScope
    ``GET /api/v1/models/{owner}/{name}/repo/files?Revision=…&Recursive=True`` → the JSON envelope
    ``{"Code": 200, "Success": true, "Data": {"Files": [{Path, Name, Type, Size, Sha256}]}}``;
    ``GET /api/v1/models/{owner}/{name}/repo?Revision=…&FilePath=…`` with ``Range``;
    ``GET /api/v1/repos/internalAccelerationInfo`` → 404; unknown repos → 404 envelope.

Every request is logged (:class:`Logged`); faults can be injected per file (:class:`Fault`): cut the
connection after N bytes, answer 500/429 with ``Retry-After``, corrupt a byte, stall, ignore the
range, throttle. Files come from memory (tests) or from disk (the benchmark; sent with sendfile).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SUFFIXES = (".onnx", ".rknn", ".pt", ".bin", ".npz", ".npy", ".safetensors")
CHUNK = 256 * 1024
API = "@api"  # inject(API, Fault(status=...)) hits the next JSON API request (listing, revision)
SLOW_CHUNK = 16 * 1024  # throttled bodies trickle in small pieces


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubFile:
    path: str
    data: bytes | None = None
    disk: Path | None = None
    lfs: bool = False
    size: int = 0
    sha256: str = ""
    git_sha1: str = ""

    @classmethod
    def of(cls, path: str, content: bytes | Path, *, lfs: bool | None = None) -> HubFile:
        lfs = path.endswith(LFS_SUFFIXES) if lfs is None else lfs
        if isinstance(content, Path):
            size = content.stat().st_size
            digest, git = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
            with content.open("rb") as handle:
                while block := handle.read(4 * 1024 * 1024):
                    digest.update(block)
                    git.update(block)
            return cls(path, None, content, lfs, size, digest.hexdigest(), git.hexdigest())
        return cls(
            path,
            content,
            None,
            lfs,
            len(content),
            hashlib.sha256(content).hexdigest(),
            git_blob_sha1(content),
        )

    def chunks(self, start: int, size: int = CHUNK) -> Iterator[bytes]:
        if self.data is not None:
            for offset in range(start, self.size, size):
                yield self.data[offset : offset + size]
            return
        assert self.disk is not None
        with self.disk.open("rb") as handle:
            handle.seek(start)
            while block := handle.read(size):
                yield block


class HubRepo:
    """A repository: ``owner/name`` and its files. ``set_file`` changes it (a new commit)."""

    def __init__(self, repo_id: str, files: Mapping[str, bytes | Path]) -> None:
        self.repo_id = repo_id
        self.files: dict[str, HubFile] = {p: HubFile.of(p, c) for p, c in files.items()}
        self._rehash()

    def set_file(self, path: str, content: bytes | Path) -> None:
        self.files[path] = HubFile.of(path, content)
        self._rehash()

    def _rehash(self) -> None:
        digest = hashlib.sha1(self.repo_id.encode())
        for path in sorted(self.files):
            digest.update(f"{path}:{self.files[path].sha256}".encode())
        self.commit = digest.hexdigest()


@dataclass
class Fault:
    """A misbehaviour for data requests of one file. ``times`` < 0 = every time."""

    cut_after: int | None = None  # close the connection after this many body bytes
    status: int | None = None  # answer this status instead (500, 429, 503 ...)
    retry_after: str | None = None
    corrupt_at: int | None = None  # flip the byte at this file offset
    stall_after: int | None = None  # stop sending after this many body bytes ...
    stall_s: float = 0.0  # ... for this long (then close the connection)
    ignore_range: bool = False  # answer 200 with the whole file
    rate_bps: float | None = None  # throttle the body
    times: int = 1


@dataclass
class Logged:
    """One request; logged when it arrives, completed (status, sent, ended) when it ends."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    range: str | None
    status: int
    file: str | None  # repository-relative path when the request fetched file bytes
    repo: str | None
    sent: int  # body bytes sent
    started: float
    ended: float

    @property
    def range_start(self) -> int | None:
        if not self.range:
            return None
        match = re.match(r"bytes=(\d+)-", self.range)
        return int(match.group(1)) if match else None


class FakeHub:
    """Base of the two hubs: server thread, repos, request log, faults."""

    kind = "hub"

    def __init__(self, repos: Mapping[str, Mapping[str, bytes | Path]] | None = None) -> None:
        self.repos: dict[str, HubRepo] = {}
        for repo_id, files in (repos or {}).items():
            self.add_repo(repo_id, files)
        self.log: list[Logged] = []
        self.faults: list[tuple[str, Fault]] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.active = 0
        self.max_active = 0
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self._server = self._listen()

    def _listen(self) -> ThreadingHTTPServer:
        """Another listening socket served by this hub (a separate origin, like a CDN host)."""
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._servers.append(server)
        self._threads.append(
            threading.Thread(target=server.serve_forever, args=(0.05,), name=f"fake-{self.kind}", daemon=True)
        )
        return server

    # ---------------------------------------------------------------- control

    def start(self) -> FakeHub:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _origin(server: ThreadingHTTPServer) -> str:
        host, port = server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self._origin(self._server)

    def add_repo(self, repo_id: str, files: Mapping[str, bytes | Path]) -> HubRepo:
        repo = HubRepo(repo_id, files)
        self.repos[repo_id] = repo
        return repo

    def inject(self, path: str, fault: Fault) -> Fault:
        """Apply ``fault`` to the next data request(s) of repository file ``path`` (or of the JSON
        API when ``path`` is :data:`API`)."""
        with self._lock:
            self.faults.append((path, fault))
        return fault

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.max_active = 0

    def data_requests(self, path: str | None = None) -> list[Logged]:
        """Logged GETs that fetched file bytes (of ``path``), oldest first."""
        with self._lock:
            return [e for e in self.log if e.file and e.method == "GET" and (path is None or e.file == path)]

    def fetched_files(self) -> set[str]:
        return {e.file for e in self.data_requests() if e.file}

    def bytes_sent(self, path: str) -> int:
        return sum(e.sent for e in self.data_requests(path))

    # ---------------------------------------------------------------- internals

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, (target, fault) in enumerate(self.faults):
                if target == path:
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            del self.faults[i]
                    return fault
        return None

    def _record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def route(self, handler: _Handler, ctx: Logged) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        split = urlsplit(self.path)
        entry = Logged(
            method=self.command,
            path=unquote(split.path),
            query=parse_qs(split.query),
            range=self.headers.get("Range"),
            status=0,
            file=None,
            repo=None,
            sent=0,
            started=time.monotonic(),
            ended=0.0,
        )
        self.hub._record(entry)
        try:
            api_fault = self.hub._take_fault(API) if split.path.startswith("/api/") else None
            if api_fault is not None and api_fault.status is not None:
                extra = {"Retry-After": api_fault.retry_after} if api_fault.retry_after else {}
                self.reply_json(entry, api_fault.status, {"error": f"injected {api_fault.status}"}, extra)
                return
            self.hub.route(self, entry)  # the route fills in status, file, repo, sent
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            entry.ended = time.monotonic()

    # ---------------------------------------------------------------- answers

    def reply_json(
        self, ctx: Logged, status: int, body: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        raw = json.dumps(body).encode()
        ctx.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def redirect(self, ctx: Logged, location: str, headers: Mapping[str, str]) -> None:
        ctx.status = 302
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def send_file(self, ctx: Logged, repo: HubRepo, file: HubFile, headers: Mapping[str, str]) -> None:
        """File bytes with Range support and the injected faults."""
        ctx.repo, ctx.file = repo.repo_id, file.path
        hub = self.hub
        fault = hub._take_fault(file.path) if self.command == "GET" else None
        if fault is not None and fault.status is not None:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self.reply_json(ctx, fault.status, {"error": f"injected {fault.status}"}, extra)
            ctx.file = file.path
            return
        start = 0
        requested = self.headers.get("Range")
        if requested and not (fault and fault.ignore_range):
            match = re.match(r"bytes=(\d+)-(\d*)$", requested.strip())
            if match:
                start = int(match.group(1))
                if start >= file.size:
                    ctx.status = 416
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{file.size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
        partial = start > 0
        ctx.status = 206 if partial else 200
        self.send_response(ctx.status)
        self.send_header("Content-Length", str(file.size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{file.size - 1}/{file.size}")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        with hub._lock:
            hub.active += 1
            hub.max_active = max(hub.max_active, hub.active)
        try:
            self._send_body(ctx, file, start, fault)
        finally:
            with hub._lock:
                hub.active -= 1

    def _send_body(self, ctx: Logged, file: HubFile, start: int, fault: Fault | None) -> None:
        if fault is None and file.disk is not None:
            self.wfile.flush()
            with file.disk.open("rb") as handle:
                ctx.sent = self.connection.sendfile(handle, start, file.size - start)
            return
        offset = start
        for chunk in file.chunks(start, SLOW_CHUNK if fault and fault.rate_bps else CHUNK):
            if fault is not None:
                if fault.corrupt_at is not None and offset <= fault.corrupt_at < offset + len(chunk):
                    i = fault.corrupt_at - offset
                    chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
                limit = fault.cut_after if fault.cut_after is not None else fault.stall_after
                if limit is not None and ctx.sent + len(chunk) >= limit:
                    chunk = chunk[: limit - ctx.sent]
                    self.wfile.write(chunk)
                    ctx.sent += len(chunk)
                    if fault.stall_after is not None:
                        self.hub._release.wait(fault.stall_s)
                    self._cut()
                    return
                if fault.rate_bps:
                    time.sleep(len(chunk) / fault.rate_bps)
            self.wfile.write(chunk)
            ctx.sent += len(chunk)
            offset += len(chunk)

    def _cut(self) -> None:
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.close_connection = True


# ------------------------------------------------------------------------------------------
# Hugging Face
# ------------------------------------------------------------------------------------------


class FakeHuggingFace(FakeHub):
    kind = "huggingface"

    def __init__(
        self,
        repos: Mapping[str, Mapping[str, bytes | Path]] | None = None,
        *,
        page_size: int = 1000,
        redirect_lfs: bool = True,
    ) -> None:
        super().__init__(repos)
        self.page_size = page_size
        self.redirect_lfs = redirect_lfs
        self._cdn = self._listen()  # LFS bytes come from another origin, as on the real hub

    @property
    def cdn_url(self) -> str:
        return self._origin(self._cdn)

    def _repo(self, handler: _Handler, ctx: Logged, repo_id: str) -> HubRepo | None:
        ctx.repo = repo_id
        repo = self.repos.get(repo_id)
        if repo is None:
            handler.reply_json(
                ctx,
                401,
                {"error": "Repository Not Found for url: " + handler.path},
                {"X-Error-Code": "RepoNotFound"},
            )
        return repo

    def _revision_ok(self, handler: _Handler, ctx: Logged, repo: HubRepo, rev: str) -> bool:
        if rev in ("main", repo.commit):
            return True
        handler.reply_json(
            ctx, 404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"}
        )
        return False

    def route(self, handler: _Handler, ctx: Logged) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path)
        query = parse_qs(split.query)
        if match := re.match(r"^/api/models/([^/]+/[^/]+)/revision/([^/]+)$", path):
            repo = self._repo(handler, ctx, match.group(1))
            if repo and self._revision_ok(handler, ctx, repo, match.group(2)):
                handler.reply_json(
                    ctx,
                    200,
                    {
                        "id": repo.repo_id,
                        "modelId": repo.repo_id,
                        "sha": repo.commit,
                        "private": False,
                        "siblings": [{"rfilename": p} for p in sorted(repo.files)],
                    },
                )
            return
        if match := re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?$", path):
            repo = self._repo(handler, ctx, match.group(1))
            if repo and self._revision_ok(handler, ctx, repo, match.group(2)):
                self._tree(handler, ctx, repo, match.group(2), query)
            return
        if match := re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path):
            repo = self._repo(handler, ctx, match.group(1))
            if repo is None or not self._revision_ok(handler, ctx, repo, match.group(2)):
                return
            file = repo.files.get(match.group(3))
            if file is None:
                ctx.file = match.group(3)
                handler.reply_json(ctx, 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                return
            common = {"X-Repo-Commit": repo.commit}
            if file.lfs and self.redirect_lfs:
                common |= {"X-Linked-Etag": f'"{file.sha256}"', "X-Linked-Size": str(file.size)}
                target = f"{self.cdn_url}/cdn-lfs/{repo.repo_id}/{file.sha256}?path={quote(file.path)}"
                handler.redirect(ctx, target, common)
                ctx.file = None  # the redirect itself sends no file bytes
                return
            etag = file.sha256 if file.lfs else file.git_sha1
            handler.send_file(ctx, repo, file, common | {"ETag": f'"{etag}"'})
            return
        if match := re.match(r"^/cdn-lfs/([^/]+/[^/]+)/([0-9a-f]{64})$", path):
            repo = self.repos.get(match.group(1))
            file = next(
                (f for f in (repo.files.values() if repo else ()) if f.sha256 == match.group(2)), None
            )
            if repo is None or file is None:
                handler.reply_json(ctx, 404, {"error": "no such object"})
                return
            handler.send_file(ctx, repo, file, {"ETag": f'"{file.sha256}"'})
            return
        handler.reply_json(ctx, 404, {"error": f"no route for {path}"})

    def _tree(
        self, handler: _Handler, ctx: Logged, repo: HubRepo, rev: str, query: Mapping[str, list[str]]
    ) -> None:
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path in sorted(repo.files):
            parents = PurePosixPath(path).parents
            for parent in reversed(list(parents)[:-1]):
                if str(parent) not in folders:
                    folders.add(str(parent))
                    if recursive or "/" not in str(parent):
                        entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": str(parent)})
            if not recursive and "/" in path:
                continue
            file = repo.files[path]
            entry: dict[str, Any] = {"type": "file", "path": path, "size": file.size}
            if file.lfs:
                entry["oid"] = hashlib.sha1(file.sha256.encode()).hexdigest()  # the pointer's blob id
                entry["lfs"] = {"oid": file.sha256, "size": file.size, "pointerSize": 134}
            else:
                entry["oid"] = file.git_sha1
            entries.append(entry)
        cursor = int(query.get("cursor", ["0"])[0])
        page = entries[cursor : cursor + self.page_size]
        headers = {}
        if cursor + self.page_size < len(entries):
            next_url = (
                f"{self.url}/api/models/{repo.repo_id}/tree/{rev}?recursive={str(recursive).lower()}"
                f"&cursor={cursor + self.page_size}"
            )
            headers["Link"] = f'<{next_url}>; rel="next"'
        handler.reply_json(ctx, 200, page, headers)


# ------------------------------------------------------------------------------------------
# ModelScope
# ------------------------------------------------------------------------------------------


class FakeModelScope(FakeHub):
    kind = "modelscope"

    def route(self, handler: _Handler, ctx: Logged) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path)
        query = parse_qs(split.query)
        if path == "/api/v1/repos/internalAccelerationInfo":
            handler.reply_json(ctx, 404, {"Code": 404, "Message": "not found", "Success": False})
            return
        match = re.match(r"^/api/v1/models/([^/]+/[^/]+)(/repo(/files)?)?$", path)
        if not match:
            handler.reply_json(ctx, 404, {"Code": 404, "Message": f"no route for {path}", "Success": False})
            return
        repo_id = match.group(1)
        ctx.repo = repo_id
        repo = self.repos.get(repo_id)
        if repo is None:
            handler.reply_json(
                ctx,
                404,
                {"Code": 10010205001, "Message": "模型不存在", "RequestId": "fake", "Success": False},
            )
            return
        revision = query.get("Revision", ["master"])[0]
        if revision not in ("master", repo.commit):
            handler.reply_json(
                ctx, 404, {"Code": 10010205002, "Message": "revision not found", "Success": False}
            )
            return
        if match.group(3):  # /repo/files
            handler.reply_json(ctx, 200, self._files_envelope(repo, query))
        elif match.group(2):  # /repo?FilePath=
            file_path = query.get("FilePath", [""])[0]
            file = repo.files.get(file_path)
            if file is None:
                ctx.file = file_path
                handler.reply_json(
                    ctx, 404, {"Code": 10010205003, "Message": "file not found", "Success": False}
                )
                return
            handler.send_file(ctx, repo, file, {"ETag": f'"{file.sha256}"'})
        else:
            handler.reply_json(
                ctx,
                200,
                {
                    "Code": 200,
                    "Success": True,
                    "Data": {"Path": repo_id.split("/")[0], "Name": repo_id.split("/")[1]},
                },
            )

    @staticmethod
    def _files_envelope(repo: HubRepo, query: Mapping[str, list[str]]) -> dict[str, Any]:
        recursive = query.get("Recursive", ["False"])[0].lower() == "true"
        root = query.get("Root", [""])[0].strip("/")
        files: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path in sorted(repo.files):
            if root and not path.startswith(root + "/"):
                continue
            rel_depth = path[len(root) + 1 :] if root else path
            for parent in reversed(list(PurePosixPath(path).parents)[:-1]):
                name = str(parent)
                if name not in folders and (not root or name.startswith(root + "/")):
                    folders.add(name)
                    files.append({"Name": parent.name, "Path": name, "Type": "tree", "Size": 0})
            if not recursive and "/" in rel_depth:
                continue
            file = repo.files[path]
            files.append(
                {
                    "Name": PurePosixPath(path).name,
                    "Path": path,
                    "Type": "blob",
                    "Size": file.size,
                    "Sha256": file.sha256,
                    "IsLFS": file.lfs,
                    "Revision": repo.commit,
                    "Mode": "33188",
                }
            )
        return {"Code": 200, "Success": True, "RequestId": "fake", "Data": {"Files": files}}


__all__ = [
    "Fault",
    "FakeHuggingFace",
    "FakeModelScope",
    "HubFile",
    "HubRepo",
    "Logged",
    "git_blob_sha1",
]
