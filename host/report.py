"""Compare profile reports from several boards or bundles, or draw one board's plots on the host.

    python host/report.py A/report.json B/report.json ... [--out DIR] [--labels a,b,...]
    python host/report.py --plots profiles/reports/rpi4/<bundle>/report.json

The first form prints one table (a row per figure, a column per report) and writes it with
overlaid plots to --out. The second draws the plots a board without matplotlib could not, next
to its report.json (or into --out). The plot code is device/profiling/plots.py, shared with the board.
"""
import json
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: import from the repository root, not host/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from device.errors import UserError  # noqa: E402
from device.flags import Parser, add_out, run_cli  # noqa: E402
from device.profiling import plots  # noqa: E402
from device.profiling.report import REPORT_FORMAT, REPORT_VERSION  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "profiles" / "reports" / "comparison"


class ReportError(UserError, ValueError):
    """A file that is not a readable profile report."""


def load_report(path: Path) -> dict:
    """A report.json written by device/profile.py; ReportError names the file otherwise."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path} does not exist; pass report.json files written by "
                          "device/profile.py") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(report, dict) or report.get("format") != REPORT_FORMAT:
        raise ReportError(f"{path} is not a dynedge profile report (format "
                          f"{report.get('format') if isinstance(report, dict) else None!r})")
    if report.get("format_version") != REPORT_VERSION:
        raise ReportError(f"{path} has report format version {report.get('format_version')!r}; "
                          f"this tool reads version {REPORT_VERSION}")
    return report


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _best_router(report: dict):
    """The router run with the highest measured accuracy whose p95 held its budget, or None."""
    held = [r for r in report["router"]
            if r["latency_ms"]["p95"] <= r["budget_ms"] and r.get("accuracy") is not None]
    return max(held, key=lambda r: r["accuracy"], default=None)


def comparison_rows(reports: list[dict]) -> list[list[str]]:
    """[figure (unit), value per report...] rows; 'n/a' where a report lacks the figure."""
    depth = max(len(r["subnets"]) for r in reports)
    rows = [["board", *[r["board"]["name"] for r in reports]],
            ["bundle", *[r["bundle"]["name"] for r in reports]],
            ["precision", *[r["bundle"]["precision"] for r in reports]],
            ["runtime", *[r["runtime"]["name"] for r in reports]],
            ["threads (count)", *[str(r["board"]["threads"]) for r in reports]],
            ["mode", *[r["mode"] for r in reports]],
            ["bundle load (ms)", *[_num(r["load"]["bundle_load_ms"]) for r in reports]],
            ["first inference (ms)", *[_num(r["load"]["first_inference_ms"]) for r in reports]]]
    for k in range(1, depth + 1):
        subs = [next((s for s in r["subnets"] if s["index"] == k), None) for r in reports]
        rows.append([f"subnet {k} alone p50 (ms)",
                     *[_num(s["cumulative_ms"]["p50"]) if s else "n/a" for s in subs]])
        rows.append([f"subnet {k} top-1, measured (%)",
                     *[_num(100 * s["accuracy"], 1) if s and s.get("accuracy") is not None
                       else "n/a" for s in subs]])
    rows.append(["cache / recompute, escalation to K (x)",
                 *[_num(r["cache"]["ratio"], 3) for r in reports]])
    best = [_best_router(r) for r in reports]
    rows.append(["best router budget held (ms)", *[_num(b["budget_ms"]) if b else "n/a" for b in best]])
    rows.append(["  its p95 (ms)", *[_num(b["latency_ms"]["p95"]) if b else "n/a" for b in best]])
    rows.append(["  its top-1, measured (%)", *[_num(100 * b["accuracy"], 1) if b else "n/a"
                                                for b in best]])
    rows.append(["system load during the run (load average per CPU)",
                 *[_num(max(r["system"]["load_avg_1min_before"], r["system"]["load_avg_1min_after"])
                        / r["system"]["cpus"]) for r in reports]])
    rows.append(["peak RSS (MiB)", *[_num(r["memory"]["peak_rss_mib"], 1) for r in reports]])
    rows.append(["temperature after (°C)", *[_num(r["thermal"]["after_c"], 1) for r in reports]])
    rows.append(["throttling seen (state)", *[r["thermal"]["throttle_state"] for r in reports]])
    return rows


def comparison_markdown(reports: list[dict], labels: list[str], paths: list[Path],
                        plot_files: list[str]) -> str:
    lines = ["# dynedge profile comparison", ""]
    lines += [f"- {label}: `{path}` ({r['created']})" for label, path, r in zip(labels, paths, reports)]
    lines += ["", "All figures were measured on the board named in each column, except where a row "
              "says otherwise; 'n/a' = the report has no such figure (e.g. no labeled images).", "",
              "| figure (unit) | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += ["| " + " | ".join(row) + " |" for row in comparison_rows(reports)]
    lines += [""] + [f"![{name}]({name})" for name in plot_files]
    return "\n".join(lines) + "\n"


def compare(paths: list[Path], out_dir: Path, labels: list[str] | None) -> Path:
    """Write comparison.md and the overlaid plots; print the Markdown; return the .md path."""
    reports = [load_report(p) for p in paths]
    labels = labels or [f"{r['board']['name']} / {r['bundle']['name']}" for r in reports]
    if len(labels) != len(reports):
        raise ReportError(f"--labels has {len(labels)} names for {len(reports)} reports")
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_files = []
    if plots.matplotlib_available():
        plot_files = [plots.accuracy_vs_latency(reports, out_dir / "accuracy_vs_latency.png", labels).name,
                      plots.subnet_latency_bars(reports, out_dir / "subnet_latency.png", labels).name]
    text = comparison_markdown(reports, labels, paths, plot_files)
    md_path = out_dir / "comparison.md"
    md_path.write_text(text, encoding="utf-8")
    print(text)
    return md_path


def draw_plots(path: Path, out_dir: Path | None) -> list[Path]:
    """A board's plots from its report.json (the board may have had no matplotlib)."""
    report = load_report(path)
    if not plots.matplotlib_available():
        raise ReportError("matplotlib is not installed here: pip install -r requirements-host.txt")
    written = plots.draw_report_plots(report, out_dir or Path(path).parent)
    for p in written:
        print(p)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="report.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="*", type=Path, help="report.json files to compare")
    parser.add_argument("--plots", type=Path, metavar="REPORT_JSON",
                        help="draw this report's plots (beside it, or into --out)")
    add_out(parser, "output folder", f"beside the report for --plots; {DEFAULT_OUT} to compare")
    parser.add_argument("--labels", help="comma-separated column names, one per report")
    args = parser.parse_args(argv)
    if args.plots:
        draw_plots(args.plots, args.out)
    elif args.reports:
        compare(args.reports, args.out or DEFAULT_OUT, args.labels.split(",") if args.labels else None)
    else:
        raise ReportError("give report.json files to compare, or --plots REPORT_JSON")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
