"""Which addresses a node publishes (A/AAAA records) and which interfaces its mDNS sockets use.

Published addresses follow the gRPC bind address, because an address the listener does not
accept is useless to a peer:

* ``0.0.0.0`` → every IPv4 address of every interface (``ifaddr``), ``::`` → IPv4 and IPv6;
* a specific IP → just that IP; another host name → every interface address;
* loopback only when configured or when nothing else exists; IPv4 link-local only when nothing
  routable exists; IPv6 link-local never (it needs a scope id no record carries).

``node.mdns.addresses`` replaces all of this with an explicit list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

import ifaddr
from zeroconf import InterfaceChoice, InterfacesType

AddressSource = Callable[[], list[str]]


def interface_addresses() -> list[str]:
    """Every IP address of every interface of this machine (blocking: run in an executor)."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip
            if address not in found:
                found.append(address)
    return found


def publishable_addresses(
    bind_host: str,
    candidates: Sequence[str],
    *,
    include_loopback: bool = False,
) -> list[str]:
    """The addresses to publish for a listener bound to ``bind_host``, best first."""
    try:
        bound = ipaddress.ip_address(bind_host.strip("[]"))
    except ValueError:
        bound = None
    if bound is not None and not bound.is_unspecified:
        return [str(bound)]
    want_v6 = bound is not None and bound.version == 6  # "::" is dual-stack
    if bound is None:
        want_v6 = True
    parsed = []
    for text in candidates:
        try:
            parsed.append(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            continue
    routable = [a for a in parsed if not a.is_loopback and not a.is_link_local and not a.is_unspecified]
    v4 = [a for a in routable if a.version == 4]
    v6 = [a for a in routable if a.version == 6] if want_v6 else []
    chosen = v4 + v6
    if not chosen:
        chosen = [a for a in parsed if a.version == 4 and a.is_link_local]
    loopback = [a for a in parsed if a.is_loopback and (a.version == 4 or want_v6)]
    if include_loopback or not chosen:
        chosen += loopback or [ipaddress.ip_address("127.0.0.1")]
    return list(dict.fromkeys(str(a) for a in chosen))


def zeroconf_interfaces(setting: Sequence[str]) -> InterfacesType:
    """``node.mdns.interfaces`` → what ``AsyncZeroconf(interfaces=...)`` takes."""
    if not setting or setting[0] == "all":
        return InterfaceChoice.All
    if setting[0] == "default":
        return InterfaceChoice.Default
    return list(setting)


def sort_for_dialing(addresses: Sequence[str]) -> list[str]:
    """Peer addresses in the order worth trying: IPv4 routable, IPv6 routable, the rest."""

    def rank(text: str) -> tuple[int, int]:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return (9, 0)
        if address.is_loopback:
            return (3, 0)
        if address.is_link_local:
            return (2, 0)
        return (0 if address.version == 4 else 1, 0)

    return sorted(dict.fromkeys(addresses), key=rank)
