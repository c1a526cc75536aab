"""Timing shared by the bench scripts."""

import statistics
import time


def median_ms(fn, repeat: int) -> float:
    """The median of `repeat` calls of `fn`, in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
