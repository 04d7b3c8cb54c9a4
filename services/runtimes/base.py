"""The one session interface every runtime (onnxruntime, torch, RKNN) implements.

A session is a loaded model graph: named, typed inputs and outputs and a blocking ``run``.
Callers (services, the lifecycle manager) never touch the runtime library directly, so a
service works unchanged on any runtime, and tests can hand a service a recording session.
``run`` blocks; the host calls it from an executor, never on the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

Dim = int | str | None  # a fixed size, a symbolic name ("batch"), or unknown


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output. ``dtype`` is a numpy dtype name (``float32``, ``int64``...)."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str

    @property
    def static_dims(self) -> tuple[int | None, ...]:
        """The shape with every non-integer dimension as ``None``."""
        return tuple(d if isinstance(d, int) and d > 0 else None for d in self.shape)


class RuntimeUnavailable(RuntimeError):
    """This runtime cannot run here (library missing, wrong platform, no device); the message
    says why and what would fix it. Services surface it as a FAILED state, never fall back."""


@runtime_checkable
class Session(Protocol):
    """A loaded model. ``runtime`` is the label shown in capabilities, e.g. ``onnxrt-cpu``."""

    runtime: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    def run(
        self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        """Run the graph; returns the requested outputs (all, in graph order, by default)."""
        ...

    def close(self) -> None:
        """Free the model's memory. The session is unusable afterwards."""
        ...
