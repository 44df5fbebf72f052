"""Telemetry lines and summaries, the loop's time accounting, the Prometheus endpoint and the
systemd notifier."""
import io
import json
import socket
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest

from device.engine.cascade import Result
from device.service.daemon import run_loop
from device.service.runtime_logs import is_noise
from device.io import ArraySource
from device.io.metrics import MetricsServer
from device.policy.router import Reading
from device.io.telemetry import LatencyRing, Telemetry
from device.service.watchdog import SystemdNotifier
from tests.device_fakes import FakeClock

SOURCE = SimpleNamespace(drops=3, bad_frames=1)


def record_frames(telemetry, clock, latencies):
    for i, latency in enumerate(latencies):
        result = Result(label=1, score=0.9, entropy=0.2, exit_subnet=1 + i % 2, stage_latencies=(latency,),
                        deadline_cut=False)
        clock.advance(latency)
        telemetry.record(i, result, latency, 0.5, Reading(40.0, 10.0, 55.0), SOURCE)


def test_one_json_line_per_frame_and_summaries():
    clock, log, summary = FakeClock(), io.StringIO(), io.StringIO()
    telemetry = Telemetry(log, ["cat", "dog"], 0.040, 2, "router", summary_every_s=1.0,
                          summary_stream=summary, clock=clock)
    record_frames(telemetry, clock, [0.030] * 40 + [0.050] * 10)
    telemetry.flush()  # as the loop's idle turn does: a line within 50 ms of a write waits for the next
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert len(lines) == 50
    assert lines[-1] | {"time": 0} == {
        "time": 0, "frame": 49, "label": "dog", "score": 0.9, "entropy": 0.2, "exit_subnet": 2,
        "deadline_cut": False, "latency_ms": 50.0, "budget_ms": 40.0, "policy": "router", "router_control": 0.5,
        "cpu_load": 40.0, "temperature_c": 55.0, "drops": 3, "bad_frames": 1}
    telemetry.close()
    text = summary.getvalue().splitlines()
    assert len(text) >= 2 and "exits 1:50% 2:50%" in text[-1] and "budget 40.0 ms" in text[-1]
    assert text[-1].startswith("done: 50 frames") and "(20.0% over)" in text[-1] and "temp 55.0 C" in text[-1]


def test_metrics_endpoint_serves_prometheus_text():
    clock = FakeClock()
    telemetry = Telemetry(None, ["cat", "dog"], 0.040, 2, "router", summary_stream=io.StringIO(), clock=clock)
    record_frames(telemetry, clock, [0.030, 0.050, 0.020])
    telemetry.flush()  # the totals follow the writes; the third frame came 20 ms after one
    server = MetricsServer(0, telemetry)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.close()
    assert "dynedge_frames_total 3" in body and "dynedge_frames_over_budget_total 1" in body
    assert 'dynedge_exits_total{subnet="2"} 1' in body and "dynedge_temperature_celsius 55" in body


def test_systemd_notifier_sends_ready_and_rate_limited_watchdog(tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(2)
        clock = FakeClock()
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"}, clock=clock)
        notifier.ready()
        for _ in range(3):
            notifier.ping()      # once: the next is due after WatchdogSec / 2 = 5 s
        clock.advance(5.0)
        notifier.ping()
        messages = [server.recv(100).decode() for _ in range(3)]
    assert messages == ["READY=1", "WATCHDOG=1", "WATCHDOG=1"]


def test_notifier_is_silent_outside_systemd(monkeypatch):
    """With no NOTIFY_SOCKET (a shell, a container) no call opens a socket."""
    opened = []
    monkeypatch.setattr("device.service.watchdog.socket.socket", lambda *a: opened.append(a))
    notifier = SystemdNotifier({"WATCHDOG_USEC": "10000000"})
    assert not notifier.enabled
    notifier.ready("budget 40 ms")
    notifier.ping()
    notifier.stopping()
    assert opened == []


def test_json_line_holds_the_documented_fields_in_order(monkeypatch):
    """The template line must parse to json.dumps's line of the documented fields: same keys in
    the same order, same values at the documented rounding."""
    monkeypatch.setattr("device.io.telemetry.time.time", lambda: 1700000000.123456)
    log = io.StringIO()
    telemetry = Telemetry(log, ['chat "noir"', "château"], 0.0405, 2, "fixed:2", summary_stream=io.StringIO(),
                          clock=FakeClock())  # the frames' clock times are the flush's: their wall time is time()
    frames = [(Result(0, 0.123456789, 1.987654321, 2, (0.001,), True), 0.0123456, None, Reading(12.5, 3.0, None)),
              (Result(1, 1.0, 0.0, 1, (0.001,), False), 0.02, 0.35, Reading(None, None, 61.25)),
              (Result(1, 0.5, 0.25, 1, (0.001,), False), 0.03, 0.35, Reading(None, None, 61.25))]
    for frame_id, (result, latency, control, reading) in enumerate(frames):
        telemetry.record(frame_id, result, latency, control, reading, SimpleNamespace(drops=frame_id, bad_frames=2))
    telemetry.flush()  # the frames came within one write interval
    expected = [json.dumps({
        "time": 1700000000.1235, "frame": i, "label": telemetry.labels[r.label], "score": round(r.score, 5),
        "entropy": round(r.entropy, 5), "exit_subnet": r.exit_subnet, "deadline_cut": r.deadline_cut,
        "latency_ms": round(lat * 1e3, 3), "budget_ms": 40.5, "policy": "fixed:2", "router_control": control,
        "cpu_load": reading.cpu_load, "temperature_c": reading.temperature, "drops": i, "bad_frames": 2},
        ensure_ascii=False) for i, (r, lat, control, reading) in enumerate(frames)]
    lines = log.getvalue().splitlines()
    assert [list(json.loads(line).items()) for line in lines] == [list(json.loads(e).items()) for e in expected]
    assert telemetry.last == json.loads(expected[-1])


def test_lines_are_written_at_once_after_a_quiet_interval_and_grouped_within_one():
    """A frame's line is written at once when the last write is write_every_s old, else with the
    first line after that; the totals for /metrics follow the writes; an idle loop turn and
    close() write what waits."""
    class Log(io.StringIO):
        def close(self):
            self.at_close = self.getvalue()
            super().close()

    clock, log = FakeClock(), Log()
    telemetry = Telemetry(log, ["cat", "dog"], 0.040, 2, "router", summary_stream=io.StringIO(), clock=clock,
                          write_every_s=0.020)
    result = Result(0, 0.9, 0.2, 1, (0.001,), False)

    def record(frame_id, after_s):
        clock.advance(after_s)
        telemetry.record(frame_id, result, 0.001, None, Reading(None, None, None), SOURCE)
        return len(log.getvalue().splitlines()), telemetry.frames

    assert record(0, 0.0) == (1, 1)      # first line: at once
    assert record(1, 0.005) == (1, 1)    # 5 ms after the write: held
    assert record(2, 0.005) == (1, 1)
    assert record(3, 0.015) == (4, 4)    # 25 ms after it: written with the held ones, in order
    assert record(4, 0.030) == (5, 5)    # camera-paced frames, 30 ms apart: one write each
    assert record(5, 0.001) == (5, 5)
    clock.advance(0.5)
    no_frame = SimpleNamespace(ended=True, read=lambda timeout_s: None)
    run_loop(no_frame, SimpleNamespace(input_shape=(1, 8, 8, 3), input=None), None, telemetry)
    assert [json.loads(line)["frame"] for line in log.getvalue().splitlines()] == list(range(6))
    record(6, 0.0)
    record(7, 0.001)
    telemetry.close()  # writes line 7 before closing the stream
    assert [json.loads(line)["frame"] for line in log.at_close.splitlines()] == list(range(8))
    assert telemetry.frames == 8


def test_latency_ring_latest_wraps_around():
    ring = LatencyRing(4)
    ring.extend([1.0, 2.0, 3.0])
    ring.extend([4.0, 5.0, 6.0])  # wraps: 5 and 6 overwrite 1 and 2
    assert sorted(ring.latest(3)) == [4.0, 5.0, 6.0] and sorted(ring.latest(10)) == [3.0, 4.0, 5.0, 6.0]
    assert len(LatencyRing(4).latest(2)) == 0


@pytest.mark.parametrize("batches", [[10], [3, 9], [1, 1, 1, 1, 1, 6], [4, 4, 2], [0, 5]])
def test_latency_ring_extend_equals_storing_one_at_a_time(batches):
    ring, expected, value = LatencyRing(4), [0.0] * 4, 0.0
    for size in batches:
        batch = [value + i for i in range(1, size + 1)]
        value += size
        for v in batch:
            expected[int(v - 1) % 4] = v
        ring.extend(batch)
    assert list(ring.values) == expected and ring.count == value


def test_loop_time_ends_before_the_on_frame_callback():
    """loop_s counts preprocessing, the cascade, the router and the log line, not on_frame's work."""
    clock = FakeClock()

    class Cascade:
        input_shape = (1, 8, 8, 3)
        input = np.zeros(input_shape, np.float32)

        def infer(self, image, thresholds, deadline_s):
            clock.advance(0.010)
            return Result(0, 0.9, 0.1, 1, (0.004, 0.004), False)

    class Policy:
        deadline_s, thresholds, control = None, None, None

        def update(self, latency_s, result=None):
            clock.advance(0.001)

    telemetry = Telemetry(io.StringIO(), ["cat"], 0.040, 1, "test", summary_stream=io.StringIO(), clock=clock)
    seen = []
    stats = run_loop(ArraySource(np.zeros((1, 8, 8, 3), np.uint8)), Cascade(), Policy(), telemetry, max_frames=3, clock=clock,
                     on_frame=lambda frame, result, latency: (seen.append(latency), clock.advance(1.0)))
    assert stats.frames == 3 and seen == [pytest.approx(0.010)] * 3
    assert stats.loop_s == pytest.approx(3 * 0.011) and stats.overhead_s == pytest.approx(3 * 0.003)


@pytest.mark.parametrize("line, noise", [
    ("INFO: [accelerator_registry.cc:43] DestroyAccelerator: ptr=0x1, name=GPU WebGPU\n", True),
    ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n", True),
    ("WARNING: [npu_registry.cc:34] NPU accelerator could not be loaded and registered\n", True),
    ("└ Could not load shared library libLiteRtCompilerPlugin.so\n", True),
    ("WARNING: [tflite] a model file it cannot run\n", False),
    ("ERROR: tensor 'args_0' has dynamic shape\n", False),
    ("done: 10 frames, 30.0 fps\n", False),
])
def test_only_the_runtimes_noise_is_left_out(line, noise):
    assert is_noise(line) == noise
