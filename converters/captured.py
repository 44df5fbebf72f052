"""The converter's own output kept in a log file, so that a build prints the kit's lines only.

litert-torch and the LiteRT converter print their progress from Python (print, warnings,
logging) and from C++ (straight to file descriptors 1 and 2): thousands of lines for one build.
While `output_to(path)` is open, all of it goes to the file; the caller's own progress lines go
to the stream it yields, the terminal. If the block fails, the log's last lines are shown with
the file's name before the error goes on.
"""
import os
import sys
from contextlib import contextmanager
from pathlib import Path

TAIL_LINES = 30


@contextmanager
def output_to(log_path: Path):
    """Send descriptors 1 and 2 and Python's stdout/stderr to `log_path` (appended); yield the terminal."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = open(os.dup(saved[1]), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    python_streams = sys.stdout, sys.stderr
    with open(log_path, "a", buffering=1, encoding="utf-8", errors="backslashreplace") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = sys.stderr = log
        try:
            yield terminal
        except BaseException:
            log.flush()
            lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
            print("\n".join(["--- the converter's last lines (all in %s) ---" % log_path, *lines, "---"]),
                  file=terminal)
            raise
        finally:
            log.flush()
            sys.stdout, sys.stderr = python_streams
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            terminal.close()
