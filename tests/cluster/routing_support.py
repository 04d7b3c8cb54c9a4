"""Helpers for the routing tests: real nodes on loopback with FakeHosts whose results name the
node that answered (``result["node"]`` is the FakeHost tag)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

from app.core.node import Node
from services.api import InferenceRequest, InferenceResult, ServiceState, ServiceStatus, ServiceUnavailable
from tests.cluster.conftest import node_config, node_id, wait_for
from tests.support.fake_host import FakeHost
from tests.support.sdk_like_client import SdkLikeClient

TEXT_TASK = "semantic_text_embed"


async def start_node(
    nodes: list[Node],
    mdns_type: str,
    tag: str,
    services: Sequence[str] = (),
    *,
    host: Any = None,
    **config: Any,
) -> Node:
    """A started node ``tag`` (node id ``tag*32``) hosting ``services`` on a FakeHost tagged
    ``tag.upper()`` (or ``host``)."""
    if host is None and services:
        host = FakeHost(services, tag=tag.upper())
    node = Node(node_config(mdns_type, **config), node_id=node_id(tag), host=host)
    nodes.append(node)
    await node.start()
    return node


def target(node: Node) -> str:
    return f"127.0.0.1:{node.snapshot().port}"


def client(node: Node) -> SdkLikeClient:
    return SdkLikeClient(target(node))


async def routable(node: Node, task: str = TEXT_TASK, peers: int = 1, timeout: float = 10.0) -> None:
    """Wait until ``node`` knows ``peers`` peers that can take ``task``."""
    await wait_for(
        lambda: node.cluster is not None and len(node.cluster.router.candidates(task)) >= peers,
        timeout=timeout,
        what=f"{peers} peer(s) of {node.snapshot().node_id[:4]} offering {task}",
    )


def host(node: Node) -> FakeHost:
    assert isinstance(node.host, FakeHost)
    return node.host


class RefusingHost(FakeHost):
    """Reports its services READY but answers every request UNAVAILABLE (a peer that cannot
    serve after all, e.g. its GPU went away)."""

    def __init__(self, services: Sequence[str], **kwargs: Any) -> None:
        super().__init__(services, **kwargs)
        self.refused = 0

    async def run(self, request: InferenceRequest) -> AsyncIterator[InferenceResult]:
        self.refused += 1
        raise ServiceUnavailable("this node cannot serve right now")
        yield  # an async generator, like the real host  # pragma: no cover


class LazyHost(FakeHost):
    """Reports its services NOT_LOADED (loads on first use) and serves them."""

    def statuses(self) -> list[ServiceStatus]:
        return [replace(s, state=ServiceState.NOT_LOADED) for s in super().statuses()]
