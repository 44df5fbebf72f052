"""Peak resident memory of this process, as the process itself reached it.

getrusage's ru_maxrss is not that for a child process on Linux: the peak carries over fork and
exec, so a daemon started from a large parent (a benchmark that has loaded frames and
interpreters, or torch) reports the parent's peak. /proc/self/status's VmHWM belongs to the
process's own address space, made anew at exec; ru_maxrss is the fallback where /proc is
missing (macOS: bytes, Linux: KiB).
"""
from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
