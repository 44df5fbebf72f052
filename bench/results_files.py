"""Where a benchmark leaves its figures: <out>/<name>.json (every figure) and <name>.md (the report)."""
import json
from pathlib import Path


def write_results(out: Path, name: str, report: dict, markdown: str) -> None:
    """Write both files and echo the Markdown report to stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=1))
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
