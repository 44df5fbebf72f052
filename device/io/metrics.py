"""--metrics-port: the daemon's counters as Prometheus text on 127.0.0.1 (stdlib only).

A thread serves GET /metrics from the telemetry's running totals; it binds to localhost so
that exposing it further is a deliberate choice (a reverse proxy, an SSH tunnel).
"""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def prometheus_text(telemetry) -> str:
    """The exposition-format text for one telemetry object."""
    last = telemetry.last
    lines = []

    def metric(name, kind, help_text, samples):
        lines.append(f"# HELP dynedge_{name} {help_text}")
        lines.append(f"# TYPE dynedge_{name} {kind}")
        for labels, value in samples:
            if value is not None:
                lines.append(f"dynedge_{name}{labels} {float(value):g}")

    metric("frames_total", "counter", "Frames answered.", [("", telemetry.frames)])
    metric("frames_over_budget_total", "counter", "Frames whose latency passed the budget.",
           [("", telemetry.over_budget)])
    metric("latency_seconds", "summary", "Frame latency (preprocessing + cascade).",
           [("_sum", telemetry.latency_sum), ("_count", telemetry.frames)])
    metric("exits_total", "counter", "Frames answered by each subnet.",
           [(f'{{subnet="{k}"}}', n) for k, n in enumerate(telemetry.exits, start=1)])
    metric("budget_seconds", "gauge", "Latency budget per frame.", [("", telemetry.budget_s)])
    metric("router_control", "gauge", "Router control q on the calibrated curve (higher: more early exits).",
           [("", last.get("router_control"))])
    metric("drops_total", "counter", "Camera frames replaced by a newer one before use.",
           [("", last.get("drops", 0))])
    metric("bad_frames_total", "counter", "Frames that could not be read or decoded.",
           [("", last.get("bad_frames", 0))])
    metric("temperature_celsius", "gauge", "Board temperature.", [("", last.get("temperature_c"))])
    metric("cpu_load_percent", "gauge", "System CPU load.", [("", last.get("cpu_load"))])
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves prometheus_text(telemetry) at http://127.0.0.1:PORT/metrics in a daemon thread."""

    def __init__(self, port: int, telemetry):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] not in ("/", "/metrics"):
                    self.send_error(404)
                    return
                body = prometheus_text(telemetry).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass  # scrapes every few seconds would flood stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]  # the real one when 0 asked for any free port
        self._thread = threading.Thread(target=self._server.serve_forever, name="dynedge-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
