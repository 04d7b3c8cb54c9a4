"""THE mapping from failures to gRPC status codes (one table for the whole hub).

The Go SDK reads only the status code: UNAVAILABLE puts a node into cooldown, so it is used only
for "this node cannot serve this right now" (downloading, loading, starting, stopping); a service
that failed or is switched off gets a code that does not penalise the node. Anything unexpected
is INTERNAL with a safe message (the traceback goes to the log, never to the client).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import grpc

from app.core.config.errors import ConfigError
from services.api import ErrorKind, ServiceError, ServiceState, ServiceStatus

log = logging.getLogger(__name__)

STATUS_FOR_KIND: Mapping[ErrorKind, grpc.StatusCode] = MappingProxyType(
    {
        ErrorKind.INVALID_INPUT: grpc.StatusCode.INVALID_ARGUMENT,
        ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
        ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
        ErrorKind.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
        ErrorKind.DEADLINE: grpc.StatusCode.DEADLINE_EXCEEDED,
        ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
    }
)

# Service states in which a request cannot succeed until someone acts (not a transient state),
# so that they never look like UNAVAILABLE (which puts the whole node into the SDK's cooldown).
# DISABLED is answered before the host is asked; a FAILED service is still asked (the host
# re-checks its files, which may have arrived) and its ServiceUnavailable becomes
# FAILED_PRECONDITION while the service stays FAILED (:func:`failure_after_unavailable`).
STATUS_FOR_STATE: Mapping[ServiceState, grpc.StatusCode] = MappingProxyType(
    {
        ServiceState.FAILED: grpc.StatusCode.FAILED_PRECONDITION,
        ServiceState.DISABLED: grpc.StatusCode.NOT_FOUND,
    }
)

# States in which a service will serve soon without anyone acting.
TRANSIENT_STATES = frozenset({ServiceState.DOWNLOADING, ServiceState.LOADING})


@dataclass(frozen=True)
class RpcFailure:
    code: grpc.StatusCode
    message: str


class RelayedStatus(Exception):
    """A forwarded request failed at the peer: its status code passes through unchanged."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def failure_for(exc: BaseException) -> RpcFailure:
    """The status code and client-visible message for an exception raised while serving."""
    if isinstance(exc, RelayedStatus):
        return RpcFailure(exc.code, exc.message)
    if isinstance(exc, ServiceError):
        message = exc.message or exc.__class__.__name__
        return RpcFailure(STATUS_FOR_KIND.get(exc.kind, grpc.StatusCode.INTERNAL), message)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):  # the same class from 3.11 on
        return RpcFailure(
            grpc.StatusCode.DEADLINE_EXCEEDED, "the request's deadline passed before it finished"
        )
    return internal_failure(exc)


def internal_failure(exc: BaseException) -> RpcFailure:
    reference = uuid.uuid4().hex[:8]
    log.error("internal error %s while serving a request", reference, exc_info=exc)
    return RpcFailure(
        grpc.StatusCode.INTERNAL,
        f"internal error in the node (reference {reference}); the node's log has the details",
    )


def failure_for_state(status: ServiceStatus | None) -> RpcFailure | None:
    """A failure for a service that cannot serve until someone acts, else None."""
    if status is None or status.state not in STATUS_FOR_STATE:
        return None
    return _state_failure(status)


def failure_before_host(status: ServiceStatus | None) -> RpcFailure | None:
    """What to answer without asking the host at all: only DISABLED (NOT_FOUND)."""
    if status is None or status.state is not ServiceState.DISABLED:
        return None
    return _state_failure(status)


def failure_after_unavailable(exc: ServiceError, status: ServiceStatus | None) -> RpcFailure:
    """The host said ServiceUnavailable; ``status`` is the service's status afterwards. A FAILED
    service (files missing, runtime unusable, load failed) is FAILED_PRECONDITION, so that the
    SDK does not count it against the node's health; anything else stays UNAVAILABLE."""
    state_failure = failure_for_state(status)
    return state_failure if state_failure is not None else failure_for(exc)


def capabilities_failure(statuses: Sequence[ServiceStatus], gate_reason: str | None) -> RpcFailure | None:
    """UNAVAILABLE for StreamCapabilities/GetCapabilities while the node cannot serve anything yet:
    it is starting or stopping, or every hosted service is still downloading or loading. The Go
    SDK then keeps the node pending, retries the capability fetch (1 s doubling to 8 s) and lets
    its requests wait instead of sending them here to fail. Otherwise None (answer)."""
    if gate_reason:
        return RpcFailure(grpc.StatusCode.UNAVAILABLE, gate_reason)
    if statuses and all(s.state in TRANSIENT_STATES for s in statuses):
        states = ", ".join(f"{s.name} {s.state.value}" for s in statuses)
        message = f"no service can serve yet ({states}); try again shortly"
        return RpcFailure(grpc.StatusCode.UNAVAILABLE, message)
    return None


def _state_failure(status: ServiceStatus) -> RpcFailure:
    reason = f": {status.reason}" if status.reason else ""
    if status.state is ServiceState.DISABLED:
        message = f"service {status.name} is disabled on this node{reason}"
    else:
        message = f"service {status.name} failed{reason}"
    return RpcFailure(STATUS_FOR_STATE[status.state], message)


class PermissionDenied(Exception):
    """A control call without the right to make it."""


class NotSupported(Exception):
    """The node lacks the part a control call needs (e.g. no download manager)."""


def control_failure_for(exc: BaseException) -> RpcFailure:
    """Status code for a failed node API control call."""
    if isinstance(exc, PermissionDenied):
        return RpcFailure(grpc.StatusCode.PERMISSION_DENIED, str(exc))
    if isinstance(exc, NotSupported):
        return RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, ConfigError):
        return RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, f"the config is not valid:\n{exc}")
    if isinstance(exc, KeyError):  # str(KeyError) is the repr of its argument
        return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, str(exc.args[0]) if exc.args else "unknown key")
    if isinstance(exc, ValueError):
        return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, ServiceError):
        return failure_for(exc)
    if isinstance(exc, OSError):
        return RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, f"the node could not do that: {exc}")
    return internal_failure(exc)
