"""Inference runtimes behind one small session interface (see :mod:`services.runtimes.base`).

:func:`open_session` (in :mod:`services.runtimes.factory`) opens a file on ``onnx``, ``torch``
or ``rknn``; torch and rknn-toolkit-lite2 are imported only when used.
"""

from services.runtimes.base import RuntimeUnavailable, Session, TensorInfo
from services.runtimes.factory import RuntimeOptions, check_runtime, open_session, predicted_runtime_label

__all__ = [
    "RuntimeOptions",
    "RuntimeUnavailable",
    "Session",
    "TensorInfo",
    "check_runtime",
    "open_session",
    "predicted_runtime_label",
]
