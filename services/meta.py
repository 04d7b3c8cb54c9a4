"""Lenient parsing of request ``meta`` values (all strings on the wire).

Clients are written in many languages and many hands: ``"50"``, ``"50.0"`` and ``" 50 "`` all
mean 50; booleans come as ``true/1/yes/on``. A value that cannot be read is an
:class:`~services.api.InvalidInput` naming the key, the value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from services.api import InvalidInput

TOP_K_KEYS: tuple[str, ...] = ("top_k", "TopK", "topK", "top-k", "lumen.top_k", "topk")

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def _raw(meta: Mapping[str, str], keys: str | Sequence[str]) -> tuple[str, str] | None:
    for key in (keys,) if isinstance(keys, str) else keys:
        value = meta.get(key)
        if value is not None and str(value).strip() != "":
            return key, str(value).strip()
    return None


def meta_float(
    meta: Mapping[str, str],
    keys: str | Sequence[str],
    default: float,
    *,
    low: float | None = None,
    high: float | None = None,
) -> float:
    """The number under the first present key of ``keys``, else ``default``; bounds inclusive."""
    found = _raw(meta, keys)
    if found is None:
        return default
    key, text = found
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"meta {key!r} must be a number (got {text!r})") from None
    if not math.isfinite(value):
        raise InvalidInput(f"meta {key!r} must be a finite number (got {text!r})")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (
            f"from {_fmt(low)} to {_fmt(high)}"
            if low is not None and high is not None
            else (f"at least {_fmt(low)}" if low is not None else f"at most {_fmt(high)}")
        )
        raise InvalidInput(f"meta {key!r} must be {bounds} (got {text!r})")
    return value


def meta_int(
    meta: Mapping[str, str],
    keys: str | Sequence[str],
    default: int,
    *,
    low: int | None = None,
    high: int | None = None,
) -> int:
    """Like :func:`meta_float` but the value must be a whole number (``"5.0"`` is 5)."""
    found = _raw(meta, keys)
    if found is None:
        return default
    key, _ = found
    value = meta_float(meta, key, float(default), low=low, high=high)
    if not value.is_integer():
        raise InvalidInput(f"meta {key!r} must be a whole number (got {meta[key]!r})")
    return int(value)


def meta_bool(meta: Mapping[str, str], keys: str | Sequence[str], default: bool) -> bool:
    found = _raw(meta, keys)
    if found is None:
        return default
    key, text = found
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidInput(f"meta {key!r} must be true or false (got {text!r})")


def top_k(meta: Mapping[str, str], default: int = 5, *, high: int = 1000) -> int:
    """``top_k`` or any of its aliases (:data:`TOP_K_KEYS`), 1..``high``."""
    return meta_int(meta, TOP_K_KEYS, default, low=1, high=high)


def _fmt(value: float | None) -> str:
    return f"{value:g}" if value is not None else ""
