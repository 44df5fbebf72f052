"""What the daemon reports: one JSON line per frame, and a human summary every few seconds.

`--log -` sends the JSON lines to stdout, a path appends them to that file. A line is written
and flushed at once unless the last write is less than `write_every_s` (50 ms) old; then it
waits for the first line after that, or for the loop's next idle turn, or for close(). Frames
50 ms or more apart get one write each; faster ones, one write per 50 ms, and their lines are
formatted only then. Formatting a line and writing it, right after an invoke has evicted the
CPU caches, was one of the largest parts of a sub-ms frame's Python (bench/device_runtime.py
measures the loop's overhead with a file log). A signal or an exception in the loop still
writes every line, since run_camera closes the telemetry. Only a hard crash (SIGKILL, a
fault in native code) can lose the lines of the last 50 ms. The summary goes to stderr (fps,
mean and p95 latency against the budget, exit mix, drops, temperature). Latencies are kept in
a ring allocated at start, so memory does not grow with frames.
"""
from __future__ import annotations

import array
import json
import sys
import time

import numpy as np

from device.errors import UserError


class TelemetryError(UserError, ValueError):
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
    """The last `capacity` latencies (seconds) in a preallocated array.

    extend() stores into an array.array, which takes Python floats without making numpy
    scalars; `values` is a numpy view of the same memory for the summaries."""

    def __init__(self, capacity: int):
        self._store = array.array("d", bytes(8 * capacity))
        self.values = np.frombuffer(self._store, dtype=np.float64)
        self._capacity = capacity
        self.count = 0

    def extend(self, seconds: list) -> None:
        """Store each value in turn, overwriting the oldest: one or two slice assignments."""
        if not seconds:
            return  # an empty slice assignment to an exported array.array raises
        capacity = self._capacity
        values = seconds[-capacity:]  # any before these would be overwritten by them
        start = (self.count + len(seconds) - len(values)) % capacity
        first = values[:capacity - start]
        self._store[start:start + len(first)] = array.array("d", first)
        if len(first) < len(values):  # the rest wraps round
            self._store[:len(values) - len(first)] = array.array("d", values[len(first):])
        self.count += len(seconds)

    def filled(self) -> np.ndarray:
        return self.values[: min(self.count, len(self.values))]

    def latest(self, n: int) -> np.ndarray:
        """The last n latencies (fewer when the ring holds fewer), in no particular order."""
        n = min(n, self.count, len(self.values))
        return np.take(self.values, np.arange(self.count - n, self.count), mode="wrap")


_JSON_BOOL = ("false", "true")


class _LineFormat:
    """Writes the per-frame JSON line from a %-template: the fields json.dumps would give for

        {"time", "frame", "label", "score", "entropy", "exit_subnet", "deadline_cut", "latency_ms",
         "budget_ms", "policy", "router_control", "cpu_load", "temperature_c", "drops", "bad_frames"}

    in that order, at a fraction of its cost per frame: one C-level formatting call for the
    per-frame numbers of all the lines of a write (time to 0.1 ms, score and entropy to 5
    decimals, latency to 1 us).
    Strings and the fields that seldom change (router setting, sensor reading, source
    counters) go through the json encoder.
    """

    _TEMPLATE = ('{"time": %.4f, "frame": %d, "label": %s, "score": %.5f, "entropy": %.5f, '
                 '"exit_subnet": %d, "deadline_cut": %s, "latency_ms": %.3f, %s%s}\n')

    def __init__(self, labels, budget_ms: float, policy: str):
        self._encode = json.JSONEncoder(ensure_ascii=False).encode
        self._labels = [self._encode(label) for label in labels]
        self._fixed = f'"budget_ms": {self._encode(budget_ms)}, "policy": {self._encode(policy)}, '

    def lines(self, rows, wall_offset: float) -> str:
        """The lines, newline included, of frames' rows as Telemetry.record keeps them: (clock
        time, frame id, result, latency, control, reading, drops, bad frames); wall_offset turns
        the clock time into time.time()'s. One formatting call for all of them. The fields from
        router_control on are re-encoded only where they changed from the row before; all state
        is local, as the /metrics thread formats lines too."""
        labels, fixed = self._labels, self._fixed
        values = []
        add = values.extend
        tail_of = None  # (control, reading, drops, bad frames) whose text `tail` is
        for clock_time, frame_id, result, latency_s, control, reading, drops, bad_frames in rows:
            if (tail_of is None or control is not tail_of[0] or reading is not tail_of[1]
                    or drops != tail_of[2] or bad_frames != tail_of[3]):
                tail_of = (control, reading, drops, bad_frames)
                tail = (f'"router_control": {self._encode(control)}, '
                        f'"cpu_load": {self._encode(reading.cpu_load)}, '
                        f'"temperature_c": {self._encode(reading.temperature)}, '
                        f'"drops": {self._encode(drops)}, "bad_frames": {self._encode(bad_frames)}')
            label, score, entropy, exit_subnet, _, cut = result[:6]
            add((clock_time + wall_offset, frame_id, labels[label], score, entropy, exit_subnet, _JSON_BOOL[cut],
                 latency_s * 1e3, fixed, tail))
        return (self._TEMPLATE * len(rows)) % tuple(values)


class Telemetry:
    """Per-frame JSON lines + periodic and final summaries.

    A frame only keeps its row; every `write_every_s`, and whenever flush() is called, the rows
    kept since the last write become lines, running totals (for /metrics) and ring latencies
    (for the summaries): that work then runs once for many frames, with warm caches, and the
    totals lag the frames by at most `write_every_s`.
    """

    def __init__(self, stream, labels, budget_s: float, num_subnets: int, policy: str,
                 summary_every_s: float = 5.0, summary_stream=None, clock=time.monotonic,
                 write_every_s: float = 0.05):
        self.stream = stream
        self.labels = labels
        self.budget_s = budget_s
        self.policy = policy
        self.summary_every_s = summary_every_s
        self.summary_stream = summary_stream or sys.stderr  # the stream at start, not at import
        self.clock = clock
        self.write_every_s = write_every_s
        self.started = clock()
        self._latencies = LatencyRing(16384)  # a summary interval is its latest frames
        self.exits = [0] * num_subnets
        self._interval_from = (0, list(self.exits))  # frames and exits at the interval's start
        self._interval_start = self.started
        self.frames = 0
        self.over_budget = 0
        self.latency_sum = 0.0
        self._pending = []  # rows of the frames since the last flush
        self._write_at = float("-inf")  # clock() from which a frame's row is flushed at once
        self._last_row = None
        self._line = _LineFormat(labels, round(budget_s * 1e3, 3), policy)

    def record(self, frame_id: int, result, latency_s: float, control, reading, source) -> None:
        """Log one frame (result: cascade Result; reading: router Reading; source: its counters).
        The row keeps this clock's time, which also schedules the writes; lines turn it into
        wall time when they are formatted."""
        now = self.clock()
        self._last_row = row = (now, frame_id, result, latency_s, control, reading, source.drops, source.bad_frames)
        self._pending.append(row)
        if now >= self._write_at:
            self.flush()

    def flush(self) -> None:
        """Count, log and write the frames recorded since the last flush; print a summary when
        one is due. The loop also calls it when no frame came."""
        rows = self._pending
        if not rows:
            return
        self._pending = []
        exits, budget_s = self.exits, self.budget_s
        for row in rows:
            exits[row[2].exit_subnet - 1] += 1
        latencies = [row[3] for row in rows]
        self.latency_sum += sum(latencies)
        self.over_budget += len([seconds for seconds in latencies if seconds > budget_s])
        self._latencies.extend(latencies)
        self.frames += len(rows)
        if self.stream is not None:
            self.stream.write(self._line.lines(rows, self._wall_offset()))
            self.stream.flush()
        now = self.clock()
        self._write_at = now + self.write_every_s
        if now - self._interval_start >= self.summary_every_s:
            frames, exits = self._interval_from
            self._summary(now - self._interval_start, self._latencies.latest(self.frames - frames),
                          [n - m for n, m in zip(self.exits, exits)], "")
            self._interval_from = (self.frames, list(self.exits))
            self._interval_start = now

    @property
    def line(self) -> str:
        """The last frame's JSON line, without the newline ("" before the first frame)."""
        row = self._last_row
        return "" if row is None else self._line.lines([row], self._wall_offset())[:-1]

    def _wall_offset(self) -> float:
        """What to add to a clock() time to get time.time()'s."""
        return time.time() - self.clock()

    @property
    def last(self) -> dict:
        """The last frame's fields, as logged ({} before the first frame); read every few seconds
        at most (summaries, /metrics), so parsing the line beats building a dict per frame."""
        line = self.line
        return json.loads(line) if line else {}

    def _summary(self, seconds: float, lat: np.ndarray, exits: list, prefix: str) -> None:
        if len(lat) == 0:
            return
        frames = sum(exits)
        mix = " ".join(f"{k}:{100.0 * n / frames:.0f}%" for k, n in enumerate(exits, start=1))
        last = self.last
        temp = last.get("temperature_c")
        line = (f"{prefix}{frames / max(seconds, 1e-9):.1f} fps | latency mean {lat.mean() * 1e3:.1f} ms "
                f"p95 {np.percentile(lat, 95) * 1e3:.1f} ms / budget {self.budget_s * 1e3:.1f} ms "
                f"({100.0 * (lat > self.budget_s).mean():.1f}% over) | exits {mix} | "
                f"drops {last.get('drops', 0)} bad {last.get('bad_frames', 0)} | "
                f"temp {'n/a' if temp is None else f'{temp:.1f} C'}")
        if last.get("router_control") is not None:
            line += f" | q {last['router_control']:.3f}"
        print(line, file=self.summary_stream, flush=True)

    def close(self) -> None:
        """Flush; final summary over the whole run; close the log file."""
        self.flush()
        self._summary(self.clock() - self.started, self._latencies.filled(), self.exits,
                      f"done: {self.frames} frames, ")
        if self.stream is not None and self.stream is not sys.stdout:
            self.stream.close()
