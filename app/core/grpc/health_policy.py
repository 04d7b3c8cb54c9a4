"""Which ``grpc.health.v1`` status each hosted service's health name has.

The rule (docs/grpc.md, "Health"):

* READY and NOT_LOADED are SERVING: a NOT_LOADED model loads on the first request, so the
  service can be used right now (the request just waits for the load).
* LOADING keeps the previous decision: a load caused by demand (first request on a NOT_LOADED
  model, a reload after the idle TTL) stays SERVING, the service is usable meanwhile; a LOADING
  seen first, or after DOWNLOADING / FAILED (a host that refuses requests while it loads), is
  NOT_SERVING.
* LOADING at start — a service configured with ``preload`` that has not been READY yet — is
  NOT_SERVING ("warming"); so is its NOT_LOADED before the preload begins. The warming ends
  for good at the first state that is neither NOT_LOADED nor LOADING (READY, FAILED, ...).
* DOWNLOADING, FAILED and DISABLED are NOT_SERVING.

The overall name ``""`` is SERVING while the node is up (server.py), whatever the services do.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.api import ServiceState, ServiceStatus

SERVABLE_STATES = frozenset({ServiceState.READY, ServiceState.NOT_LOADED})
_WARMING_STATES = frozenset({ServiceState.NOT_LOADED, ServiceState.LOADING})


class ServiceHealth:
    """The per-service SERVING / NOT_SERVING decision (stateful only for start-up warming)."""

    def __init__(self, servable: frozenset[ServiceState] = SERVABLE_STATES) -> None:
        self._servable = servable
        self._warming: set[str] = set()
        self._last: dict[str, bool] = {}

    def warm_up(self, services: Iterable[str]) -> None:
        """``services`` preload now: NOT_SERVING until they are READY (or fail)."""
        self._warming.update(services)

    @property
    def warming(self) -> frozenset[str]:
        return frozenset(self._warming)

    def serving(self, status: ServiceStatus) -> bool:
        """Whether ``status`` means SERVING. Call it for every status change, in order."""
        if status.state not in _WARMING_STATES:
            self._warming.discard(status.name)
        if status.name in self._warming:
            serving = False
        elif status.state is ServiceState.LOADING:
            serving = self._last.get(status.name, False)
        else:
            serving = status.state in self._servable
        self._last[status.name] = serving
        return serving
