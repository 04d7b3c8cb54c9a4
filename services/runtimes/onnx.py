"""onnxruntime sessions.

Provider choice: the caller's explicit list (config ``node.execution_providers``) when given,
else the first available of :data:`PROVIDER_PREFERENCE`; CPU is always the last resort for
onnxruntime itself (it is the same runtime, not a silent fallback to another one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
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


class OnnxSession:
    """A :class:`~services.runtimes.base.Session` over ``onnxruntime.InferenceSession``."""

    def __init__(
        self,
        path: Path,
        *,
        providers: Sequence[str] = (),
        intra_op_threads: int = 0,
    ) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise FileNotFoundError(f"ONNX model file not found: {path}")
        options = ort.SessionOptions()
        if intra_op_threads > 0:
            options.intra_op_num_threads = intra_op_threads
        options.log_severity_level = 3
        self.path = Path(path)
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=choose_providers(providers)
        )
        active = self._session.get_providers()[0]
        self.provider = active
        self.runtime = (
            f"onnxrt-{PROVIDER_LABELS.get(active, active.removesuffix('ExecutionProvider').lower())}"
        )
        self.inputs = tuple(_info(i) for i in self._session.get_inputs())
        self.outputs = tuple(_info(o) for o in self._session.get_outputs())
        self.metadata: Mapping[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        log.info("loaded %s with %s", self.path.name, active)

    def run(
        self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        return list(self._session.run(list(output_names) if output_names else None, dict(feeds)))

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]


def _info(arg: object) -> TensorInfo:
    shape = tuple(getattr(arg, "shape", ()) or ())
    ort_type = str(getattr(arg, "type", ""))
    return TensorInfo(
        name=str(getattr(arg, "name", "")), shape=shape, dtype=_ORT_TYPES.get(ort_type, ort_type)
    )
