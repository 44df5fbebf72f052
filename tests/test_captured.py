"""converters.captured.output_to: a converter's output of every kind lands in the log file, the
caller's own lines on the terminal, and a failure shows the log's tail."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = """
import os, sys, warnings, logging
from pathlib import Path
from converters.captured import output_to
logging.basicConfig(stream=sys.stderr)
with output_to(Path(sys.argv[1])) as terminal:
    print("ours", file=terminal)
    print("python print")
    warnings.warn("a FutureWarning of the converter", FutureWarning)
    logging.getLogger("litert").warning("a log record")
    os.write(1, b"C++ stdout\\n")
    os.write(2, b"C++ stderr\\n")
    if sys.argv[2] == "fail":
        raise RuntimeError("conversion failed")
print("after")
"""


def run(tmp_path, mode):
    log = tmp_path / "convert.log"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(log), mode], cwd=REPO, capture_output=True, text=True)
    return proc, log.read_text()


def test_everything_the_converter_prints_goes_to_the_log(tmp_path):
    proc, log = run(tmp_path, "ok")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "ours\n" and proc.stdout == "after\n"
    for line in ("python print", "a FutureWarning of the converter", "a log record", "C++ stdout", "C++ stderr"):
        assert line in log


def test_a_failure_shows_the_logs_tail_and_names_it(tmp_path):
    proc, log = run(tmp_path, "fail")
    assert proc.returncode == 1
    assert "the converter's last lines (all in" in proc.stderr and "C++ stderr" in proc.stderr
    assert "RuntimeError: conversion failed" in proc.stderr  # the error itself reaches the terminal
