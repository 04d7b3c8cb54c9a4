"""The default peer prober: liveness and RTT from ``grpc.health.v1``, then what the peer offers.

Per probe, on one kept-open channel per address:

1. ``grpc.health.v1`` Check of the whole node (as :class:`HealthProber`): the RTT figure (a warm
   channel, a call the peer answers without work), NOT_SERVING = shutting down = failure;
2. at the same time ``lumen.node.v1`` GetNodeInfo (services with state, models, runtime and tasks;
   accelerators, OS, version) and ``home_native.v1`` StreamCapabilities (the tasks with their
   mimes and limits, kept for ``node.advertise_cluster``).

A peer without the node API (e.g. the older Python Lumen) answers GetNodeInfo with UNIMPLEMENTED:
its service states then come from its per-service health names, as with :class:`HealthProber`,
and its tasks from StreamCapabilities. Capabilities a peer offers on behalf of *its* peers
(``extra["lumen.served_by"]``) are not the peer's own and are left out, so two nodes that both
advertise the cluster never take each other's word for a service neither hosts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2_grpc

from app.core.cluster.prober import (
    HealthProber,
    ProbeResult,
    ProbeTarget,
)
from app.core.events import PeerService
from proto.gen.home_native.v1 import ml_service_pb2 as hub_pb
from proto.gen.home_native.v1 import ml_service_pb2_grpc as hub_grpc
from proto.gen.lumen.node.v1 import node_pb2 as node_pb
from proto.gen.lumen.node.v1 import node_pb2_grpc as node_grpc
from services.api import PROTOCOL_VERSION, CapabilityInfo, TaskSpec

log = logging.getLogger(__name__)

SERVED_BY_EXTRA = "lumen.served_by"  # Capability.extra key of capabilities relayed for a peer
NO_NODE_API_RECHECK_S = 60.0  # a peer without the node API is asked again this often (upgrades)
MAX_CAPABILITIES = 32  # an untrusted peer cannot make us keep more than this
MAX_TASKS = 64
SCHEMA_PREFIX = "application/json;schema="


def capability_from_message(message: hub_pb.Capability) -> CapabilityInfo:
    """A peer's ``Capability`` as a :class:`CapabilityInfo` (one TaskSpec per IOTask, aliases
    included: on the wire each alias is its own IOTask)."""
    tasks: list[TaskSpec] = []
    for task in list(message.tasks)[:MAX_TASKS]:
        output = task.output_mimes[0] if task.output_mimes else ""
        schema = output[len(SCHEMA_PREFIX) :] if output.startswith(SCHEMA_PREFIX) else output
        tasks.append(
            TaskSpec(
                name=task.name,
                input_mimes=tuple(task.input_mimes),
                output_schema=schema,
                limits=dict(task.limits),
                batching_supported=task.tensor_batching_supported,
                preprocess_id=task.tensor_preprocess_id,
            )
        )
    return CapabilityInfo(
        service_name=message.service_name,
        model_ids=tuple(message.model_ids),
        runtime=message.runtime,
        max_concurrency=int(message.max_concurrency),
        precisions=tuple(message.precisions),
        tasks=tuple(tasks),
        extra=dict(message.extra),
        protocol_version=message.protocol_version or PROTOCOL_VERSION,
    )


class NodeInfoProber(HealthProber):
    def __init__(self) -> None:
        super().__init__()
        self._no_node_api: dict[str, float] = {}  # channel key -> monotonic time of UNIMPLEMENTED

    async def _answered(
        self,
        target: ProbeTarget,
        address: str,
        key: str,
        rtt_ms: float,
        stub: health_pb2_grpc.HealthStub,
        deadline: float,
    ) -> ProbeResult:
        channel = self._channels[key]
        remaining = max(deadline - time.monotonic(), 0.05)
        info, capabilities = await asyncio.gather(
            self._node_info(channel, key, remaining), self._capabilities(channel, remaining)
        )
        if info is not None:
            services = _services_from_info(info, capabilities)
        else:
            # every service TXT names or the capabilities list, by its health name
            names = tuple(dict.fromkeys((*target.services, *_task_names(capabilities))))
            asked = replace(target, services=names)
            states = await self._service_states(stub, asked, max(deadline - time.monotonic(), 0.05))
            services = _services_from_health(states, capabilities)
        return ProbeResult(
            rtt_ms=rtt_ms,
            address=address,
            services=services,
            accelerators=tuple(info.accelerators) if info is not None else None,
            os=(info.os.lower() or None) if info is not None else None,
            version=(info.version or None) if info is not None else None,
            capabilities=capabilities,
        )

    async def _node_info(
        self, channel: grpc.aio.Channel, key: str, timeout: float
    ) -> node_pb.NodeInfo | None:
        marked = self._no_node_api.get(key)
        if marked is not None and time.monotonic() - marked < NO_NODE_API_RECHECK_S:
            return None
        try:
            return await node_grpc.NodeStub(channel).GetNodeInfo(
                node_pb.GetNodeInfoRequest(), timeout=timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:
                if marked is None:
                    log.info("peer %s has no node API; its services are probed through health", key)
                self._no_node_api[key] = time.monotonic()
            else:
                log.debug("GetNodeInfo of %s failed: %s", key, exc.code().name)
            return None
        except asyncio.TimeoutError:
            return None

    async def _capabilities(
        self, channel: grpc.aio.Channel, timeout: float
    ) -> tuple[CapabilityInfo, ...] | None:
        stub = hub_grpc.InferenceStub(channel)
        found: list[CapabilityInfo] = []
        try:
            async for message in stub.StreamCapabilities(empty_pb2.Empty(), timeout=timeout):
                if len(found) >= MAX_CAPABILITIES:
                    break
                if message.service_name and SERVED_BY_EXTRA not in message.extra:
                    found.append(capability_from_message(message))
        except (grpc.aio.AioRpcError, asyncio.TimeoutError) as exc:
            code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "timeout"
            log.debug("StreamCapabilities failed: %s", code)
            return None
        return tuple(found)

    async def _drop(self, key: str) -> None:
        self._no_node_api.pop(key, None)
        await super()._drop(key)


def _task_names(capabilities: tuple[CapabilityInfo, ...] | None) -> dict[str, tuple[str, ...]]:
    return {cap.service_name: tuple(t.name for t in cap.tasks) for cap in capabilities or ()}


def _services_from_info(
    info: node_pb.NodeInfo, capabilities: tuple[CapabilityInfo, ...] | None
) -> tuple[PeerService, ...]:
    tasks = _task_names(capabilities)
    return tuple(
        PeerService(
            name=service.name,
            state=service.state,
            tasks=tuple(service.tasks) or tasks.get(service.name, ()),
            model_ids=tuple(service.model_ids),
            runtime=service.runtime,
        )
        for service in info.services
    )


def _services_from_health(
    states: tuple[PeerService, ...] | None, capabilities: tuple[CapabilityInfo, ...] | None
) -> tuple[PeerService, ...] | None:
    if states is None:
        return None
    by_cap = {cap.service_name: cap for cap in capabilities or ()}
    return tuple(_with_capability(state, by_cap.get(state.name)) for state in states)


def _with_capability(state: PeerService, cap: CapabilityInfo | None) -> PeerService:
    if cap is None:
        return state
    return PeerService(
        name=state.name,
        state=state.state,
        tasks=tuple(t.name for t in cap.tasks),
        model_ids=cap.model_ids,
        runtime=cap.runtime,
    )
