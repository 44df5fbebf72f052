"""The kit's one timing harness: a call timed with its first run and warm-up apart, and samples summarized.

Like TFLite's benchmark_model, the first call, the warm-up calls and the steady-state calls are
kept apart: the first call pays for lazy allocation and cold caches and must not leak into the
steady-state percentiles.
"""
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


def time_call(fn) -> float:
    """Wall time of one call of fn() in milliseconds (perf_counter)."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def benchmark(fn, warmup: int, runs: int) -> dict:
    """Time fn: first call, `warmup` calls, then `runs` steady-state calls.

    Returns {"first_ms", "warmup_ms": stats, "steady_ms": stats, "samples_ms": [steady samples]}.
    """
    first = time_call(fn)
    warm = [time_call(fn) for _ in range(warmup)]
    steady = [time_call(fn) for _ in range(runs)]
    return {"first_ms": first, "warmup_ms": summarize(warm), "steady_ms": summarize(steady),
            "samples_ms": steady}


def median_ms(fn, warmup: int = 5, runs: int = 50) -> float:
    """Median steady-state milliseconds of fn() after its first call and `warmup` calls."""
    return benchmark(fn, warmup, runs)["steady_ms"]["p50"]
