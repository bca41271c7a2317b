"""Slices through the model in batches, each batch split into one part per core, side by side.

One EfficientNet-Lite0 pass gains little from a second intra-op thread; two passes side by side, each
with one PyTorch thread, nearly double the rate. The batch command and studies both go through here.
"""
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

_single_threaded = 0  # callers inside `core_pool` now; the last one out restores PyTorch's threads
_lock = threading.Lock()


def split(batch: list, parts: int) -> list[list]:
    """`batch` in at most `parts` contiguous, non-empty parts of nearly equal size, in order."""
    bounds = [i * len(batch) // parts for i in range(parts + 1)]
    return [batch[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


@contextlib.contextmanager
def core_pool(cores: int, batched: bool = True):
    """A pool of `cores` threads for `on_cores`. With `batched`, PyTorch runs one thread per pass meanwhile
    (set before the pool's threads start, so each part gets one); `cores` threads are restored after."""
    global _single_threaded
    if batched:
        with _lock:
            _single_threaded += 1
            torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(cores, thread_name_prefix="slices") as pool:
            yield pool
    finally:
        if batched:
            with _lock:
                _single_threaded -= 1
                if not _single_threaded:
                    torch.set_num_threads(cores)


def on_cores(pool, batch: list, cores: int, work: Callable[[list], list]) -> list:
    """work(part) for each of up to `cores` contiguous parts of `batch`, side by side in `pool`; the parts'
    results concatenated in `batch`'s order (a single part runs here, on the calling thread)."""
    parts = split(batch, cores)
    results = pool.map(work, parts) if len(parts) > 1 else map(work, parts)
    return [result for part in results for result in part]
