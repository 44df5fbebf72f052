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

from device.profiling.profiler import main  # noqa: E402
from device.service.runtime_logs import run_script  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_script(main))
