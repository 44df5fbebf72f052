"""Keep the TFLite runtimes' own log lines off the daemon's stderr unless asked (--verbose).

ai-edge-litert writes INFO lines from C++ straight to file descriptor 2 (environment set-up,
accelerator registration and destruction, XNNPACK) and warnings about optional accelerators a
board does not have (NPU, vendor compiler plugins); no Python or environment setting lowers
them. So file descriptor 2 becomes a pipe read by a thread that passes on every other line,
while Python's own sys.stderr (the summary lines, log records, tracebacks) keeps writing to the
original descriptor directly, so nothing of ours waits on the thread or is lost at exit.
"""
from __future__ import annotations

import os
import re
import sys
import threading

from device.flags import run_cli

# runtime lines that say nothing a user can act on
NOISE = re.compile(r"^(INFO: |└ |WARNING: \[(npu_registry|compiler_plugin)\.cc)")


def is_noise(line: str) -> bool:
    return bool(NOISE.match(line))


def run_script(main) -> int:
    """A device script's entry point: the runtimes' noise filtered unless --verbose, then `main`
    under run_cli (a user's mistake is one line and exit 2)."""
    if "--verbose" not in sys.argv[1:]:
        filter_runtime_logs()
    return run_cli(main)


def filter_runtime_logs() -> None:
    """From now on, drop the runtimes' noise lines (is_noise) written to descriptor 2."""
    original = os.dup(2)
    sys.stderr.flush()
    sys.stderr = open(original, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    threading.Thread(target=_pass_on, args=(read_end, original), name="dynedge-runtime-logs", daemon=True).start()


def _pass_on(read_end: int, original: int) -> None:
    with open(read_end, "r", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not is_noise(line):
                os.write(original, line.encode("utf-8", "backslashreplace"))
