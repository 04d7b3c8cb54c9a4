"""The :class:`~app.core.grpc.forwarding.Forwarder` a Node gives its Inference servicers.

The servicers are built before the cluster starts and outlive it on stop, so this adapter looks
the router up on every call: while no cluster runs (starting, stopping, mDNS off) it forwards
nothing and adds no capabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from app.core.cluster.router import Router
from app.core.grpc.host_view import HostView
from services.api import CapabilityInfo, InferenceRequest


class ClusterForwarder:
    """``settings()`` is the live ``node`` section (``forwarding``, ``advertise_cluster``), so a
    config reload switches forwarding without a restart. Peers' capabilities are only
    advertised while forwarding is on (a client could not use them otherwise)."""

    def __init__(self, router: Callable[[], Router | None], *, settings: Callable[[], Any]) -> None:
        self._router = router
        self._settings = settings

    async def forward(
        self, request: InferenceRequest, correlation_id: str, view: HostView, context: Any
    ) -> bool:
        router = self._router()
        if router is None or not self._settings().forwarding:
            return False
        return await router.forward(request, correlation_id, view, context)

    def capabilities(self, local: Sequence[CapabilityInfo]) -> list[CapabilityInfo]:
        settings = self._settings()
        router = self._router() if settings.forwarding and settings.advertise_cluster else None
        if router is None:
            return list(local)
        return router.capabilities(local)

    def stands_in(self, service: str) -> bool:
        router = self._router()
        if router is None or not self._settings().forwarding:
            return False
        return router.stands_in(service)
