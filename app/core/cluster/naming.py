"""mDNS names: the stable instance name of a node and the host name its A records live under.

The automatic instance name is ``lumen-<hostname>-<first 8 hex of the persisted node id>``:
stable across restarts, unique on the LAN, at most 60 bytes (one DNS label, with room for the
``-2`` a name conflict adds). The host name (the SRV target) is the same string made DNS-safe,
under ``.local.``, so two nodes on one machine never share A records.
"""

from __future__ import annotations

import re
import socket

MAX_LABEL_BYTES = 63
AUTO_NAME_BYTES = 60  # leaves room for the "-2".."-99" a name conflict adds
SHORT_ID_CHARS = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def dns_label(text: str, fallback: str = "node") -> str:
    """``text`` as a DNS-safe label: letters, digits and '-', no leading/trailing '-'."""
    label = _UNSAFE.sub("-", text).strip("-")
    label = re.sub(r"-{2,}", "-", label)
    return label[:MAX_LABEL_BYTES].strip("-") or fallback


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 form fits in ``max_bytes``."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def short_hostname(hostname: str | None = None) -> str:
    name = hostname if hostname is not None else socket.gethostname()
    return dns_label(name.split(".")[0].lower(), fallback="host")


def auto_instance_name(node_id: str, hostname: str | None = None) -> str:
    """``lumen-<hostname>-<short id>``, within one DNS label."""
    short_id = dns_label(node_id.lower())[:SHORT_ID_CHARS]
    room = AUTO_NAME_BYTES - len("lumen-") - len("-") - len(short_id)
    host = truncate_utf8(short_hostname(hostname), room).strip("-") or "host"
    return f"lumen-{host}-{short_id}"


def derived_instance_name(base: str, suffix: str) -> str:
    """``<base>-<suffix>`` (e.g. an extra listener's name), shortening ``base`` to fit 63 bytes."""
    suffix = dns_label(suffix)
    room = MAX_LABEL_BYTES - len(suffix.encode()) - 1
    return f"{truncate_utf8(base, room).rstrip('-')}-{suffix}"


def host_name(node_id: str, hostname: str | None = None) -> str:
    """The SRV target ``lumen-<hostname>-<short id>.local.`` (always DNS-safe)."""
    return f"{dns_label(auto_instance_name(node_id, hostname))}.local."


def instance_label(full_name: str, service_type: str) -> str:
    """``"x._lumen._tcp.local."`` → ``"x"``."""
    suffix = "." + service_type
    return full_name[: -len(suffix)] if full_name.endswith(suffix) else full_name.split(".", 1)[0]
