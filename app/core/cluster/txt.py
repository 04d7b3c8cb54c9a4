"""The TXT record of a Lumen node: what we publish, and the bounded parser for what peers publish.

Keys (DESIGN.md §3.3): ``v`` (node version) and ``runtime`` are what the Go SDK displays; ``id``
(persisted node id), ``api`` (node API version), ``svc`` (comma list of hosted services),
``state`` (``starting`` | ``ready``) and ``os`` are ours, for peers. The SDK never routes on TXT.

Everything a peer sends is untrusted: :func:`parse_txt` works on the raw record bytes, bounds the
number and size of strings, and checks the format of every known key. A record that breaks a rule
raises :class:`BadTxt` naming the rule; unknown keys are ignored (newer nodes may add some).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

TXT_VERSION = "v"
TXT_RUNTIME = "runtime"
TXT_ID = "id"
TXT_API = "api"
TXT_SERVICES = "svc"
TXT_STATE = "state"
TXT_OS = "os"

NODE_API_VERSION = "1"  # the lumen.node.v1 API
STATE_STARTING = "starting"
STATE_READY = "ready"

MAX_TXT_BYTES = 1300  # a whole TXT record (RFC 6763 §6.2 recommends <= 1300)
MAX_TXT_STRINGS = 32
MAX_KEY_BYTES = 16
MAX_SERVICES = 16

_PATTERNS: dict[str, re.Pattern[str]] = {
    TXT_ID: re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
    TXT_VERSION: re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,31}$"),
    TXT_RUNTIME: re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,47}$"),
    TXT_API: re.compile(r"^\d{1,3}(?:\.\d{1,3}){0,2}$"),
    TXT_STATE: re.compile(r"^[a-z][a-z_-]{0,15}$"),
    TXT_OS: re.compile(r"^[a-z][a-z0-9._-]{0,15}$"),
}
_SERVICE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_KEY_RE = re.compile(r"^[\x21-\x3c\x3e-\x7e]+$")  # printable ASCII except '=' (RFC 6763 §6.4)


class BadTxt(ValueError):
    """A peer's TXT record breaks a rule; the message says which."""


@dataclass(frozen=True)
class NodeTxt:
    """The validated TXT fields of one advertised Lumen node (missing keys are empty)."""

    node_id: str = ""
    version: str = ""
    runtime: str = ""
    api: str = ""
    services: tuple[str, ...] = ()
    state: str = ""
    os: str = ""


def build_txt(
    *,
    node_id: str,
    version: str,
    runtime: str,
    services: tuple[str, ...],
    state: str,
    os_name: str = "",
) -> dict[str, str]:
    """Our own TXT properties, in a stable order. Raises ValueError if we would publish junk."""
    txt = {
        TXT_VERSION: version,
        TXT_RUNTIME: runtime,
        TXT_ID: node_id,
        TXT_API: NODE_API_VERSION,
        TXT_SERVICES: ",".join(services),
        TXT_STATE: state,
    }
    if os_name:
        txt[TXT_OS] = os_name
    encoded = encode_txt(txt)
    parse_txt(encoded)  # what we publish must pass the parser our peers run
    return txt


def encode_txt(properties: Mapping[str, str]) -> bytes:
    """DNS TXT wire form: length-prefixed ``key=value`` strings."""
    out = bytearray()
    for key, value in properties.items():
        item = f"{key}={value}".encode()
        if len(item) > 255:
            raise ValueError(f"TXT entry {key!r} is longer than 255 bytes")
        out.append(len(item))
        out += item
    return bytes(out)


def split_txt(raw: bytes) -> list[bytes]:
    """The character-strings of a TXT record, bounded in count and total size."""
    if len(raw) > MAX_TXT_BYTES:
        raise BadTxt(f"TXT record is {len(raw)} bytes; at most {MAX_TXT_BYTES} are accepted")
    strings: list[bytes] = []
    index = 0
    while index < len(raw):
        length = raw[index]
        end = index + 1 + length
        if end > len(raw):
            raise BadTxt("TXT record is truncated (a string runs past the end)")
        strings.append(raw[index + 1 : end])
        index = end
        if len(strings) > MAX_TXT_STRINGS:
            raise BadTxt(f"TXT record has more than {MAX_TXT_STRINGS} strings")
    return strings


def parse_txt(raw: bytes) -> NodeTxt:
    """Validate a peer's raw TXT record. Raises :class:`BadTxt`."""
    values: dict[str, str] = {}
    for item in split_txt(raw):
        if not item:
            continue  # an empty string is how an empty TXT record is encoded
        key_bytes, sep, value_bytes = item.partition(b"=")
        if len(key_bytes) > MAX_KEY_BYTES or not key_bytes:
            raise BadTxt(f"TXT key of {len(key_bytes)} bytes; keys are 1-{MAX_KEY_BYTES} bytes")
        key = key_bytes.decode("ascii", errors="replace")
        if not _KEY_RE.match(key):
            raise BadTxt(f"TXT key {key!r} is not printable ASCII")
        key = key.lower()
        if key in values:
            continue  # RFC 6763 §6.4: only the first occurrence counts
        try:
            value = value_bytes.decode("utf-8") if sep else ""
        except UnicodeDecodeError:
            raise BadTxt(f"TXT value of {key!r} is not UTF-8") from None
        values[key] = value
    for key, pattern in _PATTERNS.items():
        value = values.get(key)
        if value is not None and value != "" and not pattern.match(value):
            raise BadTxt(f"TXT {key}={_clip(value)!r} does not match {pattern.pattern}")
    services = _parse_services(values.get(TXT_SERVICES, ""))
    return NodeTxt(
        node_id=values.get(TXT_ID, ""),
        version=values.get(TXT_VERSION, ""),
        runtime=values.get(TXT_RUNTIME, ""),
        api=values.get(TXT_API, ""),
        services=services,
        state=values.get(TXT_STATE, ""),
        os=values.get(TXT_OS, ""),
    )


def _parse_services(value: str) -> tuple[str, ...]:
    if not value:
        return ()
    items = [item.strip() for item in value.split(",")]
    if len(items) > MAX_SERVICES:
        raise BadTxt(f"TXT svc lists {len(items)} services; at most {MAX_SERVICES}")
    for item in items:
        if not _SERVICE_RE.match(item):
            raise BadTxt(f"TXT svc entry {_clip(item)!r} is not a service name ({_SERVICE_RE.pattern})")
    return tuple(dict.fromkeys(items))


def _clip(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[:limit] + "…"
