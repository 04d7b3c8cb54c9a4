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
from collections.abc import Mapping
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

# Service states in which a request cannot succeed until someone acts (not a transient state):
# answered before the host is asked, so that they never look like UNAVAILABLE.
STATUS_FOR_STATE: Mapping[ServiceState, grpc.StatusCode] = MappingProxyType(
    {
        ServiceState.FAILED: grpc.StatusCode.FAILED_PRECONDITION,
        ServiceState.DISABLED: grpc.StatusCode.NOT_FOUND,
    }
)


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
