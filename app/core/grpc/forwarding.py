"""The hub's hook for serving requests through other nodes (the cluster's router implements it).

The Inference servicer knows nothing about peers. It holds an optional :class:`Forwarder` and

* asks it first, for every reassembled request, whether a peer should serve it
  (:meth:`Forwarder.forward`): the forwarder decides from the listener's :class:`HostView`
  (task not hosted here, or its service downloading/loading/failed/disabled), the request's hop
  marker and the peers it knows; when it forwards, it writes the peer's responses to the call's
  ``context`` itself and returns True; False means "answer locally" (the local answer, or the
  local error, stands);
* lets it add capabilities (:meth:`Forwarder.capabilities`) to StreamCapabilities and
  GetCapabilities (``node.advertise_cluster``).

A failure the forwarder raises goes through the hub's one status table (``status_map.py``):
a peer's status code arrives as :class:`~app.core.grpc.status_map.RelayedStatus` and passes
through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from app.core.grpc.host_view import HostView
from services.api import CapabilityInfo, InferenceRequest


class Forwarder(Protocol):
    async def forward(
        self, request: InferenceRequest, correlation_id: str, view: HostView, context: Any
    ) -> bool:
        """Serve ``request`` through a peer if ``view`` cannot: True when a peer answered (its
        responses were written to ``context``), False to serve it locally. Raises for a failure
        to report to the client."""
        ...

    def capabilities(self, local: Sequence[CapabilityInfo]) -> list[CapabilityInfo]:
        """``local`` plus whatever this node offers on behalf of its peers (each task once)."""
        ...

    def stands_in(self, service: str) -> bool:
        """Whether a usable peer would serve ``service`` now (so this node's own service still
        downloading or loading does not make the node unable to serve it)."""
        ...
