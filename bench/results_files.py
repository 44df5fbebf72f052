"""Where a benchmark leaves its figures: <out>/<name>.json (every figure) and <name>.md (the report)."""
import json
import os
import sys
from pathlib import Path


def command_line() -> str:
    """This run's command as typed, with the OMP_NUM_THREADS it ran under (it changes the timings)."""
    return " ".join([f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')}", sys.executable, *sys.argv])


def write_results(out: Path, name: str, report: dict, markdown: str) -> None:
    """Write both files and echo the Markdown report to stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1))
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
