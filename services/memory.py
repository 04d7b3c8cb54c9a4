"""Handing freed memory back to the OS (glibc Linux; elsewhere a no-op).

glibc keeps freed heap memory resident until the heap top is free or ``malloc_trim`` asks for
it back, and after the first large block is freed it serves blocks up to 32 MiB from the heap.
Loading a model frees temporary copies of its weights; closing one frees the weights. So the
lifecycle trims after both (services.lifecycle). Measured with bench/infer.py's 351 MB
ViT-B/32-shaped model: RSS with the model loaded 494 MB with the trim after the load, 770-850 MB
without; after the idle unload 135 MB from 122 MB before the load.

Pinning glibc's mmap threshold low instead (``mallopt``) gave the same loaded figure but made
each image's decode 50-80 % slower (its buffers were mapped and unmapped every time).
"""

from __future__ import annotations

import ctypes
import sys
from functools import cache


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - musl has none: nothing to trim
    except (OSError, AttributeError):
        return None
    return libc


def release_free_memory() -> None:
    """Ask the C allocator to hand freed heap memory back to the OS (glibc ``malloc_trim``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
