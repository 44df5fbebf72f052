"""The kit's one timing harness: a call timed with its first run and warm-up apart, and samples summarized.

Like TFLite's benchmark_model, the first call, the warm-up calls and the steady-state calls are
kept apart: the first call pays for lazy allocation and cold caches and must not leak into the
steady-state percentiles.
"""
from __future__ import annotations

import time

import numpy as np

STAT_KEYS = ("n", "mean", "std", "min", "p50", "p95", "p99", "max")


def summarize(samples_ms) -> dict:
    """n, mean, std, min, p50, p95, p99, max of samples in milliseconds (empty -> n = 0 only)."""
    values = np.asarray(list(samples_ms), dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"n": int(values.size), "mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "p50": float(p50), "p95": float(p95), "p99": float(p99),
            "max": float(values.max())}


def time_call(fn, clock=time.perf_counter) -> float:
    """Wall time of one call of fn() in milliseconds."""
    start = clock()
    fn()
    return (clock() - start) * 1000.0


def benchmark(fn, warmup: int, runs: int, clock=time.perf_counter, max_seconds: float | None = None) -> dict:
    """Time fn: first call, `warmup` calls, then up to `runs` steady-state calls, which stop once
    `max_seconds` have passed with one of them done (a slow board must not wait on a fixed count).

    Returns {"first_ms", "warmup_ms": stats, "steady_ms": stats, "samples_ms": [steady samples]}.
    """
    first = time_call(fn, clock)
    warm = [time_call(fn, clock) for _ in range(warmup)]
    steady, started = [], clock()
    while len(steady) < runs and not (steady and max_seconds is not None and clock() - started >= max_seconds):
        steady.append(time_call(fn, clock))
    return {"first_ms": first, "warmup_ms": summarize(warm), "steady_ms": summarize(steady),
            "samples_ms": steady}


def median_ms(fn, warmup: int = 5, runs: int = 50, clock=time.perf_counter, max_seconds: float | None = None) -> float:
    """Median steady-state milliseconds of fn() after its first call and `warmup` calls."""
    return benchmark(fn, warmup, runs, clock, max_seconds)["steady_ms"]["p50"]
