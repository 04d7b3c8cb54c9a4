"""Who may make node API control calls: peers on this machine, or callers with the admin token.

Inference is open on the LAN (the Go SDK has no auth); anything that changes the node is
reachable only from loopback (or a unix socket) or with ``node.admin_token`` sent as metadata
``authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from app.core.grpc.status_map import PermissionDenied


def peer_is_local(peer: str) -> bool:
    """True for gRPC peer strings of this machine: ``ipv4:127.0.0.1:5``, ``ipv6:[::1]:5``, ``unix:...``."""
    if peer.startswith("unix:") or peer.startswith("unix-abstract:"):
        return True
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        host = rest.rsplit(":", 1)[0]
    elif kind == "ipv6":
        host = rest.rsplit("]", 1)[0].lstrip("[") if rest.startswith("[") else rest.rsplit(":", 1)[0]
        host = host.split("%", 1)[0]
    else:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def authorize_control(
    peer: str, metadata: Iterable[tuple[str, str | bytes]] | None, admin_token: str | None
) -> None:
    """Raise :class:`PermissionDenied` unless the caller may change the node."""
    if peer_is_local(peer):
        return
    token = bearer_token(metadata)
    if admin_token and token is not None and hmac.compare_digest(token.encode(), admin_token.encode()):
        return
    if token is not None and admin_token:
        raise PermissionDenied(
            "the admin token is wrong; control calls need node.admin_token from the config"
        )
    how = (
        "send the admin token (node.admin_token) as metadata 'authorization: Bearer <token>'"
        if admin_token
        else "this node has no admin token configured (set node.admin_token to allow remote control)"
    )
    raise PermissionDenied(f"control calls are accepted only from this machine; {how}")
