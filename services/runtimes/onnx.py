"""onnxruntime sessions.

Provider choice: the caller's explicit list (config ``node.execution_providers``) when given,
else the first available of :data:`PROVIDER_PREFERENCE`; CPU is always the last resort for
onnxruntime itself (it is the same runtime, not a silent fallback to another one). The choice
is logged and reported as :attr:`OnnxSession.runtime` (``onnxrt-cpu``, ``onnxrt-cuda`` ...).

Threads (:func:`thread_plan`): intra-op threads = the configured number, else the CPUs this
process may use (capped at 8); one inter-op thread. Worker threads spin-wait between the steps
of a run (woken from sleep at each parallel step instead, one image of bench/infer.py's model
took 3-5 % longer); on small machines (4 CPUs or fewer) they stop spinning as soon as the run
ends (onnxruntime's ``session.force_spinning_stop``), so between requests they leave the few
cores to the gRPC threads, decoding and other services. Config ``node.cpu_spin_wait``: ``true``
spins after runs too (onnxruntime's default), ``false`` never spins.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from services.runtimes.base import RuntimeUnavailable, TensorInfo

log = logging.getLogger(__name__)

PROVIDER_PREFERENCE: tuple[str, ...] = (
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)

PROVIDER_LABELS: dict[str, str] = {
    "CUDAExecutionProvider": "cuda",
    "CoreMLExecutionProvider": "coreml",
    "DmlExecutionProvider": "directml",
    "OpenVINOExecutionProvider": "openvino",
    "CPUExecutionProvider": "cpu",
}

SMALL_MACHINE_CPUS = 4
MAX_AUTO_THREADS = 8

_ORT_TYPES: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def usable_cpus() -> int:
    """CPUs this process may run on (affinity-aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def choose_providers(requested: Sequence[str] = ()) -> list[str]:
    """The providers to ask onnxruntime for, best first."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    if requested:
        chosen = [p for p in requested if p in available]
        if not chosen:
            raise RuntimeUnavailable(
                f"none of the configured execution providers {list(requested)} is available; "
                f"this onnxruntime offers {sorted(available)}"
            )
        return chosen
    return [p for p in PROVIDER_PREFERENCE if p in available] or ["CPUExecutionProvider"]


def provider_label(provider: str) -> str:
    """``CUDAExecutionProvider`` → ``onnxrt-cuda``."""
    short = PROVIDER_LABELS.get(provider, provider.removesuffix("ExecutionProvider").lower())
    return f"onnxrt-{short}"


def predicted_runtime(requested: Sequence[str] = ()) -> str:
    """The label a session would report, without loading a model (for capabilities before load)."""
    try:
        return provider_label(choose_providers(requested)[0])
    except (RuntimeUnavailable, ImportError):
        return "onnxrt-unavailable"


@dataclass(frozen=True)
class ThreadPlan:
    intra_op: int
    inter_op: int
    spinning: bool  # worker threads spin-wait between the steps of a run
    spin_after_runs: bool  # ... and keep spinning for a while after a run ends

    @property
    def describe(self) -> str:
        if not self.spinning:
            return "no spinning"
        return "spinning" if self.spin_after_runs else "spinning within runs"


def thread_plan(
    intra_op_threads: int = 0, *, cpus: int | None = None, spin_wait: bool | None = None
) -> ThreadPlan:
    """Thread settings for a session: see the module docstring (``spin_wait`` None = automatic)."""
    cpus = cpus or usable_cpus()
    intra = intra_op_threads if intra_op_threads > 0 else min(cpus, MAX_AUTO_THREADS)
    if spin_wait is None:
        return ThreadPlan(intra, 1, spinning=True, spin_after_runs=cpus > SMALL_MACHINE_CPUS)
    return ThreadPlan(intra, 1, spinning=spin_wait, spin_after_runs=spin_wait)


def cpu_runs_at_once(intra_op_threads: int = 0, *, cpus: int | None = None) -> int:
    """How many runs of one CPU model fit side by side without more threads than CPUs (two
    batches of two threads each on a 2-CPU machine run slower than one batch after another)."""
    cpus = cpus or usable_cpus()
    return max(1, cpus // thread_plan(intra_op_threads, cpus=cpus).intra_op)


class OnnxSession:
    """A :class:`~services.runtimes.base.Session` over ``onnxruntime.InferenceSession``."""

    def __init__(
        self,
        path: Path,
        *,
        providers: Sequence[str] = (),
        intra_op_threads: int = 0,
        spin_wait: bool | None = None,
    ) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise FileNotFoundError(f"ONNX model file not found: {path}")
        plan = thread_plan(intra_op_threads, spin_wait=spin_wait)
        options = ort.SessionOptions()
        options.intra_op_num_threads = plan.intra_op
        options.inter_op_num_threads = plan.inter_op
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not plan.spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        elif not plan.spin_after_runs:
            options.add_session_config_entry("session.force_spinning_stop", "1")
        options.log_severity_level = 3
        self.path = Path(path)
        chosen = choose_providers(providers)
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"onnxruntime cannot load {self.path.name}: {exc}") from exc
        active = self._session.get_providers()[0]
        self.provider = active
        self.runtime = provider_label(active)
        self.inputs = tuple(_info(i) for i in self._session.get_inputs())
        self.outputs = tuple(_info(o) for o in self._session.get_outputs())
        self.metadata: Mapping[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        log.info(
            "loaded %s with %s (asked for %s; %d intra-op threads, %s)",
            self.path,
            active,
            ", ".join(chosen),
            plan.intra_op,
            plan.describe,
        )

    def run(
        self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        if self._session is None:
            raise RuntimeError(f"session for {self.path.name} is closed")
        return list(self._session.run(list(output_names) if output_names else None, dict(feeds)))

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]


def open_onnx(path: Path) -> OnnxSession:
    """An onnxruntime session on ``path`` with the default options (the standalone helpers'
    opener, e.g. :func:`services.face.resolve.open_face_pipeline`). Blocking."""
    return OnnxSession(path)


def _info(arg: object) -> TensorInfo:
    shape = tuple(getattr(arg, "shape", ()) or ())
    ort_type = str(getattr(arg, "type", ""))
    return TensorInfo(
        name=str(getattr(arg, "name", "")), shape=shape, dtype=_ORT_TYPES.get(ort_type, ort_type)
    )
