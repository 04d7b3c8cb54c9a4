"""A listener's view of the service host: every service (main port) or only some (extra ports).

Extra listeners from the config (``services.<name>.server.port``) serve only their services; the
view filters capabilities and statuses and refuses tasks of other services with NOT_FOUND. With
no host at all the node hosts nothing: capabilities are empty and every task is NOT_FOUND.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from services.api import (
    CapabilityInfo,
    InferenceRequest,
    InferenceResult,
    ServiceHostProtocol,
    ServiceStatus,
    TaskNotFound,
    TaskSpec,
)


class HostView:
    def __init__(self, host: ServiceHostProtocol | None, services: tuple[str, ...] | None = None) -> None:
        self.host = host
        self.only = services

    def allows(self, service: str) -> bool:
        return self.only is None or service in self.only

    def capabilities(self) -> list[CapabilityInfo]:
        if self.host is None:
            return []
        return [c for c in self.host.capabilities() if self.allows(c.service_name)]

    def statuses(self) -> list[ServiceStatus]:
        if self.host is None:
            return []
        return [s for s in self.host.statuses() if self.allows(s.name)]

    def status(self, service: str) -> ServiceStatus | None:
        return next((s for s in self.statuses() if s.name == service), None)

    def service_names(self) -> tuple[str, ...]:
        if self.host is None:
            return ()
        names = [c.service_name for c in self.capabilities()]
        names += [s.name for s in self.statuses() if s.name not in names]
        return tuple(names)

    def task_names(self) -> list[str]:
        return [
            name for cap in self.capabilities() for spec in cap.tasks for name in (spec.name, *spec.aliases)
        ]

    def resolve(self, task: str, service_hint: str | None = None) -> tuple[str, TaskSpec]:
        """``(service, spec)`` for ``task`` among this view's services; the hint only breaks ties."""
        if self.host is None:
            raise TaskNotFound(f"this node hosts no services, so no task {task!r}")
        try:
            service, spec = self.host.resolve(task, service_hint)
            if self.allows(service):
                return service, spec
            for candidate in self.only or ():
                service, spec = self.host.resolve(task, candidate)
                if self.allows(service):
                    return service, spec
        except TaskNotFound:
            pass
        offered = ", ".join(sorted(set(self.task_names()))) or "none"
        where = "this node" if self.only is None else f"this port (services {', '.join(self.only)})"
        raise TaskNotFound(f"no service on {where} offers task {task!r}; tasks offered: {offered}")

    def run(self, request: InferenceRequest) -> AsyncIterator[InferenceResult]:
        assert self.host is not None, "resolve() first"
        return self.host.run(request)
