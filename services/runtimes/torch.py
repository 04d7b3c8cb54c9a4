"""torch sessions (CPU, CUDA, Apple MPS). torch is an optional extra, imported only here.

Accepted weight format: a **TorchScript** archive (``torch.jit.save`` of a scripted or traced
module), never a pickled ``state_dict`` (that needs the model's Python code, which a node does
not ship). Two layouts are understood by the CLIP loader:

* one file per component, ``torch/<component>[.<precision>].pt``, whose ``forward`` takes the
  same tensor as the ONNX graph of that component (text: int64 ids ``[B, L]``; vision: float32
  NCHW ``[B, 3, H, W]``) and returns ``[B, D]`` (or a tuple whose first item is that);
* one ``torch/model.pt`` exposing ``encode_text`` and ``encode_image`` methods (an open_clip
  model scripted with ``torch.jit.script``), opened once per component with ``method=``.

TorchScript carries no tensor signature, so the caller declares ``inputs`` (names, shapes,
dtypes) and optionally ``outputs``; feeds are matched to ``inputs`` by name, in order.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from services.runtimes.base import RuntimeUnavailable, TensorInfo

log = logging.getLogger(__name__)

TORCH_DEVICES: tuple[str, ...] = ("cuda", "mps", "cpu")


def import_torch() -> Any:
    """The ``torch`` module, or :class:`RuntimeUnavailable` saying how to get it."""
    try:
        return importlib.import_module("torch")
    except ImportError as exc:
        raise RuntimeUnavailable(
            "the torch runtime needs PyTorch, which is not installed here "
            "(install the optional extra: pip install 'lumen-node[torch]'); "
            f"import failed: {exc}"
        ) from None


def choose_device(torch: Any, requested: str | None = None) -> str:
    """``requested`` (``cpu``/``cuda``/``cuda:1``/``mps``) when usable, else CUDA, MPS, CPU."""
    if requested:
        kind = requested.split(":", 1)[0].lower()
        if kind not in TORCH_DEVICES:
            raise RuntimeUnavailable(
                f"torch device {requested!r} is not supported; use one of {', '.join(TORCH_DEVICES)}"
            )
        if kind == "cuda" and not torch.cuda.is_available():
            raise RuntimeUnavailable("torch device 'cuda' was asked for but CUDA is not available here")
        if kind == "mps" and not _mps_available(torch):
            raise RuntimeUnavailable("torch device 'mps' was asked for but MPS is not available here")
        return requested.lower()
    if torch.cuda.is_available():
        return "cuda"
    if _mps_available(torch):
        return "mps"
    return "cpu"


def _mps_available(torch: Any) -> bool:
    backend = getattr(getattr(torch, "backends", None), "mps", None)
    return bool(backend is not None and backend.is_available())


class TorchSession:
    """A :class:`~services.runtimes.base.Session` over a TorchScript module."""

    def __init__(
        self,
        path: Path,
        *,
        inputs: Sequence[TensorInfo],
        outputs: Sequence[TensorInfo] = (),
        method: str = "forward",
        device: str | None = None,
        threads: int = 0,
    ) -> None:
        torch = import_torch()
        self._torch = torch
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"TorchScript file not found: {path}")
        if not inputs:
            raise ValueError("a torch session needs its inputs declared (TorchScript has no signature)")
        self.device = choose_device(torch, device)
        if threads > 0:
            torch.set_num_threads(threads)
        try:
            module = torch.jit.load(str(self.path), map_location=self.device)
        except Exception as exc:  # torch raises RuntimeError for pickles and broken archives
            raise ValueError(
                f"{self.path.name} is not a TorchScript archive (torch.jit.save); "
                f"state_dict checkpoints are not supported: {exc}"
            ) from exc
        module.eval()
        self._module = module
        self._fn = module if method == "forward" else getattr(module, method, None)
        if self._fn is None:
            raise ValueError(f"{self.path.name} has no method {method!r}")
        self.method = method
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs) or (TensorInfo("output", (), "float32"),)
        self.runtime = f"torch-{self.device.split(':', 1)[0]}"
        log.info("loaded %s (%s) on torch %s", self.path, method, self.device)

    def run(
        self, feeds: Mapping[str, np.ndarray], output_names: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        if self._module is None:
            raise RuntimeError(f"session for {self.path.name} is closed")
        torch = self._torch
        missing = [i.name for i in self.inputs if i.name not in feeds]
        if missing:
            raise ValueError(f"missing inputs {missing}; this session takes {[i.name for i in self.inputs]}")
        args = [torch.from_numpy(np.ascontiguousarray(feeds[i.name])).to(self.device) for i in self.inputs]
        with torch.inference_mode():
            out = self._fn(*args)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        arrays = [o.detach().to("cpu").numpy() for o in outs]
        if not output_names:
            return arrays
        names = [o.name for o in self.outputs]
        return [arrays[names.index(n)] for n in output_names]

    def close(self) -> None:
        self._module = None
        self._fn = None
