"""The node's cluster part: one AsyncZeroconf, the advertisement, discovery, the peer table and
the broker feed, started after the gRPC listeners and stopped first.

:class:`Cluster` reads the node through a ``snapshot()`` callable (listeners with their bound
ports, node state, service statuses) and the event bus (``service`` and ``node`` topics re-derive
the TXT ``svc``/``runtime``/``state``). It writes back through ``on_peers`` (the node's
``snapshot().peers``) and :class:`~app.core.events.PeerChanged` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zeroconf.asyncio import AsyncZeroconf

from app import __version__
from app.core.cluster.addresses import (
    AddressSource,
    interface_addresses,
    publishable_addresses,
    zeroconf_interfaces,
)
from app.core.cluster.advertiser import Advertiser, AdvertSpec
from app.core.cluster.broker import BrokerFeed
from app.core.cluster.discovery import Discovery
from app.core.cluster.info_prober import NodeInfoProber
from app.core.cluster.naming import auto_instance_name, derived_instance_name, host_name
from app.core.cluster.peers import PeersCallback, PeerTable
from app.core.cluster.prober import PeerProber
from app.core.cluster.router import Router
from app.core.cluster.txt import STATE_READY, STATE_STARTING, build_txt
from app.core.events import EventBus, PeerInfo
from app.core.tasks import TaskTracker

if TYPE_CHECKING:
    from app.core.config import NodeConfig

log = logging.getLogger(__name__)

SDK_TYPE = "_lumen._tcp.local."  # what the Go SDK browses
NOT_READY_STATES = ("downloading", "loading")
TXT_COALESCE_S = 0.05
ZEROCONF_RETRY_S = 5.0


@dataclass(frozen=True)
class LocalStatus:
    """What our TXT says about this node."""

    services: tuple[str, ...]
    runtime: str
    state: str


def default_runtime(config: NodeConfig) -> str:
    """The TXT ``runtime`` before the service host reports one: from the configured models."""
    for service in config.services.values():
        if not service.enabled:
            continue
        for model in service.models.values():
            if model.runtime == "onnx":
                return "onnxrt"
            if model.runtime == "rknn":
                return f"rknn-{model.rknn_device}" if model.rknn_device else "rknn"
            return model.runtime
    return "onnxrt"


def hosted_services(config: NodeConfig) -> tuple[str, ...]:
    try:
        return tuple(spec.name for spec in config.service_specs())
    except Exception:  # never let a config view stop the announcement
        return config.enabled_services


def _value(state: Any) -> str:
    return str(getattr(state, "value", state))


class Cluster:
    def __init__(
        self,
        config: NodeConfig,
        *,
        node_id: str,
        snapshot: Callable[[], Any],
        bus: EventBus,
        on_peers: PeersCallback | None = None,
        prober: PeerProber | None = None,
        address_source: AddressSource = interface_addresses,
        hostname: str | None = None,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self._snapshot = snapshot
        self._bus = bus
        self._on_peers = on_peers
        self._address_source = address_source
        self._hostname = hostname
        self.tasks = TaskTracker("cluster")
        self._mdns = config.node.mdns
        self._server = host_name(node_id, hostname)
        self._statuses: dict[str, Any] = {}
        self._specs: list[AdvertSpec] = []
        self._addresses: list[str] = []
        self.aiozc: AsyncZeroconf | None = None
        self.advertiser: Advertiser | None = None
        self.discovery: Discovery | None = None
        cluster = config.node.cluster
        self.table = PeerTable(
            prober=prober or NodeInfoProber(),
            tasks=self.tasks,
            bus=bus,
            type_order=self._mdns.types,
            probe_interval_s=cluster.probe_interval_s,
            probe_timeout_s=cluster.probe_timeout_s,
            expiry_s=cluster.expiry_s,
            on_peers=on_peers,
        )
        self.router = Router(
            self.table,
            node_id=node_id,
            tasks=self.tasks,
            bus=bus,
            cooldown_s=cluster.forward_cooldown_s,
        )
        self.broker: BrokerFeed | None = None
        self._txt_dirty = asyncio.Event()
        self._started = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            await self._start()
        except BaseException:
            await self.stop(timeout=0.5)
            raise

    async def _start(self) -> None:
        self._specs = self._advert_specs()
        self._addresses = await self._current_addresses()
        http_port = self.config.node.http_port
        if http_port:
            self.broker = BrokerFeed(self.config.node.host, http_port, self.broker_nodes)
            await self.broker.start()
            self.table.add_listener(self.broker.notify)
        self.router.start()
        self.tasks.spawn("cluster:watch-node", self._watch_node())
        self.tasks.spawn("cluster:txt-updater", self._txt_updater())
        if not self._mdns.enabled:
            log.info("mDNS is off (node.mdns.enabled: false): not advertising, not browsing")
            return
        self.tasks.spawn("cluster:mdns", self._run_mdns())

    async def stop(self, timeout: float = 1.5) -> None:
        """Goodbye first (bounded), then browsing, probing, the broker feed, the sockets."""
        if not self._started:
            return
        self._started = False
        if self.advertiser is not None:
            await self.advertiser.stop(timeout=timeout)
        if self.discovery is not None:
            with contextlib.suppress(Exception):
                await self.discovery.stop()
        await self.tasks.close(timeout=timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.table.stop(), timeout)
        await self.router.close(timeout=timeout)
        if self.broker is not None:
            await self.broker.stop(timeout=timeout)
        aiozc, self.aiozc = self.aiozc, None
        if aiozc is not None:
            try:
                await asyncio.wait_for(aiozc.async_close(), timeout)
            except (asyncio.TimeoutError, Exception) as exc:
                log.warning("closing mDNS sockets: %s", exc)

    # ---------------------------------------------------------------- mDNS

    async def _run_mdns(self) -> None:
        """Open the zeroconf sockets (retrying while the network is not there), then advertise,
        browse, probe and watch the interfaces."""
        interfaces = zeroconf_interfaces(self._mdns.interfaces)
        while self.aiozc is None:
            try:
                self.aiozc = AsyncZeroconf(interfaces=interfaces)
            except OSError as exc:
                log.error(
                    "mDNS: cannot open sockets on interfaces %s (%s); retrying in %.0fs. "
                    "In a network without a default route use node.mdns.interfaces: all "
                    "or a list of this machine's addresses.",
                    list(self._mdns.interfaces),
                    exc,
                    ZEROCONF_RETRY_S,
                )
                await asyncio.sleep(ZEROCONF_RETRY_S)
        self.advertiser = Advertiser(
            self.aiozc,
            self._specs,
            server=self._server,
            txt=self._txt_for,
            addresses=self._addresses,
            tasks=self.tasks,
        )
        self.advertiser.start()
        self.discovery = Discovery(
            self.aiozc,
            self._mdns.types,
            self.table,
            own_node_id=self.node_id,
            own_server=self._server,
            tasks=self.tasks,
        )
        self.discovery.start()
        self.table.start()
        await self._watch_interfaces()

    async def _watch_interfaces(self) -> None:
        while True:
            await asyncio.sleep(self._mdns.interface_poll_s)
            try:
                addresses = await self._current_addresses()
            except Exception as exc:
                log.warning("mDNS: listing interfaces failed: %s", exc)
                continue
            if addresses == self._addresses:
                continue
            self._addresses = addresses
            if self._mdns.interfaces[0] in ("all", "default") and self.aiozc is not None:
                with contextlib.suppress(Exception):  # join the multicast group on new interfaces
                    await self.aiozc.async_update_interfaces()
            if self.advertiser is not None:
                await self.advertiser.set_addresses(addresses)
            if self.broker is not None:
                self.broker.notify()

    async def _current_addresses(self) -> list[str]:
        if self._mdns.addresses:
            return list(self._mdns.addresses)
        loop = asyncio.get_running_loop()
        candidates = await loop.run_in_executor(None, self._address_source)
        return publishable_addresses(
            self.config.node.host, candidates, include_loopback=self._mdns.include_loopback
        )

    # ---------------------------------------------------------------- what we advertise

    @property
    def main_instance_name(self) -> str:
        return self._specs[0].name if self._specs else auto_instance_name(self.node_id, self._hostname)

    def _advert_specs(self) -> list[AdvertSpec]:
        """One spec per listener to advertise: the main one (always in the broker feed, on mDNS
        unless its mDNS is off), extra ones when their ``server.mdns.enabled``; ports are the
        bound ones from the snapshot."""
        snap = self._snapshot()
        bound = [li.port for li in getattr(snap, "listeners", ())]
        auto = auto_instance_name(self.node_id, self._hostname)
        specs: list[AdvertSpec] = []
        for index, listener in enumerate(self.config.listeners()):
            port = bound[index] if index < len(bound) else listener.port
            if listener.is_main:
                name = listener.mdns_name or auto
                specs.append(AdvertSpec("main", name, port, listener.mdns_types, None, listener.mdns_enabled))
            elif listener.mdns_enabled:
                services = listener.services or ()
                name = listener.mdns_name or derived_instance_name(auto, "-".join(services))
                specs.append(AdvertSpec(f"port:{port}", name, port, listener.mdns_types, services))
        return specs

    def local_status(self) -> LocalStatus:
        snap = self._snapshot()
        statuses = {s.name: s for s in getattr(snap, "services", ())}
        statuses.update(self._statuses)
        services = tuple(statuses) or hosted_services(self.config)
        runtime = next((s.runtime for s in statuses.values() if getattr(s, "runtime", "")), "")
        running = _value(getattr(snap, "state", "")) == "running"
        busy = any(_value(s.state) in NOT_READY_STATES for s in statuses.values())
        return LocalStatus(
            services=services,
            runtime=runtime or default_runtime(self.config),
            state=STATE_READY if running and not busy else STATE_STARTING,
        )

    def _txt_for(self, spec: AdvertSpec) -> dict[str, str]:
        status = self.local_status()
        services = spec.services if spec.services is not None else status.services
        return build_txt(
            node_id=self.node_id,
            version=__version__,
            runtime=status.runtime,
            services=services,
            state=status.state,
            os_name=platform.system().lower(),
        )

    async def _watch_node(self) -> None:
        async for event in self._bus.subscribe():
            topic = getattr(event, "topic", "")
            if topic == "service":
                status = getattr(event, "status", None)
                if status is not None and getattr(status, "name", None):
                    self._statuses[status.name] = status
                self._txt_dirty.set()
            elif topic == "node":
                self._txt_dirty.set()

    async def _txt_updater(self) -> None:
        while True:
            await self._txt_dirty.wait()
            await asyncio.sleep(TXT_COALESCE_S)  # one re-announcement for a burst of changes
            self._txt_dirty.clear()
            if self.advertiser is not None:
                await self.advertiser.refresh()
            if self.broker is not None:
                self.broker.notify()

    # ---------------------------------------------------------------- broker feed

    def broker_nodes(self, local_host: str | None = None) -> list[dict[str, Any]]:
        """Every node this node knows (itself first) in the SDK's broker snapshot form."""
        nodes: list[dict[str, Any]] = []
        seen: set[str] = set()

        def add(node_id: str, host: str, port: int, version: str, runtime: str) -> None:
            if not node_id or not host or node_id in seen:
                return
            seen.add(node_id)
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            txt = {key: value for key, value in (("v", version), ("runtime", runtime)) if value}
            nodes.append({"node_id": node_id, "address": address, "txt": txt})

        status = self.local_status()
        names = self.advertiser.instance_names() if self.advertiser else {}
        own_host = self._own_host(local_host)
        for spec in self._specs:
            if spec.key != "main" and not self._mdns.enabled:
                continue
            type_ = SDK_TYPE if SDK_TYPE in spec.types else spec.types[0]
            add(names.get((spec.key, type_), spec.name), own_host, spec.port, __version__, status.runtime)
        for peer in self.table.peers():
            for port, instance in _peer_listeners(peer, self._mdns.types):
                host = peer.addresses[0] if peer.addresses else ""
                add(instance, host, port, peer.version, peer.runtime)
        return nodes

    def _own_host(self, local_host: str | None) -> str:
        bind = self.config.node.host
        try:
            bound = ipaddress.ip_address(bind.strip("[]"))
        except ValueError:
            bound = None
        if bound is not None and not bound.is_unspecified:
            return str(bound)
        if local_host:
            try:
                address = ipaddress.ip_address(local_host.split("%", 1)[0])
            except ValueError:
                address = None
            if address is not None:
                mapped = getattr(address, "ipv4_mapped", None)
                return str(mapped or address)
        return self._addresses[0] if self._addresses else "127.0.0.1"


def _peer_listeners(peer: PeerInfo, type_order: tuple[str, ...]) -> list[tuple[int, str]]:
    """``(port, instance name)`` per listener of a peer, the name under the SDK's type if any."""
    by_port: dict[int, tuple[int, str]] = {}
    order = [SDK_TYPE, *type_order]
    for endpoint in peer.endpoints:
        rank = order.index(endpoint.service_type) if endpoint.service_type in order else len(order)
        current = by_port.get(endpoint.port)
        if current is None or rank < current[0]:
            by_port[endpoint.port] = (rank, endpoint.instance)
    if not by_port:
        return [(peer.port, peer.name)]
    main_first = sorted(by_port.items(), key=lambda item: (item[0] != peer.port, item[0]))
    return [(port, name) for port, (_, name) in main_first]
