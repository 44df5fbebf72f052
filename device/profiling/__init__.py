"""Measuring a bundle on a board: the timing harness, the report and its plots."""
from device.profiling.report import REPORT_FORMAT, REPORT_VERSION, write_report
from device.profiling.timing import benchmark, median_ms, summarize, time_call

__all__ = ["REPORT_FORMAT", "REPORT_VERSION", "benchmark", "median_ms", "summarize", "time_call", "write_report"]
