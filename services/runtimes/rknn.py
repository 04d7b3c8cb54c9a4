"""RKNN sessions on Rockchip NPUs through rknn-toolkit-lite2 (``rknnlite.api.RKNNLite``).

Only aarch64 Linux boards with an RK3566 / RK3568 / RK3576 / RK3588 run it; the NPU driver
library ``librknnrt.so`` comes with the board image. Anywhere else every entry point raises
:class:`~services.runtimes.base.RuntimeUnavailable` with the reason, and the service shows
FAILED with that reason: there is never a silent fallback to the CPU.

``core_mask`` picks NPU cores on the multi-core SoCs (RK3588: 3 cores, RK3576: 2):
``auto`` (default), ``0``, ``1``, ``2``, ``0_1``, ``0_1_2``, ``all``. Single-core SoCs ignore it.
RKNN graphs carry a fixed input shape; the caller declares ``inputs`` (names, shapes, dtypes).
One RKNNLite context runs one inference at a time (Rockchip's runtime wants a context per
thread): a session serialises its runs and its release, so a model allowed two requests at once
(``max_concurrency_per_model``) never enters the same context from two threads.
"""

from __future__ import annotations

import importlib
import logging
import platform as _platform
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.runtimes.base import RuntimeUnavailable, TensorInfo

log = logging.getLogger(__name__)

SUPPORTED_SOCS: tuple[str, ...] = ("rk3566", "rk3568", "rk3576", "rk3588")
NPU_CORES: dict[str, int] = {"rk3566": 1, "rk3568": 1, "rk3576": 2, "rk3588": 3}
CORE_MASKS: dict[str, str] = {
    "auto": "NPU_CORE_AUTO",
    "0": "NPU_CORE_0",
    "1": "NPU_CORE_1",
    "2": "NPU_CORE_2",
    "0_1": "NPU_CORE_0_1",
    "0_1_2": "NPU_CORE_0_1_2",
    "all": "NPU_CORE_ALL",
}
DEVICE_TREE_COMPATIBLE = Path("/proc/device-tree/compatible")


@dataclass(frozen=True)
class BoardInfo:
    """The facts RKNN depends on; :func:`detect_board` reads them from this machine."""

    system: str  # platform.system(): "Linux", "Darwin", "Windows"
    machine: str  # platform.machine(): "aarch64", "x86_64" ...
    soc: str | None = None  # "rk3588" when the device tree says so


def detect_board(compatible: Path = DEVICE_TREE_COMPATIBLE) -> BoardInfo:
    soc = None
    try:
        entries = compatible.read_bytes().split(b"\x00")
    except OSError:
        entries = []
    for entry in entries:
        text = entry.decode("ascii", "ignore").lower()
        for candidate in SUPPORTED_SOCS:
            if text.endswith(candidate):
                soc = candidate
    return BoardInfo(_platform.system(), _platform.machine().lower(), soc)


def check_board(device: str | None, board: BoardInfo | None = None) -> str:
    """The SoC to run on, or :class:`RuntimeUnavailable` saying why RKNN cannot run here."""
    board = board or detect_board()
    if board.system != "Linux" or board.machine not in ("aarch64", "arm64"):
        raise RuntimeUnavailable(
            "RKNN runs only on aarch64 Linux boards with a Rockchip NPU "
            f"({', '.join(SUPPORTED_SOCS)}); this machine is {board.system} {board.machine}. "
            "Choose runtime 'onnx' for this model instead"
        )
    wanted = (device or board.soc or "").lower()
    if not wanted:
        raise RuntimeUnavailable(
            "runtime 'rknn' needs rknn_device (one of " + ", ".join(SUPPORTED_SOCS) + ") and this board's "
            "SoC could not be read from the device tree"
        )
    if wanted not in SUPPORTED_SOCS:
        raise RuntimeUnavailable(f"rknn_device {wanted!r} is not supported; use one of {SUPPORTED_SOCS}")
    if board.soc and board.soc != wanted:
        raise RuntimeUnavailable(
            f"the model files are built for {wanted} but this board is {board.soc}; "
            f"set rknn_device: {board.soc} (and download its files)"
        )
    return wanted


def import_rknnlite() -> Any:
    """The ``RKNNLite`` class, or :class:`RuntimeUnavailable` saying how to get it."""
    try:
        module = importlib.import_module("rknnlite.api")
    except ImportError as exc:
        raise RuntimeUnavailable(
            "rknn-toolkit-lite2 is not installed (pip install 'lumen-node[rknn]' on the board); "
            f"import failed: {exc}"
        ) from None
    return module.RKNNLite


def check_available(device: str | None, board: BoardInfo | None = None) -> str:
    """Board and library check without loading a model; returns the SoC."""
    soc = check_board(device, board)
    import_rknnlite()
    return soc


class RknnSession:
    """A :class:`~services.runtimes.base.Session` over ``RKNNLite``."""

    def __init__(
        self,
        path: Path,
        *,
        inputs: Sequence[TensorInfo],
        outputs: Sequence[TensorInfo] = (),
        device: str | None = None,
        core_mask: str = "auto",
        board: BoardInfo | None = None,
    ) -> None:
        self.soc = check_board(device, board)
        rknn_cls = import_rknnlite()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"RKNN model file not found: {path}")
        if not inputs:
            raise ValueError("an RKNN session needs its inputs declared")
        mask_key = str(core_mask or "auto").lower()
        if mask_key not in CORE_MASKS:
            raise ValueError(f"NPU core mask {core_mask!r} is not one of {', '.join(CORE_MASKS)}")
        rknn = rknn_cls(verbose=False)
        ret = rknn.load_rknn(str(self.path))
        if ret != 0:
            rknn.release()
            raise ValueError(f"RKNNLite could not load {self.path.name} (code {ret})")
        if NPU_CORES[self.soc] > 1:
            ret = rknn.init_runtime(core_mask=getattr(rknn_cls, CORE_MASKS[mask_key]))
        else:
            ret = rknn.init_runtime()
        if ret != 0:
            rknn.release()
            raise RuntimeUnavailable(
                f"the {self.soc} NPU runtime did not start (code {ret}); is librknnrt.so installed?"
            )
        self._rknn = rknn
        self._lock = threading.Lock()  # one inference (or the release) in the context at a time
        self.core_mask = mask_key
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs) or (TensorInfo("output", (), "float32"),)
        self.runtime = f"rknn-{self.soc}"
        log.info("loaded %s on the %s NPU (core mask %s)", self.path, self.soc, mask_key)

    def run(
        self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        arrays = [np.ascontiguousarray(feeds[i.name]) for i in self.inputs]
        formats = ["nchw" if a.ndim == 4 else "nhwc" for a in arrays]
        with self._lock:
            if self._rknn is None:
                raise RuntimeError(f"session for {self.path.name} is closed")
            outs = self._rknn.inference(inputs=arrays, data_format=formats)
        if outs is None:
            raise RuntimeError(f"RKNN inference of {self.path.name} returned no outputs")
        result = [np.asarray(o) for o in outs]
        if not output_names:
            return result
        names = [o.name for o in self.outputs]
        return [result[names.index(n)] for n in output_names]

    def close(self) -> None:
        with self._lock:  # after a run in progress, never during it
            if self._rknn is not None:
                self._rknn.release()
                self._rknn = None
