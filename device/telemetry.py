"""What the daemon reports: one JSON line per frame, and a human summary every few seconds.

The JSON line is written and flushed at once, so a crash or a signal loses at most the frame
in flight; `--log -` sends it to stdout, a path appends to that file. The summary goes to
stderr (fps, mean and p95 latency against the budget, exit mix, drops, temperature).
Latencies are kept in fixed-size rings allocated at start, so memory does not grow with frames.
"""
import json
import sys
import time

import numpy as np


class TelemetryError(ValueError):
    """A log destination that cannot be written; raised before the loop starts."""


def open_log(spec: str | None):
    """'-' -> stdout, a path -> that file opened for appending, None -> no per-frame log."""
    if spec is None:
        return None
    if spec == "-":
        return sys.stdout
    try:
        return open(spec, "a", encoding="utf-8")
    except OSError as exc:
        raise TelemetryError(f"cannot write the log file {spec} ({exc.strerror}); "
                             f"pass a writable path or --log - for stdout") from None


class LatencyRing:
    """The last `capacity` latencies (seconds) in a preallocated array."""

    def __init__(self, capacity: int):
        self.values = np.zeros(capacity, dtype=np.float64)
        self.count = 0

    def add(self, seconds: float) -> None:
        self.values[self.count % len(self.values)] = seconds
        self.count += 1

    def filled(self) -> np.ndarray:
        return self.values[: min(self.count, len(self.values))]

    def clear(self) -> None:
        self.count = 0


class Telemetry:
    """Per-frame JSON lines + periodic and final summaries."""

    def __init__(self, stream, labels, budget_s: float, num_subnets: int, policy: str,
                 summary_every_s: float = 5.0, summary_stream=sys.stderr, clock=time.monotonic):
        self.stream = stream
        self.labels = labels
        self.budget_s = budget_s
        self.policy = policy
        self.summary_every_s = summary_every_s
        self.summary_stream = summary_stream
        self.clock = clock
        self.started = clock()
        self._interval = LatencyRing(4096)
        self._overall = LatencyRing(16384)
        self._interval_exits = np.zeros(num_subnets, dtype=np.int64)
        self.exits = np.zeros(num_subnets, dtype=np.int64)
        self.frames = 0
        self.over_budget = 0
        self.latency_sum = 0.0
        self.last = {}
        self._interval_start = self.started
        self._budget_ms = round(budget_s * 1e3, 3)
        # json.JSONEncoder made once; check_circular off: a flat dict of numbers and strings
        self._encode = json.JSONEncoder(check_circular=False, ensure_ascii=False).encode

    def record(self, frame_id: int, result, latency_s: float, control, reading, source) -> None:
        """Log one frame (result: cascade Result; reading: router Reading; source: its counters)."""
        self.frames += 1
        self.latency_sum += latency_s
        self.over_budget += latency_s > self.budget_s
        self.exits[result.exit_subnet - 1] += 1
        self._interval_exits[result.exit_subnet - 1] += 1
        self._interval.add(latency_s)
        self._overall.add(latency_s)
        self.last = {
            "time": round(time.time(), 4),
            "frame": frame_id,
            "label": self.labels[result.label],
            "score": round(result.score, 5),
            "entropy": round(result.entropy, 5),
            "exit_subnet": result.exit_subnet,
            "deadline_cut": result.deadline_cut,
            "latency_ms": round(latency_s * 1e3, 3),
            "budget_ms": self._budget_ms,
            "policy": self.policy,
            "router_control": control,
            "cpu_load": reading.cpu_load,
            "temperature_c": reading.temperature,
            "drops": source.drops,
            "bad_frames": source.bad_frames,
        }
        if self.stream is not None:
            self.stream.write(self._encode(self.last) + "\n")
            self.stream.flush()
        now = self.clock()
        if now - self._interval_start >= self.summary_every_s:
            self._summary(now - self._interval_start, self._interval, self._interval_exits, "")
            self._interval.clear()
            self._interval_exits[:] = 0
            self._interval_start = now

    def _summary(self, seconds: float, ring: LatencyRing, exits: np.ndarray, prefix: str) -> None:
        lat = ring.filled()
        if len(lat) == 0:
            return
        frames = int(exits.sum())
        mix = " ".join(f"{k}:{100.0 * n / frames:.0f}%" for k, n in enumerate(exits, start=1))
        temp = self.last.get("temperature_c")
        line = (f"{prefix}{frames / max(seconds, 1e-9):.1f} fps | latency mean {lat.mean() * 1e3:.1f} ms "
                f"p95 {np.percentile(lat, 95) * 1e3:.1f} ms / budget {self.budget_s * 1e3:.1f} ms "
                f"({100.0 * (lat > self.budget_s).mean():.1f}% over) | exits {mix} | "
                f"drops {self.last.get('drops', 0)} bad {self.last.get('bad_frames', 0)} | "
                f"temp {'n/a' if temp is None else f'{temp:.1f} C'}")
        if self.last.get("router_control") is not None:
            line += f" | q {self.last['router_control']:.3f}"
        print(line, file=self.summary_stream, flush=True)

    def close(self) -> None:
        """Final summary over the whole run; flush and close the log file."""
        self._summary(self.clock() - self.started, self._overall, self.exits, f"done: {self.frames} frames, ")
        if self.stream is not None:
            self.stream.flush()
            if self.stream is not sys.stdout:
                self.stream.close()
