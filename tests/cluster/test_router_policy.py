"""The router's rules on their own: which peers, in what order, cooldowns, the request as the SDK
would send it, and the capabilities a node advertises for its cluster."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from app.core.cluster.router import (
    MAX_COOLDOWN_S,
    Local,
    Router,
    local_verdict,
)
from app.core.events import PeerInfo, PeerService
from app.core.grpc.chunks import CHUNK_BYTES, ChunkAssembler, request_messages
from app.core.grpc.host_view import HostView
from app.core.tasks import TaskTracker
from services.api import CapabilityInfo, InferenceRequest, ServiceState, TaskSpec
from tests.support.fake_host import FakeHost

MiB = 1024 * 1024


def peer(
    node_id: str,
    *services: tuple[str, str, tuple[str, ...]],
    in_flight: int = 0,
    rtt_ms: float | None = 1.0,
) -> PeerInfo:
    return PeerInfo(
        node_id=node_id,
        name=f"lumen-{node_id}",
        addresses=("127.0.0.1",),
        port=50051,
        services=tuple(PeerService(name=n, state=st, tasks=t) for n, st, t in services),
        in_flight=in_flight,
        rtt_ms=rtt_ms,
    )


@dataclass
class Table:
    """The part of the peer table the router reads."""

    rows: list[PeerInfo] = field(default_factory=list)
    caps: dict[str, tuple[CapabilityInfo, ...]] = field(default_factory=dict)
    outstanding: dict[str, int] = field(default_factory=dict)

    def peers(self) -> tuple[PeerInfo, ...]:
        return tuple(self.rows)

    def has_peers(self) -> bool:
        return bool(self.rows)

    def capabilities(self, node_id: str) -> tuple[CapabilityInfo, ...]:
        return self.caps.get(node_id, ())

    def add_in_flight(self, node_id: str, delta: int) -> None:
        self.outstanding[node_id] = self.outstanding.get(node_id, 0) + delta

    def in_flight(self, node_id: str) -> int:
        return self.outstanding.get(
            node_id, next((p.in_flight for p in self.rows if p.node_id == node_id), 0)
        )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def router(table: Table, clock: Clock | None = None, cooldown_s: float = 5.0) -> Router:
    return Router(
        table,  # type: ignore[arg-type]
        node_id="self",
        tasks=TaskTracker("test"),
        cooldown_s=cooldown_s,
        clock=clock or Clock(),
    )


TEXT = ("semantic_text_embed", "clip_text_embed")


def test_loaded_before_not_loaded_then_fewest_outstanding_then_lowest_rtt() -> None:
    table = Table(
        [
            peer("lazy", ("clip", "not_loaded", TEXT), rtt_ms=0.1),
            peer("busy", ("clip", "ready", TEXT), in_flight=3, rtt_ms=0.2),
            peer("far", ("clip", "ready", TEXT), in_flight=1, rtt_ms=9.0),
            peer("near", ("clip", "ready", TEXT), in_flight=1, rtt_ms=0.5),
            peer("unprobed", ("clip", "ready", TEXT), in_flight=1, rtt_ms=None),
            peer("loading", ("clip", "loading", TEXT)),
            peer("downloading", ("clip", "downloading", TEXT)),
            peer("failed", ("clip", "failed", TEXT)),
            peer("disabled", ("clip", "disabled", TEXT)),
            peer("other-task", ("ocr", "ready", ("ocr",))),
            peer("self", ("clip", "ready", TEXT)),  # never ourselves
        ]
    )
    order = [c.peer.node_id for c in router(table).candidates("semantic_text_embed")]
    assert order == ["near", "far", "unprobed", "busy", "lazy"]
    assert [c.peer.node_id for c in router(table).candidates("clip_text_embed")] == order  # aliases
    assert router(table).candidates("bioclip_classify") == []


def test_the_service_hint_breaks_ties_and_names_services_whose_tasks_are_unknown() -> None:
    both = peer("both", ("siglip", "ready", TEXT), ("clip", "ready", TEXT))
    (only,) = router(Table([both])).candidates("semantic_text_embed", "clip")
    assert only.service == "clip"
    (first,) = router(Table([both])).candidates("semantic_text_embed")
    assert first.service == "clip"  # no hint: by name
    # a peer that was not asked yet (no task list): only its service name can vouch for it
    txt_only = peer("txt", ("clip", "ready", ()))
    assert router(Table([txt_only])).candidates("semantic_text_embed") == []
    assert [c.peer.node_id for c in router(Table([txt_only])).candidates("semantic_text_embed", "clip")] == [
        "txt"
    ]


def test_cooldown_skips_a_failing_peer_and_doubles_up_to_a_minute() -> None:
    clock = Clock()
    table = Table([peer("b", ("clip", "ready", TEXT)), peer("c", ("clip", "ready", TEXT), rtt_ms=5.0)])
    r = router(table, clock, cooldown_s=2.0)
    assert [c.peer.node_id for c in r.candidates("semantic_text_embed")] == ["b", "c"]
    spans = [r._cool("b") for _ in range(8)]
    assert spans == [2.0, 4.0, 8.0, 16.0, 32.0, MAX_COOLDOWN_S, MAX_COOLDOWN_S, MAX_COOLDOWN_S]
    assert [c.peer.node_id for c in r.candidates("semantic_text_embed")] == ["c"]
    clock.now += MAX_COOLDOWN_S + 0.01
    assert not r.cooling("b")
    assert [c.peer.node_id for c in r.candidates("semantic_text_embed")] == ["b", "c"]
    assert r._cool("b") == MAX_COOLDOWN_S  # failing again soon after: still the long wait
    clock.now += 3 * MAX_COOLDOWN_S  # a failure long after the last cooldown starts over
    assert r._cool("b") == 2.0


def test_local_verdict_follows_the_service_state() -> None:
    host = FakeHost(["clip"])
    view = HostView(host)
    text = InferenceRequest("semantic_text_embed", b"x", "text/plain")
    assert local_verdict(view, text) is Local.SERVE
    assert local_verdict(view, InferenceRequest("ocr", b"x", "image/png")) is Local.CANNOT
    assert local_verdict(HostView(host, ("face",)), text) is Local.CANNOT  # not on this listener
    for state, verdict in [
        (ServiceState.NOT_LOADED, Local.SERVE),
        (ServiceState.LOADING, Local.WAIT),
        (ServiceState.DOWNLOADING, Local.CANNOT),
        (ServiceState.FAILED, Local.CANNOT),
        (ServiceState.DISABLED, Local.CANNOT),
    ]:
        host.hold("clip", state)
        assert local_verdict(view, text) is verdict, state


@pytest.mark.parametrize("size", [0, 5, MiB, MiB + 1, 3 * MiB + 17])
def test_forwarded_requests_are_sent_as_the_sdk_sends_them(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    request = InferenceRequest("semantic_image_embed", payload, "image/webp", {"service": "clip"})
    meta = {"service": "clip", "lumen.hop": "1"}
    messages = list(request_messages(request.task, request.payload, request.mime, meta))
    if size <= MiB:
        assert len(messages) == 1 and messages[0].total == 0 and messages[0].payload == payload
    else:
        assert len(messages) == -(-size // CHUNK_BYTES)
        assert all(len(m.payload) == CHUNK_BYTES for m in messages[:-1])
        assert [m.seq for m in messages] == list(range(len(messages)))
        assert [m.offset for m in messages] == [i * CHUNK_BYTES for i in range(len(messages))]
        assert {m.total for m in messages} == {len(messages)}
    assert {m.task for m in messages} == {"semantic_image_embed"} and {m.payload_mime for m in messages} == {
        "image/webp"
    }
    assert all(dict(m.meta) == meta and m.correlation_id == "" for m in messages)
    # and the hub's own reassembly takes them back byte for byte
    assembler = ChunkAssembler()
    done = [assembler.add(m) for m in messages]
    assert done[-1] and not any(done[:-1])
    assert assembler.request().payload == payload


def _cap(service: str, *tasks: str) -> CapabilityInfo:
    return CapabilityInfo(
        service_name=service,
        model_ids=(f"{service}-model",),
        runtime="onnxrt-cpu",
        max_concurrency=2,
        precisions=("fp32",),
        tasks=tuple(TaskSpec(t, ("image/webp",), "embedding_v1") for t in tasks),
    )


def test_cluster_capabilities_list_each_task_once() -> None:
    local = [
        CapabilityInfo(
            "ocr", ("ocr-model",), "onnxrt-cpu", 1, ("fp32",), (TaskSpec("ocr", ("image/png",), "ocr_v1"),)
        )
    ]
    table = Table(
        [
            peer(
                "b",
                ("clip", "ready", TEXT),
                ("ocr", "ready", ("ocr",)),
                ("face", "loading", ("face_detect",)),
            ),
            peer("c", ("clip", "ready", TEXT), ("bioclip", "not_loaded", ("bioclip_classify",))),
            peer("d", ("ocr", "ready", ("ocr", "ocr_v2"))),
        ],
        caps={
            "b": (_cap("clip", *TEXT), _cap("ocr", "ocr"), _cap("face", "face_detect")),
            "c": (_cap("clip", *TEXT, "clip_classify"), _cap("bioclip", "bioclip_classify")),
            "d": (_cap("ocr", "ocr", "ocr_v2"),),
        },
    )
    listed = router(table).capabilities(local)
    names = [c.service_name for c in listed]
    assert names == ["ocr", "clip", "bioclip"]  # face is loading at b: not offered
    tasks = [t.name for c in listed for t in c.tasks]
    assert len(tasks) == len(set(tasks))
    by_name = {c.service_name: c for c in listed}
    assert [t.name for t in by_name["clip"].tasks] == [*TEXT, "clip_classify"]  # b's, then c's extra one
    assert by_name["clip"].extra["lumen.served_by"] == "b,c"
    assert by_name["ocr"] == local[0]  # ours, unmarked: d's ocr (with ocr_v2) is not merged in
    assert by_name["bioclip"].extra["lumen.served_by"] == "c"
    assert router(Table()).capabilities(local) == local


def test_the_cooldown_setting_is_validated() -> None:
    from app.core.config import ConfigError, build_config

    assert (
        build_config({"node": {"cluster": {"forward_cooldown_s": 0.5}}}).node.cluster.forward_cooldown_s
        == 0.5
    )
    for bad in (0, -1, 61, "soon"):
        with pytest.raises(ConfigError, match="node.cluster.forward_cooldown_s"):
            build_config({"node": {"cluster": {"forward_cooldown_s": bad}}})
