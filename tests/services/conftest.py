from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from services.api import HostSettings, ServiceState, ServiceStatus
from services.host import ServiceHost
from tests.support.tiny_models import TinyClip, write_bioclip_model, write_clip_model

CLIP_LABELS = ("cat", "dog", "bird", "car", "tree")


@pytest.fixture
def tiny_clip(tmp_path) -> TinyClip:
    return write_clip_model(tmp_path / "models", dataset="ImageNet_tiny", labels=CLIP_LABELS)


@pytest.fixture
def tiny_bioclip(tmp_path) -> TinyClip:
    return write_bioclip_model(tmp_path / "models")


@pytest.fixture
async def host_factory():
    """``make(specs, **settings)`` builds a ServiceHost; every host is stopped afterwards."""
    hosts: list[ServiceHost] = []

    def make(specs, registry=None, **settings) -> ServiceHost:
        host = ServiceHost(specs, HostSettings(**settings), registry=registry)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        await host.stop()


async def wait_for_state(
    host: ServiceHost, service: str, state: ServiceState, timeout: float = 5.0
) -> ServiceStatus:
    """Wait until ``service`` reports ``state`` (polling the loop, no sleeps in the hot path)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = next(s for s in host.statuses() if s.name == service)
        if status.state is state:
            return status
        if loop.time() > deadline:
            raise AssertionError(f"{service} stayed {status.state} ({status.reason}); wanted {state}")
        await asyncio.sleep(0.01)


Make = Callable[..., ServiceHost]
