"""mDNS advertisement of this node's listeners: register, update TXT/addresses, rename, goodbye.

One :class:`Advertiser` registers every advertised listener under each of its service types on
the node's single ``AsyncZeroconf``. Registration probes the name first (RFC 6762 §8.1); a name
another responder already holds is changed (``-2``, ``-3``...) and logged, never given up. TXT
and address changes re-announce the records in place (``async_update_service``). :meth:`stop`
sends goodbye packets (TTL 0) for everything, within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from zeroconf import BadTypeInNameException, NonUniqueNameException, ServiceNameAlreadyRegistered
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from app.core.cluster.naming import MAX_LABEL_BYTES, instance_label, truncate_utf8
from app.core.tasks import TaskTracker

log = logging.getLogger(__name__)

RETRY_DELAY_S = 5.0
NAME_CHECK_MS = 700  # shorter than zeroconf's ~1.2 s of probing
MAX_RENAMES = 50


@dataclass(frozen=True)
class AdvertSpec:
    """One listener to advertise. ``services`` None = every hosted service (the main listener)."""

    key: str  # stable id of the listener, e.g. "main" or "port:50061"
    name: str  # wanted instance name
    port: int
    types: tuple[str, ...]
    services: tuple[str, ...] | None = None
    advertise: bool = True  # False: listed in the broker feed only (its mDNS is switched off)


TxtSource = Callable[[AdvertSpec], dict[str, str]]


class Advertiser:
    def __init__(
        self,
        aiozc: AsyncZeroconf,
        specs: list[AdvertSpec],
        *,
        server: str,
        txt: TxtSource,
        addresses: list[str],
        tasks: TaskTracker,
    ) -> None:
        self._aiozc = aiozc
        self._specs = specs
        self._server = server
        self._txt = txt
        self._addresses = list(addresses)
        self._tasks = tasks
        self._registered: dict[tuple[str, str], AsyncServiceInfo] = {}
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._update_lock = asyncio.Lock()
        self._stopped = False
        self.registered_event = asyncio.Event()  # set once every registration went through

    # ---------------------------------------------------------------- views

    @property
    def addresses(self) -> list[str]:
        return list(self._addresses)

    def instance_names(self) -> dict[tuple[str, str], str]:
        """``{(listener key, service type): instance name}`` as advertised (or wanted so far)."""
        names: dict[tuple[str, str], str] = {}
        for spec in self._specs:
            for type_ in spec.types:
                info = self._registered.get((spec.key, type_))
                names[(spec.key, type_)] = instance_label(info.name, type_) if info else spec.name
        return names

    def registered_infos(self) -> list[AsyncServiceInfo]:
        return list(self._registered.values())

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Begin registering every (listener, type) in tracked background tasks."""
        for spec in self._specs:
            if not spec.advertise:
                continue
            for type_ in spec.types:
                slot = (spec.key, type_)
                self._pending[slot] = self._tasks.spawn(
                    f"mdns-register:{spec.key}:{type_}", self._register(spec, type_)
                )
        if not self._pending:
            self.registered_event.set()  # nothing to advertise

    async def stop(self, timeout: float = 1.0) -> None:
        """Goodbye packets for everything registered, within ``timeout`` seconds."""
        self._stopped = True
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()
        if not self._registered:
            return
        try:
            await asyncio.wait_for(self._aiozc.async_unregister_all_services(), timeout)
        except (asyncio.TimeoutError, OSError) as exc:
            log.warning("mDNS goodbye did not finish within %.1fs: %s", timeout, exc)
        self._registered.clear()

    # ---------------------------------------------------------------- registration

    async def _register(self, spec: AdvertSpec, type_: str) -> None:
        slot = (spec.key, type_)
        number = 1
        name = spec.name
        while not self._stopped:
            info = self._info(spec, type_, name)
            registering = asyncio.ensure_future(
                self._aiozc.async_register_service(info, allow_name_change=True)
            )
            # zeroconf's probe only notices a holder whose PTR is already in our cache; ask for
            # the name itself at the same time (one QU question, then QM)
            checking = asyncio.ensure_future(self._held_elsewhere(type_, name))
            try:
                await asyncio.wait({registering, checking}, return_when=asyncio.FIRST_COMPLETED)
                if not registering.done() and checking.result():
                    registering.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await registering
                    number, name = await self._next_name(spec, number)
                    continue
                announced = await registering
                renamed_by_zeroconf = instance_label(info.name, type_) != name
                if not renamed_by_zeroconf and await checking:  # taken while we probed
                    await self._aiozc.async_unregister_service(info)
                    number, name = await self._next_name(spec, number)
                    continue
            except (NonUniqueNameException, ServiceNameAlreadyRegistered, BadTypeInNameException):
                number, name = await self._next_name(spec, number)
                continue
            except asyncio.CancelledError:
                registering.cancel()
                raise
            except Exception as exc:  # network down, zeroconf not running...: keep trying
                log.error(
                    "mDNS: registering %s under %s failed (%s); retrying in %.0fs",
                    name,
                    type_,
                    exc,
                    RETRY_DELAY_S,
                )
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            finally:
                checking.cancel()
            actual = instance_label(info.name, type_)
            if actual != spec.name:
                log.warning(
                    "mDNS: the name %r is already used on the network for %s; advertising as %r",
                    spec.name,
                    type_,
                    actual,
                )
            self._registered[slot] = info
            log.info("mDNS: advertising %s port %d (%s)", info.name, spec.port, ", ".join(self._addresses))
            self._pending.pop(slot, None)
            if not self._pending:
                self.registered_event.set()
            await self.refresh()  # TXT or addresses may have changed while probing
            with contextlib.suppress(Exception):
                await announced
            return

    async def _next_name(self, spec: AdvertSpec, number: int) -> tuple[int, str]:
        """``<name>-2``, ``-3``...; after MAX_RENAMES tries, wait and start over (never give up)."""
        number += 1
        if number > MAX_RENAMES:
            log.error(
                "mDNS: no free instance name for %s after %d tries; retrying in %.0fs",
                spec.name,
                MAX_RENAMES,
                RETRY_DELAY_S,
            )
            await asyncio.sleep(RETRY_DELAY_S)
            number = 1
            return number, spec.name
        return number, _numbered(spec.name, number)

    async def _held_elsewhere(self, type_: str, name: str) -> bool:
        """Does another responder answer for ``name`` (a different host behind the SRV)?"""
        info = AsyncServiceInfo(type_, f"{name}.{type_}")
        try:
            if not await info.async_request(self._aiozc.zeroconf, NAME_CHECK_MS):
                return False
        except Exception as exc:
            log.debug("mDNS: checking whether %s is taken failed: %s", name, exc)
            return False
        taken = (info.server or "").lower() != self._server.lower()
        if taken:
            log.debug("mDNS: %s is held by %s", info.name, info.server)
        return taken

    def _info(self, spec: AdvertSpec, type_: str, name: str) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            type_,
            f"{name}.{type_}",
            port=spec.port,
            properties=self._txt(spec),
            server=self._server,
            parsed_addresses=self._addresses,
        )

    # ---------------------------------------------------------------- updates

    async def set_addresses(self, addresses: list[str]) -> None:
        if list(addresses) == self._addresses:
            return
        log.info("mDNS: addresses changed: %s -> %s", ", ".join(self._addresses), ", ".join(addresses))
        self._addresses = list(addresses)
        await self.refresh()

    async def refresh(self) -> None:
        """Re-announce every registration whose TXT or addresses differ from what is wanted."""
        async with self._update_lock:
            for spec in self._specs:
                for type_ in spec.types:
                    slot = (spec.key, type_)
                    current = self._registered.get(slot)
                    if current is None or self._stopped:
                        continue
                    wanted = self._info(spec, type_, instance_label(current.name, type_))
                    if (
                        wanted.text == current.text
                        and wanted.parsed_addresses() == current.parsed_addresses()
                    ):
                        continue
                    try:
                        await self._aiozc.async_update_service(wanted)
                    except Exception as exc:
                        log.error("mDNS: updating %s failed: %s", current.name, exc)
                        continue
                    self._registered[slot] = wanted


def _numbered(base: str, number: int) -> str:
    suffix = f"-{number}"
    return truncate_utf8(base, MAX_LABEL_BYTES - len(suffix)) + suffix
