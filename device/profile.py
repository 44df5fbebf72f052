#!/usr/bin/env python3
"""Profile a bundle on this board and write a report to read, compare and share.

    python device/profile.py [--bundle DIR] [--board NAME|auto|FILE.toml] [--out DIR] [--quick]

`--help` lists the flags; device/profiling/profiler.py holds the measurements.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: import from the folder holding device/, not device/ itself
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from device.flags import run_cli  # noqa: E402
from device.profiling.profiler import main  # noqa: E402
from device.service.runtime_logs import filter_runtime_logs  # noqa: E402

if __name__ == "__main__":
    if "--verbose" not in sys.argv[1:]:
        filter_runtime_logs()
    sys.exit(run_cli(main))
