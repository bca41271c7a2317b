"""Freed image buffers go back to the operating system, so memory stays bounded under load.

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), after
which decoded images come from per-thread heaps that keep the memory resident: with many server
threads, the process grows far past what its requests hold at once. Fixing the threshold at 8 MiB
keeps every decoded image of about 2800 x 2800 and up in its own mapping, unmapped when freed, and
two heaps are enough for the small objects. The model's activations (under 5 MiB each) stay on the
heap, and up to 64 MiB of free heap top is kept for the next request: with a 1 MiB threshold and
glibc's 128 KiB trim threshold, every forward pass mapped, zero-filled and unmapped them again,
which made a request about 14 ms (40 %) slower. A no-op where the C library is not glibc.
"""

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8


def return_freed_buffers():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 8 << 20)
    mallopt(M_TRIM_THRESHOLD, 64 << 20)
    mallopt(M_ARENA_MAX, 2)
