"""Which addresses a node publishes (A/AAAA records) and which interfaces its mDNS sockets use.

Published addresses follow the gRPC bind address, because an address the listener does not
accept is useless to a peer:

* ``0.0.0.0`` → every IPv4 address of every interface (``ifaddr``), ``::`` → IPv4 and IPv6;
* a specific IP → just that IP; another host name → every interface address;
* loopback only when configured or when nothing else exists; IPv4 link-local only when nothing
  routable exists; IPv6 link-local never (it needs a scope id no record carries);
* addresses of virtual bridges and VPN tunnels (Docker's ``docker0``/``br-…``/``veth…``,
  libvirt, VirtualBox, VMware, Hyper-V's ``vEthernet``, WireGuard, Tailscale, ZeroTier, macOS
  ``utun``) only when no other interface has one: a LAN peer cannot reach them, and
  the Go SDK dials the first address of a record, so ``172.17.0.1`` (which sorts before
  ``192.168.…``) would send every Lumilio request to a dead end. (A macOS ``bridge0`` is kept:
  it is the Thunderbolt bridge between Macs.)

``node.mdns.addresses`` replaces all of this with an explicit list.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence

import ifaddr
from zeroconf import InterfaceChoice, InterfacesType

AddressSource = Callable[[], list[str]]


VIRTUAL_INTERFACE = re.compile(
    r"^(docker|br-|veth|virbr|vnet|vmnet|vboxnet|lxcbr|lxdbr|cni|flannel|cali|podman|"
    r"vethernet|utun|tun|tap|wg|tailscale|zt)",
    re.IGNORECASE,
)


def is_virtual_interface(name: str) -> bool:
    """A container bridge, VM network or VPN tunnel, by its interface name."""
    return bool(VIRTUAL_INTERFACE.match(name.strip()))


def lan_first_addresses(adapters: Iterable[tuple[str, Sequence[str]]]) -> list[str]:
    """The addresses of ``(interface name, addresses)`` pairs, leaving out virtual interfaces'
    addresses when any other non-loopback interface has one."""
    physical: list[str] = []
    virtual: list[str] = []
    loopback: list[str] = []
    for name, addresses in adapters:
        for text in addresses:
            try:
                is_loopback = ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
            except ValueError:
                continue
            bucket = loopback if is_loopback else virtual if is_virtual_interface(name) else physical
            bucket.append(text)
    chosen = physical if physical else virtual
    return list(dict.fromkeys(chosen + loopback))


def interface_addresses() -> list[str]:
    """Every IP address of this machine's interfaces, virtual ones only when nothing else has
    an address (blocking: run in an executor)."""
    adapters = []
    for adapter in ifaddr.get_adapters():
        name = adapter.nice_name or adapter.name
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        ips = [ip.ip[0] if isinstance(ip.ip, tuple) else ip.ip for ip in adapter.ips]
        adapters.append((str(name), ips))
    return lan_first_addresses(adapters)


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
