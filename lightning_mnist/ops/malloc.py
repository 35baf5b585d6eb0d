"""Process-level speed settings for CPU training.

glibc serves allocations above its mmap threshold (128 KiB at start, raised
adaptively) with fresh ``mmap`` pages and returns freed heap memory to the OS.
This model's activations are ~22 MB a batch (256 x 32 x 26 x 26 float32), so
every step re-faults and re-zeroes tens of MB of pages; measured here, that made
a training step 13-37 ms instead of a steady 13-17 ms. Raising both thresholds
keeps the memory in the process, as TensorFlow's own allocator does.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit (4 * 1024 * 1024 * sizeof(long))
TRIM_THRESHOLD = 1024 * 1024 * 1024


def tune_malloc() -> bool:
    """Keep freed memory for reuse (glibc only); return whether it was applied."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) == 1
    return mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
