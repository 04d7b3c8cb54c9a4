"""What this machine is: OS, CPU, memory, accelerators and inference runtimes (for GetNodeInfo).

The static part is computed once (off the event loop: importing onnxruntime takes a moment);
memory is read on each call. torch is never imported here (it is slow to import): it is reported
from its installed metadata.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import platform
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MachineInfo:
    os: str
    os_release: str
    arch: str
    python: str
    cpu_model: str
    cpu_count: int
    accelerators: tuple[str, ...]
    runtimes: tuple[str, ...]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _onnxruntime() -> tuple[list[str], list[str]]:
    if importlib.util.find_spec("onnxruntime") is None:
        return [], []
    try:
        import onnxruntime as ort

        from services.runtimes.onnx import PROVIDER_LABELS, PROVIDER_PREFERENCE

        # only providers that run models on this machine (not e.g. Azure's remote endpoint)
        providers = [p for p in ort.get_available_providers() if p in PROVIDER_PREFERENCE]
    except Exception:  # a broken install must not break node info
        return [], []
    labels = [PROVIDER_LABELS.get(p, p.removesuffix("ExecutionProvider").lower()) for p in providers]
    accelerators = [label for label in labels if label != "cpu"]
    return accelerators, [f"onnxruntime {ort.__version__} ({', '.join(labels)})"]


@functools.lru_cache(maxsize=1)
def machine_info() -> MachineInfo:
    accelerators, runtimes = _onnxruntime()
    torch = _version("torch")
    if torch:
        runtimes.append(f"torch {torch}")
    rknn = _version("rknn-toolkit-lite2")
    if rknn:
        runtimes.append(f"rknn-toolkit-lite2 {rknn}")
        if Path("/dev/rknpu").exists() or Path("/sys/kernel/debug/rknpu").exists():
            accelerators.append("rknn")
    return MachineInfo(
        os=platform.system(),
        os_release=platform.release(),
        arch=platform.machine(),
        python=platform.python_version(),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count() or 1,
        accelerators=tuple(dict.fromkeys(accelerators)),
        runtimes=tuple(runtimes),
    )


def memory_bytes() -> tuple[int, int]:
    """``(total, available)``; zeros when unknown."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except Exception:
        return 0, 0
