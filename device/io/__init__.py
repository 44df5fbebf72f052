"""Frames in and answers out: sources, preprocessing, the JSON-line telemetry.

device.io.metrics (Prometheus text over HTTP) and device.io.overlay (an OpenCV window) are
imported where they are asked for."""
from device.io.preprocess import MEAN_RGB, STD_RGB, frame_to_input
from device.io.sources import ArraySource, PacedSource, SourceError, open_source, pace
from device.io.telemetry import Telemetry, TelemetryError, open_log

__all__ = ["ArraySource", "PacedSource", "MEAN_RGB", "STD_RGB", "SourceError", "Telemetry", "TelemetryError", "frame_to_input",
           "open_log", "open_source", "pace"]
