"""Inference runtimes behind one small session interface (see :mod:`services.runtimes.base`)."""

from services.runtimes.base import RuntimeUnavailable, Session, TensorInfo

__all__ = ["RuntimeUnavailable", "Session", "TensorInfo"]
