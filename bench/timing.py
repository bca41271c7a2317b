"""The one timing rule both benchmarks use: warm up, then the median of repeated runs."""

import statistics
import time


def median_ms(fn, repeats, warmup=5):
    """Median wall time of `fn()` in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
