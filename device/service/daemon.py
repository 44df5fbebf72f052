"""The camera loop, as the data flows: source -> preprocess -> cascade (trunk, subnets through
the cache) -> router decision -> telemetry. run_camera.py assembles the parts; tests and
benchmarks drive this loop with their own.

A frame's latency runs from the moment the source hands it over to the moment the answer is
known (preprocessing + cascade); that is what the budget and the router see.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from device.io.preprocess import frame_to_input
from device.policy.router import Reading

NO_READING = Reading(None, None, None)


@dataclass
class LoopStats:
    """Where the loop's time went, for the router-overhead benchmark (seconds, summed).

    loop_s ends before the on_frame callback: what a caller does with an answer (the --show
    overlay, a benchmark's own recording) is neither router nor daemon work.
    """
    frames: int = 0
    loop_s: float = 0.0        # from a frame handed over to its answer being logged
    preprocess_s: float = 0.0
    invoke_s: float = 0.0      # interpreter invokes only
    first_result_at: float | None = None  # perf_counter() when the first answer was known

    @property
    def overhead_s(self) -> float:
        """Everything but invokes and preprocessing: cache copies, exit decisions, router, telemetry."""
        return self.loop_s - self.preprocess_s - self.invoke_s


def run_loop(source, cascade, policy, telemetry, sampler=None, stop: threading.Event | None = None,
             max_frames: int | None = None, duration_s: float | None = None, on_frame=None,
             heartbeat=None, clock=time.perf_counter) -> LoopStats:
    """Process frames until the source ends, `stop` is set, or max_frames / duration_s is reached.

    `on_frame(frame, result, latency_s)` (e.g. the --show overlay) and `heartbeat()` (the
    systemd watchdog) are called once per loop turn; heartbeat also runs while no frame comes.
    """
    stop = stop or threading.Event()
    size = cascade.input_shape[1]
    image = cascade.input  # preprocessed in place: the trunk's own input buffer
    stats = LoopStats()
    started = clock()
    frame_id = 0
    while not stop.is_set():
        if max_frames is not None and frame_id >= max_frames:
            break
        if duration_s is not None and clock() - started >= duration_s:
            break
        if heartbeat is not None:
            heartbeat()
        frame = source.read(0.5)
        if frame is None:
            telemetry.flush()  # no line waits for a frame that may not come
            if source.ended:
                break
            continue  # a live camera that has not delivered yet (or is reconnecting)
        t0 = clock()
        frame_to_input(frame, size, image)
        t1 = clock()
        deadline = policy.deadline_s
        result = cascade.infer(image, policy.thresholds, None if deadline is None else deadline - (t1 - t0))
        latency = clock() - t0
        policy.update(latency, result)
        reading = sampler.poll() if sampler is not None else NO_READING
        telemetry.record(frame_id, result, latency, policy.control, reading, source)
        stats.loop_s += clock() - t0
        stats.frames += 1
        stats.preprocess_s += t1 - t0
        stats.invoke_s += sum(result.stage_latencies)
        if stats.first_result_at is None:
            stats.first_result_at = t0 + latency
        if on_frame is not None:
            on_frame(frame, result, latency)
        frame_id += 1
    return stats
