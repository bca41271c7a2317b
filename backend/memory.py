"""Freed image buffers go back to the operating system, so memory stays bounded under load.

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), after
which decoded images come from per-thread heaps that keep the memory resident: with many server
threads, the process grows far past what its requests hold at once. Fixing the threshold keeps
every buffer over 1 MiB in its own mapping, unmapped when freed, and two heaps are enough for
the small objects. A no-op where the C library is not glibc.
"""
import ctypes
import ctypes.util

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8


def return_freed_buffers():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, 1 << 20)
    mallopt(M_ARENA_MAX, 2)
