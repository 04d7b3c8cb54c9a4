"""The default prober against real gRPC servers on loopback: a Lumen node (node API + hub), and a
node that only speaks the hub and grpc.health.v1 (like the older Python Lumen)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from app import __version__
from app.core.cluster.info_prober import NodeInfoProber
from app.core.cluster.prober import ProbeFailed, ProbeTarget
from app.core.grpc.host_view import HostView
from app.core.grpc.inference import InferenceServicer, install_inference
from app.core.grpc.server import GrpcListener
from app.core.node import Node
from services.api import CapabilityInfo, ServiceState
from tests.cluster.conftest import node_config, node_id
from tests.support.fake_host import FakeHost

pytestmark = pytest.mark.timeout(30)


def _target(port: int, services: Sequence[str] = (), state: str = "ready") -> ProbeTarget:
    return ProbeTarget(
        node_id="p" * 32, addresses=("127.0.0.1",), port=port, services=tuple(services), state=state
    )


async def test_a_lumen_node_is_described_by_its_node_info_and_capabilities(
    nodes: list[Node], mdns_type: str
) -> None:
    fake = FakeHost(["clip", "face"], tag="P")
    node = Node(node_config(mdns_type, mdns={"enabled": False}), node_id=node_id("e"), host=fake)
    nodes.append(node)
    await node.start()
    fake.hold("face", ServiceState.LOADING)
    prober = NodeInfoProber()
    try:
        result = await prober.probe(_target(node.snapshot().port, ["clip", "face"]), 5.0)
    finally:
        await prober.close()
    assert result.address == "127.0.0.1" and result.rtt_ms > 0
    assert result.version == __version__ and result.os == "linux"
    assert result.accelerators is not None  # known (possibly empty: CPU only)
    services = {s.name: s for s in result.services or ()}
    assert [(n, s.state) for n, s in services.items()] == [("clip", "ready"), ("face", "loading")]
    assert services["clip"].tasks == (
        "semantic_text_embed",
        "clip_text_embed",
        "semantic_image_embed",
        "clip_image_embed",
        "clip_classify",
    )
    assert services["clip"].model_ids == ("clip-fake-P",) and services["clip"].runtime == "fake-cpu"
    caps = {c.service_name: c for c in result.capabilities or ()}
    assert list(caps) == ["clip", "face"]
    embed = next(t for t in caps["clip"].tasks if t.name == "semantic_image_embed")
    assert embed.output_schema == "embedding_v1" and "image/webp" in embed.input_mimes


class AdvertisesAPeer:
    """A forwarder that adds a capability on behalf of a peer (``node.advertise_cluster``)."""

    async def forward(self, *args: object) -> bool:
        return False

    def capabilities(self, local: Sequence[CapabilityInfo]) -> list[CapabilityInfo]:
        bioclip = FakeHost(["bioclip"]).capabilities()[0]
        return [*local, replace(bioclip, extra={"lumen.served_by": "q" * 32})]

    def stands_in(self, service: str) -> bool:
        return False


async def test_a_node_without_the_node_api_falls_back_to_health_names() -> None:
    fake = FakeHost(["clip", "ocr"], tag="old")
    servicer = InferenceServicer(HostView(fake), forwarder=AdvertisesAPeer())
    listener = GrpcListener(
        "127.0.0.1", 0, installers=[install_inference(servicer)], health_names=["clip", "ocr"]
    )
    port = await listener.start()
    await listener.set_serving("clip", True)  # ocr stays NOT_SERVING: still loading
    prober = NodeInfoProber()
    try:
        result = await prober.probe(_target(port, ["clip"], state="starting"), 5.0)
        again = await prober.probe(_target(port, ["clip"], state="starting"), 5.0)
    finally:
        await prober.close()
        await listener.stop(0)
    services = {s.name: s for s in result.services or ()}
    # TXT named only clip; ocr is known from the capabilities, its state from its health name
    assert [(n, s.state) for n, s in services.items()] == [("clip", "ready"), ("ocr", "loading")]
    assert services["ocr"].tasks == ("ocr",) and services["clip"].model_ids == ("clip-fake-old",)
    assert result.accelerators is None and result.os is None and result.version is None  # TXT stays
    # what it offers for its peers is not its own
    assert [c.service_name for c in result.capabilities or ()] == ["clip", "ocr"]
    assert again.services == result.services


async def test_a_node_that_does_not_answer_fails_the_probe() -> None:
    from tests.core.conftest import free_port

    prober = NodeInfoProber()
    try:
        with pytest.raises(ProbeFailed):
            await prober.probe(_target(free_port()), 1.0)
    finally:
        await prober.close()
