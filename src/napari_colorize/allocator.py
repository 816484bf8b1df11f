"""The C allocator's settings for repeated colourisations: freed memory kept for reuse, not returned.

A colourisation allocates and frees the same large tensors call after call. glibc's allocator returns
freed memory to the system past a threshold it adapts on the fly, and maps large blocks anew each time,
so depending on what the process did before, each call may touch tens of megabytes of fresh pages:
page faults that cost a 224 px call a third of its time on a virtual machine (docs/BENCHMARKS.md).
:func:`keep_freed_memory` fixes both thresholds (``mallopt``): blocks below ``mmap_bytes`` come from the
heap, and up to ``trim_bytes`` of freed heap is kept for the next call. Called by the command line and
the napari widgets' workers next to :func:`~napari_colorize.threads.set_threads`; library users may call
it themselves. Only glibc (Linux) has these settings; elsewhere it does nothing.
``NAPARI_COLORIZE_MALLOC=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

__all__ = ["ENV", "keep_freed_memory"]

#: the environment variable that turns the allocator settings off (``0``)
ENV = "NAPARI_COLORIZE_MALLOC"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # (glibc's malloc.h)
_lock = threading.Lock()
_done: list[bool] = []


def keep_freed_memory(mmap_bytes: int = 16 * 2**20, trim_bytes: int = 64 * 2**20) -> bool:
    """Set glibc's mmap and trim thresholds once per process; True when they are set (now or before),
    False where there is no glibc or ``NAPARI_COLORIZE_MALLOC=0``."""
    if os.environ.get(ENV, "").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    with _lock:
        if _done:
            return _done[0]
        ok = False
        try:
            libc = ctypes.CDLL(None)
            if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt"):
                ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_bytes))) and \
                    bool(libc.mallopt(_M_TRIM_THRESHOLD, int(trim_bytes)))
        except (OSError, AttributeError):
            ok = False
        _done.append(ok)
        return ok
