"""Request counters of the hub (node-wide and per service), shown by the node API and the CLI."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class CounterSet:
    total: int = 0
    ok: int = 0
    failed: int = 0
    in_flight: int = 0
    by_code: Counter[str] = field(default_factory=Counter)

    def copy(self) -> CounterSet:
        return CounterSet(self.total, self.ok, self.failed, self.in_flight, Counter(self.by_code))


class RequestCounters:
    """Counts Infer streams. Used from the event loop thread only (no locking needed)."""

    def __init__(self) -> None:
        self.node = CounterSet()
        self.services: dict[str, CounterSet] = {}

    def track(self) -> RequestTrack:
        self.node.total += 1
        self.node.in_flight += 1
        return RequestTrack(self)

    def for_service(self, name: str) -> CounterSet:
        return self.services.setdefault(name, CounterSet())


class RequestTrack:
    """One request's entry: attribute it to a service once resolved, finish it exactly once."""

    def __init__(self, counters: RequestCounters) -> None:
        self._counters = counters
        self._service: CounterSet | None = None
        self._done = False

    def attribute(self, service: str) -> None:
        if self._service is None:
            self._service = self._counters.for_service(service)
            self._service.total += 1
            self._service.in_flight += 1

    def finish(self, code: str | None) -> None:
        """``code`` None = success, else the status code name (``INVALID_ARGUMENT`` ...)."""
        if self._done:
            return
        self._done = True
        for counter in (self._counters.node, self._service):
            if counter is None:
                continue
            counter.in_flight -= 1
            if code is None:
                counter.ok += 1
            else:
                counter.failed += 1
                counter.by_code[code] += 1
