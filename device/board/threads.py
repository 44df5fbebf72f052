"""Start-up check of the interpreter thread count: a thread pool that loses to one thread is dropped.

A pool helps only while its workers have cores to themselves. Where they do not (other
services on the board, a shared VM), a worker that loses its core stalls every operator of a
frame: on this project's 2-core x86 host, tflite-runtime 2.14 ran frames over 20 times slower
on 2 threads than on 1 (the thread table of
profiles/reports/x86_64/mobilenet-cifar10-fp32-tflite-runtime-1thread/report.md). So when the
count comes from the board profile, the daemon times a few frames with it and with one
thread before it starts, and keeps the faster.
"""
import time

import numpy as np

from device.profiling.timing import median_ms

ROUNDS = 12          # frames timed per thread count, at most
TIME_CAP_S = 0.25    # per thread count: a stalling pool must not delay the start by seconds


def frame_ms(cascade, clock=time.perf_counter) -> float:
    """Median ms of a frame through every subnet (trunk + 1..K), after one untimed frame."""
    blank = np.zeros(cascade.input_shape, dtype=np.float32)
    never = [-np.inf] * cascade.num_subnets
    return median_ms(lambda: cascade.infer(blank, never), warmup=0, runs=ROUNDS, clock=clock, max_seconds=TIME_CAP_S)


def keep_faster(make_cascade, threads: int, clock=time.perf_counter):
    """(cascade, {threads: frame ms}) for the faster of `threads` and 1 (fewer threads on a tie).

    `make_cascade(n)` builds a cascade with n interpreter threads; with threads == 1 nothing is timed.
    """
    cascade = make_cascade(threads)
    if threads == 1:
        return cascade, {}
    timings = {threads: frame_ms(cascade, clock)}
    single = make_cascade(1)
    timings[1] = frame_ms(single, clock)
    return (single if timings[1] <= timings[threads] else cascade), timings
