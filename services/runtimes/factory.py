"""One way to open a model file on any runtime: :func:`open_session`.

``runtime`` is the config's word (``onnx`` | ``torch`` | ``rknn``). The runtime libraries are
imported only when their runtime is used, so a machine without torch or rknn-toolkit-lite2
runs ONNX models unaffected, and asking for a runtime that cannot run here raises
:class:`~services.runtimes.base.RuntimeUnavailable` with the reason (never a fallback).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.runtimes.base import RuntimeUnavailable, Session, TensorInfo

RUNTIMES: tuple[str, ...] = ("onnx", "torch", "rknn")


@dataclass(frozen=True)
class RuntimeOptions:
    """Runtime knobs: from the host settings (providers, threads) and the model spec (RKNN)."""

    execution_providers: tuple[str, ...] = ()  # onnxruntime; empty = automatic preference
    intra_op_threads: int = 0  # 0 = automatic
    spin_wait: bool | None = None  # onnxruntime worker threads spin-wait; None = automatic
    torch_device: str | None = None  # None = CUDA, then MPS, then CPU
    rknn_device: str | None = None  # "rk3588" ...
    rknn_core_mask: str = "auto"


def open_session(
    path: Path,
    runtime: str,
    options: RuntimeOptions = RuntimeOptions(),
    *,
    inputs: Sequence[TensorInfo] = (),
    outputs: Sequence[TensorInfo] = (),
    method: str = "forward",
) -> Session:
    """Load ``path`` on ``runtime``. ``inputs``/``outputs`` declare the signature for runtimes
    whose files carry none (torch, rknn); onnxruntime reads it from the graph. Blocking."""
    if runtime == "onnx":
        from services.runtimes.onnx import OnnxSession

        return OnnxSession(
            path,
            providers=options.execution_providers,
            intra_op_threads=options.intra_op_threads,
            spin_wait=options.spin_wait,
        )
    if runtime == "torch":
        from services.runtimes.torch import TorchSession

        return TorchSession(
            path,
            inputs=inputs,
            outputs=outputs,
            method=method,
            device=options.torch_device,
            threads=options.intra_op_threads,
        )
    if runtime == "rknn":
        from services.runtimes.rknn import RknnSession

        return RknnSession(
            path,
            inputs=inputs,
            outputs=outputs,
            device=options.rknn_device,
            core_mask=options.rknn_core_mask,
        )
    raise RuntimeUnavailable(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")


def check_runtime(runtime: str, options: RuntimeOptions = RuntimeOptions()) -> None:
    """Raise :class:`RuntimeUnavailable` when ``runtime`` cannot run on this machine at all,
    without loading a model (used to show FAILED before the first request)."""
    if runtime == "onnx":
        from services.runtimes.onnx import choose_providers

        choose_providers(options.execution_providers)
    elif runtime == "torch":
        from services.runtimes.torch import choose_device, import_torch

        choose_device(import_torch(), options.torch_device)
    elif runtime == "rknn":
        from services.runtimes.rknn import check_available

        check_available(options.rknn_device)
    else:
        raise RuntimeUnavailable(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")


def predicted_runtime_label(runtime: str, options: RuntimeOptions = RuntimeOptions()) -> str:
    """The label a session would report (``onnxrt-cpu``, ``torch-cuda``, ``rknn-rk3588``), for
    capabilities before anything is loaded. Cheap; imports torch only when torch is asked for."""
    if runtime == "onnx":
        from services.runtimes.onnx import predicted_runtime

        return predicted_runtime(options.execution_providers)
    if runtime == "torch":
        from services.runtimes.torch import choose_device, import_torch

        try:
            return "torch-" + choose_device(import_torch(), options.torch_device).split(":", 1)[0]
        except RuntimeUnavailable:
            return "torch-unavailable"
    if runtime == "rknn":
        return f"rknn-{(options.rknn_device or 'unknown').lower()}"
    return runtime
