"""Telemetry lines and summaries, the Prometheus endpoint and the systemd notifier."""
import io
import json
import socket
import urllib.request
from types import SimpleNamespace

from device.cascade import Result
from device.metrics import MetricsServer
from device.router import Reading
from device.telemetry import Telemetry
from device.watchdog import SystemdNotifier
from tests.device_fakes import FakeClock

SOURCE = SimpleNamespace(drops=3, bad_frames=1)


def record_frames(telemetry, clock, latencies):
    for i, latency in enumerate(latencies):
        result = Result(label=1, score=0.9, entropy=0.2, exit_subnet=1 + i % 2, stage_latencies=(latency,),
                        deadline_cut=False)
        clock.advance(latency)
        telemetry.record(i, result, latency, 0.5, Reading(40.0, 10.0, 55.0), SOURCE)


def test_one_flushed_json_line_per_frame_and_summaries():
    clock, log, summary = FakeClock(), io.StringIO(), io.StringIO()
    telemetry = Telemetry(log, ["cat", "dog"], 0.040, 2, "router", summary_every_s=1.0,
                          summary_stream=summary, clock=clock)
    record_frames(telemetry, clock, [0.030] * 40 + [0.050] * 10)
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


def test_notifier_is_silent_outside_systemd():
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    notifier.ready()
    notifier.ping()
