"""The one HTTP client of the downloader (urllib3): timeouts, manual redirects, status mapping.

Retries are not done here: the manager retries whole transfers with backoff and resumes from the
bytes on disk, so a connection error simply raises :class:`TransientError`.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from app import __version__
from app.core.downloads.errors import SourceError, TransientError

MAX_REDIRECTS = 8
MAX_JSON_BYTES = 64 * 1024 * 1024
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"lumen-node/{__version__}"


class HttpStatusError(SourceError):
    def __init__(self, message: str, *, status: int, headers: dict[str, str], body: str) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.body = body


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _reason(exc: BaseException) -> str:
    """A short human reason: "Connection refused", "Read timed out. (read timeout=30)"..."""
    root: BaseException | None = exc
    while root is not None:
        if isinstance(root, OSError) and root.strerror:
            return root.strerror
        root = root.__cause__ or root.__context__
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.split("): ", 1)[-1]


class HttpClient:
    """Thread-safe; one per manager. ``read_timeout`` bounds the silence inside a response."""

    def __init__(self, *, connect_timeout: float, read_timeout: float, pool_size: int = 8) -> None:
        self._pool = urllib3.PoolManager(
            num_pools=16,
            maxsize=pool_size,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        )

    def request(
        self, url: str, *, what: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> urllib3.BaseHTTPResponse:
        """The final response after redirects (status not checked). ``what`` names the request in
        error messages ("listing of Lumilio-Photos/X")."""
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})}
        for _ in range(MAX_REDIRECTS + 1):
            try:
                resp = self._pool.request(
                    method, url, headers=sent, preload_content=False, redirect=False, decode_content=False
                )
            except Urllib3Error as exc:
                host = urlsplit(url).netloc
                raise TransientError(f"{what}: cannot reach {host}: {_reason(exc)}") from exc
            if resp.status in REDIRECT_STATUS and resp.headers.get("Location"):
                location = resp.headers["Location"]
                resp.drain_conn()
                resp.release_conn()
                url = urljoin(url, location)
                continue
            return resp
        raise SourceError(f"{what}: more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def check(resp: urllib3.BaseHTTPResponse, *, what: str, url: str) -> None:
        """Raise for a non-2xx response: TransientError for 429/5xx, HttpStatusError otherwise."""
        if 200 <= resp.status < 300:
            return
        try:
            body = resp.read(4096, decode_content=True).decode("utf-8", "replace")
        except Urllib3Error:
            body = ""
        finally:
            resp.close()  # never hand a connection with an unread body back to the pool
            resp.release_conn()
        headers = {k.lower(): v for k, v in resp.headers.items()}
        if resp.status in RETRYABLE_STATUS:
            raise TransientError(
                f"{what}: HTTP {resp.status} from {urlsplit(url).netloc}",
                retry_after=parse_retry_after(headers.get("retry-after")),
            )
        raise HttpStatusError(
            f"{what}: HTTP {resp.status} from {url}", status=resp.status, headers=headers, body=body.strip()
        )

    def get_json(self, url: str, *, what: str) -> tuple[Any, dict[str, str]]:
        """Decoded JSON body and the response headers (lower-case names)."""
        resp = self.request(url, what=what, headers={"Accept": "application/json"})
        self.check(resp, what=what, url=url)
        try:
            raw = resp.read(MAX_JSON_BYTES + 1, decode_content=True)
        except Urllib3Error as exc:
            raise TransientError(f"{what}: connection failed while reading: {_reason(exc)}") from exc
        finally:
            resp.release_conn()
        if len(raw) > MAX_JSON_BYTES:
            raise SourceError(f"{what}: answer larger than {MAX_JSON_BYTES} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(f"{what}: the answer of {url} is not JSON ({exc})") from exc
        return data, {k.lower(): v for k, v in resp.headers.items()}

    def open_range(self, url: str, *, what: str, size: int, offset: int) -> HttpByteStream:
        """GET ``url`` from ``offset`` of a ``size``-byte file, checking 206/Content-Range."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self.request(url, what=what, headers=headers)
        if resp.status == 416 and offset:
            resp.drain_conn()
            resp.release_conn()
            total = _range_total(resp.headers.get("Content-Range"))
            raise TransientError(
                f"{what}: server refused to resume at byte {offset}"
                + (f" (it has {total} bytes)" if total is not None else "")
                + "; starting again",
                retry_after=0.0,
            ) from RangeRefused(offset)
        self.check(resp, what=what, url=url)
        start = 0
        if resp.status == 206:
            parsed = _content_range(resp.headers.get("Content-Range"))
            if parsed is None:
                resp.release_conn()
                raise SourceError(f"{what}: 206 answer without a valid Content-Range")
            start, total = parsed
            if start != offset or (total is not None and total != size):
                resp.close()
                raise SourceError(
                    f"{what}: asked for bytes {offset}- of {size}, got "
                    f"{resp.headers.get('Content-Range')!r}; the file changed on the server"
                )
        else:
            length = resp.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) != size:
                resp.close()
                raise SourceError(
                    f"{what}: the server sends {length} bytes but the repository lists {size}; "
                    "the remote file is out of date or truncated"
                )
        return HttpByteStream(resp, start)

    def close(self) -> None:
        self._pool.clear()


class RangeRefused(Exception):
    """Marker cause of the 416 TransientError: the partial file must be discarded."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """``bytes a-b/total`` → (a, total or None)."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    first, _, _last = span.partition("-")
    try:
        return int(first), (None if total.strip() in ("", "*") else int(total))
    except ValueError:
        return None


def _range_total(value: str | None) -> int | None:
    if value and value.startswith("bytes */"):
        try:
            return int(value[8:])
        except ValueError:
            return None
    return None


class HttpByteStream:
    def __init__(self, resp: urllib3.BaseHTTPResponse, start: int) -> None:
        self._resp = resp
        self._eof = False
        self.start = start

    def read(self, size: int) -> bytes:
        try:
            data = self._resp.read1(size)
        except Urllib3Error as exc:
            raise TransientError(f"connection failed during the transfer: {_reason(exc)}") from exc
        except (OSError, ValueError, AttributeError) as exc:  # socket shut down by abort()
            raise TransientError(f"connection closed during the transfer: {exc}") from exc
        if not data:
            self._eof = True
        return data

    def close(self) -> None:
        if not self._eof:
            self._resp.close()  # a half-read body: drop the connection
        self._resp.release_conn()

    def abort(self) -> None:
        try:
            self._resp.shutdown()
        except Exception:
            pass
