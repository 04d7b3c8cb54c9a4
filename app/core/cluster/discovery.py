"""Browsing the Lumen mDNS types: resolve, validate and hand peer records to the peer table.

Every record a peer publishes is untrusted. A record is skipped (and logged once per name and
reason) when its instance name is too long, its port is invalid, it has no usable address or
its TXT breaks a rule of :func:`app.core.cluster.txt.parse_txt`. Our own records (TXT ``id`` =
our node id) are ignored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from app.core.cluster.addresses import sort_for_dialing
from app.core.cluster.naming import MAX_LABEL_BYTES, instance_label
from app.core.cluster.txt import BadTxt, NodeTxt, parse_txt
from app.core.tasks import TaskTracker

log = logging.getLogger(__name__)

MAX_ADDRESSES = 16
RESOLVE_TIMEOUT_MS = 3000
MAX_REPORTED = 512  # bad records remembered so each is logged once


@dataclass(frozen=True)
class PeerRecord:
    """One validated mDNS service record of a peer (one listener under one type)."""

    service_type: str
    name: str  # full name, "x._lumen._tcp.local."
    instance: str  # "x"
    server: str
    port: int
    addresses: tuple[str, ...]
    txt: NodeTxt

    @property
    def node_id(self) -> str:
        """The peer's node id; a node without TXT ``id`` (another implementation) is keyed by
        its instance name."""
        return self.txt.node_id or f"name:{self.instance}"


class RecordSink(Protocol):
    def upsert(self, record: PeerRecord) -> None: ...

    def remove(self, service_type: str, name: str) -> None: ...


class InvalidRecord(ValueError):
    pass


def record_from_info(info: AsyncServiceInfo, service_type: str) -> PeerRecord:
    """Validate a resolved service. Raises :class:`InvalidRecord` naming the broken rule."""
    instance = instance_label(info.name, service_type)
    if not instance or len(instance.encode("utf-8")) > MAX_LABEL_BYTES:
        raise InvalidRecord(f"instance name of {len(instance.encode())} bytes (1-{MAX_LABEL_BYTES})")
    port = info.port
    if port is None or not 1 <= port <= 65535:
        raise InvalidRecord(f"SRV port {port!r} is not 1-65535")
    addresses = _usable(info.parsed_addresses(IPVersion.All))
    if not addresses:
        raise InvalidRecord("no usable address (A/AAAA) record")
    try:
        txt = parse_txt(info.text or b"")
    except BadTxt as exc:
        raise InvalidRecord(str(exc)) from None
    return PeerRecord(
        service_type=service_type,
        name=info.name,
        instance=instance,
        server=(info.server or "").lower(),
        port=port,
        addresses=tuple(addresses),
        txt=txt,
    )


def _usable(addresses: Sequence[str]) -> list[str]:
    usable = []
    for text in addresses[: MAX_ADDRESSES * 4]:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if address.is_unspecified or address.is_multicast:
            continue
        if address.version == 6 and address.is_link_local:
            continue  # needs a scope id the record does not carry
        usable.append(str(address))
    return sort_for_dialing(usable)[:MAX_ADDRESSES]


class Discovery:
    """Browse ``types`` on ``aiozc`` and feed valid peer records into ``sink``."""

    def __init__(
        self,
        aiozc: AsyncZeroconf,
        types: Sequence[str],
        sink: RecordSink,
        *,
        own_node_id: str | None,
        own_server: str | None,
        tasks: TaskTracker,
        resolve_timeout_ms: int = RESOLVE_TIMEOUT_MS,
    ) -> None:
        self._aiozc = aiozc
        self._types = list(dict.fromkeys(types))
        self._sink = sink
        self._own_id = own_node_id
        self._own_server = (own_server or "").lower()
        self._tasks = tasks
        self._timeout_ms = resolve_timeout_ms
        self._browser: AsyncServiceBrowser | None = None
        self._resolving: dict[tuple[str, str], bool] = {}  # slot -> resolve again when done
        self._reported: OrderedDict[tuple[str, str], str] = OrderedDict()

    def start(self) -> None:
        self._browser = AsyncServiceBrowser(self._aiozc.zeroconf, self._types, handlers=[self._on_change])

    async def stop(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            await browser.async_cancel()

    # zeroconf calls handlers with these keyword names
    def _on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if self._browser is None:
            return
        if state_change is ServiceStateChange.Removed:
            self._sink.remove(service_type, name)
            return
        slot = (service_type, name)
        if slot in self._resolving:
            self._resolving[slot] = True
            return
        self._resolving[slot] = False
        self._tasks.spawn(f"mdns-resolve:{name}", self._resolve(service_type, name))

    async def _resolve(self, service_type: str, name: str) -> None:
        slot = (service_type, name)
        try:
            while True:
                info = AsyncServiceInfo(service_type, name)
                if await info.async_request(self._aiozc.zeroconf, self._timeout_ms):
                    self._accept(info, service_type)
                else:
                    log.debug("mDNS: %s did not resolve within %d ms", name, self._timeout_ms)
                if not self._resolving.get(slot):
                    break
                self._resolving[slot] = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a malformed packet must never kill discovery
            self._report(slot, f"could not be resolved: {exc}")
        finally:
            self._resolving.pop(slot, None)

    def _accept(self, info: AsyncServiceInfo, service_type: str) -> None:
        slot = (service_type, info.name)
        try:
            record = record_from_info(info, service_type)
        except InvalidRecord as exc:
            self._report(slot, str(exc))
            self._sink.remove(service_type, info.name)  # it may have been valid before
            return
        if self._own_id and record.txt.node_id == self._own_id:
            if self._own_server and record.server != self._own_server:
                self._report(
                    slot,
                    f"advertises our own node id {self._own_id} from host {record.server} "
                    "(a copied installation? delete its node_id file so it makes a new one)",
                )
            return
        self._reported.pop(slot, None)
        self._sink.upsert(record)

    def _report(self, slot: tuple[str, str], reason: str) -> None:
        if self._reported.get(slot) == reason:
            return
        self._reported[slot] = reason
        self._reported.move_to_end(slot)
        while len(self._reported) > MAX_REPORTED:
            self._reported.popitem(last=False)
        log.warning("mDNS: ignoring %s: %s", slot[1], reason)
