"""Write a profile report: report.json (the data), report.md (for people) and the plots.

The Markdown opens with one summary table, a status per row (as Ultralytics' benchmark prints),
then detail tables. Every figure has its unit in the row or the column header, and a "source"
column says whether it was measured on this board by this run or copied from the bundle manifest
(host figures): the two are never mixed silently.
"""
from __future__ import annotations

import json
from pathlib import Path

from device.profiling import plots

REPORT_FORMAT = "dynedge-profile-report"
REPORT_VERSION = 1
MEASURED = "measured"
MANIFEST = "manifest (host)"
NOT_AVAILABLE = "not available"
# Above this, other processes hold the CPUs for whole scheduler slices (milliseconds) and a
# timed region that spans one is inflated: the figures then describe a shared, not an idle, board.
BUSY_LOAD_PER_CPU = 0.5


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(fraction) -> str:
    return NOT_AVAILABLE if fraction is None else f"{100.0 * fraction:.1f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _accuracy_status(report: dict) -> str:
    return "ok" if report["bundle"]["eval_images"] else "skipped: bundle has no labeled images"


def summary_rows(report: dict) -> list[list]:
    """[what, value, unit, source, status] rows of the summary table."""
    rows = [["bundle load: manifest + sha256 of every file", report["load"]["verify_ms"],
             "ms", MEASURED, "ok"],
            ["bundle load: interpreters created, allocated and run once", report["load"]["interpreters_ms"],
             "ms", MEASURED, "ok"],
            ["bundle load: total", report["load"]["bundle_load_ms"], "ms", MEASURED, "ok"],
            ["first inference (every stage, first frame after load)", report["load"]["first_inference_ms"],
             "ms", MEASURED, "ok"],
            ["warm-up mean (every stage)", report["load"]["warmup_ms"].get("mean"),
             "ms", MEASURED, "ok"]]
    for sub in report["subnets"]:
        rows.append([f"subnet {sub['index']} alone p50 (fixed:{sub['index']}: {' + '.join(sub['stages'])})",
                     sub["cumulative_ms"]["p50"], "ms", MEASURED, "ok"])
    cache = report["cache"]
    reuse = report["bundle"]["method"] == "concat"
    rows.append(["escalation to subnet K: cache / recompute", cache["ratio"], "ratio (x)", MEASURED,
                 ("ok" if cache["ratio"] <= 0.6 else "check: cache saves less than 40%") if reuse
                 else "ok (the method reuses nothing on escalation)"])
    on_delegate = report["runtime"].get("on_delegate")  # absent in reports written before it was measured
    if on_delegate and None not in on_delegate.values():
        builtin = [name for name, delegated in on_delegate.items() if not delegated]
        rows.append(["model files whose convolutions run on a delegate (XNNPACK)",
                     f"{len(on_delegate) - len(builtin)} of {len(on_delegate)}", "files", MEASURED,
                     "ok" if not builtin else "builtin kernels (slow) for " + ", ".join(builtin)])
    best = min(report["threads"], key=lambda t: t["full_ms"]["p50"])
    rows.append(["fastest thread count (all subnets)", best["threads"], "threads", MEASURED,
                 "ok" if best["threads"] == report["board"]["threads"]
                 else f"profile default is {report['board']['threads']}"])
    for sub in report["subnets"]:
        source, acc = (MEASURED, sub["accuracy"]) if sub.get("accuracy") is not None else \
            (MANIFEST, sub.get("host_accuracy"))
        rows.append([f"subnet {sub['index']} top-1 accuracy", _pct(acc), "%", source,
                     _accuracy_status(report)])
    for run in report["router"]:
        held = run["latency_ms"]["p95"] <= run["budget_ms"]
        rows.append([f"router at {run['budget_ms']:.2f} ms budget: p95 latency",
                     run["latency_ms"]["p95"], "ms", MEASURED, "ok" if held else "over budget"])
    system = report["system"]
    per_cpu = max(system["load_avg_1min_before"], system["load_avg_1min_after"]) / system["cpus"]
    rows.append(["system load (1-min load average per CPU, max of before/after)", per_cpu,
                 "runnable tasks per CPU", MEASURED, "ok" if per_cpu < BUSY_LOAD_PER_CPU else
                 "busy machine: other processes inflate the latencies"])
    memory, thermal = report["memory"], report["thermal"]
    rows.append(["peak RSS", memory["peak_rss_mib"], "MiB", MEASURED, "ok"])
    temp_status = "ok" if thermal["sensor_available"] else "no temperature sensor"
    rows.append(["temperature before", thermal["before_c"], "°C", MEASURED, temp_status])
    rows.append(["temperature after", thermal["after_c"], "°C", MEASURED, temp_status])
    throttle_status = {"none": "ok", "unknown": NOT_AVAILABLE}.get(thermal["throttle_state"],
                                                                  "throttled")
    rows.append(["throttling seen", thermal["throttle_state"], "state (none/soft/hard)",
                 MEASURED, throttle_status])
    return rows


def _stat_cells(stats: dict) -> list:
    return [stats.get(k) for k in ("mean", "p50", "p95", "p99", "std")]


def render_markdown(report: dict, plot_files: list[str], plots_note: str) -> str:
    """The whole report.md text."""
    board, bundle, load = report["board"], report["bundle"], report["load"]
    k = bundle["subnets"]
    out = [f"# dynedge profile: {bundle['name']} on {board['name']}", "",
           f"- board: {board['description']} ({'detected' if board['detected'] else 'named with --board'}),"
           f" {board['cores']} cores, {board['threads']} threads, {board['machine']}, CPU: {board['cpu']}",
           f"- runtime: {report['runtime']['name']}, numpy {report['runtime']['numpy']}, "
           f"Python {board['python']}",
           f"- bundle: `{bundle['path']}` ({bundle['arch']}, {bundle['dataset']}, {bundle['precision']}, "
           f"{k} subnets, input {bundle['input_hw'][0]}x{bundle['input_hw'][1]} px, "
           f"{bundle['eval_images']} labeled images)",
           f"- command: `{report['command']}` ({report['mode']} mode, {report['duration_s']:.1f} s, "
           f"{report['created']})",
           f"- timing: first call, {load['warmup_runs']} warm-up runs and {load['steady_runs']} "
           "steady-state runs of the stages are kept apart; percentiles are over the steady-state "
           f"runs only. Policy runs (fixed:k, cascade, router) take {load['policy_frames']} frames "
           "each through the daemon loop, the policies taking turns so load from elsewhere "
           "hits them alike; their latency includes preprocessing.",
           f"- sources: *{MEASURED}* = timed or counted on this board by this run; *{MANIFEST}* = "
           "copied from the bundle manifest (MACs from a library counter, accuracy from PyTorch on "
           "the host), not measured here.", ""]
    for skipped in report["skipped"]:
        out.append(f"> skipped: {skipped['section']}: {skipped['reason']}")
    out += ["", "## Summary", ""]
    out += _table(["#", "what", "value", "unit", "source", "status"],
                  [[i, *row] for i, row in enumerate(summary_rows(report), start=1)])

    out += ["## Latency per subnet (steady state)", "",
            "Incremental = the stages a frame that tried subnets 1..k-1 runs to reach subnet k (for "
            "concat, subnet k alone on the cached trunk tensor and features); alone = the stages subnet "
            "k needs, from the image, in the daemon loop (fixed:k), the cost of answering with subnet k.", ""]
    out += _table(["subnet", "MACs incremental (M, manifest)", "MACs alone (M, manifest)",
                   "incr. mean (ms)", "incr. p50 (ms)", "incr. p95 (ms)", "incr. p99 (ms)",
                   "incr. std (ms)", "alone mean (ms)", "alone p50 (ms)", "alone p95 (ms)",
                   "alone p99 (ms)", "alone std (ms)"],
                  [[s["index"], s["macs_incremental"] / 1e6, s["macs_alone"] / 1e6,
                    *_stat_cells(s["incremental_ms"]), *_stat_cells(s["cumulative_ms"])]
                   for s in report["subnets"]])
    out += _table(["stage", "mean (ms)", "p50 (ms)", "p95 (ms)", "p99 (ms)", "std (ms)"],
                  [[stage["name"], *_stat_cells(stage["latency_ms"])] for stage in report["stages"]])

    cache = report["cache"]
    out += ["## Feature cache", "",
            f"Reaching subnet {k} by escalation 1 -> {k}: with the cache every stage runs once; "
            f"recomputing reruns every stage subnet k needs at every step.", ""]
    out += _table(["escalation 1 -> K", "mean (ms)", "p50 (ms)", "p95 (ms)", "p99 (ms)", "std (ms)"],
                  [["with cache", *_stat_cells(cache["with_cache_ms"])],
                   ["recomputing", *_stat_cells(cache["recompute_ms"])]])
    out.append(f"Ratio of medians (cache / recompute): {cache['ratio']:.3f} (x).")
    out.append("")

    out += ["## Threads", ""]
    out += _table(["threads (count)", "all subnets mean (ms)", "p50 (ms)", "p95 (ms)", "p99 (ms)",
                   "std (ms)"],
                  [[t["threads"], *_stat_cells(t["full_ms"])] for t in report["threads"]])

    out += ["## Fixed subnets, cascade and router", ""]
    if not bundle["eval_images"]:
        out += ["Accuracy: skipped, the bundle carries no labeled images (manifest eval_set is "
                "null); latency figures are measured on synthetic frames.", ""]
    cascade = report.get("cascade")
    no_budget = "n/a (no budget)"
    rows = [[f"fixed:{s['index']}", s["cumulative_ms"]["p50"], s["cumulative_ms"]["p95"],
             _pct(s.get("accuracy")),
             " / ".join("100.0" if j == s["index"] else "0.0" for j in range(1, k + 1)), no_budget]
            for s in report["subnets"]]
    if cascade:
        rows.append([f"cascade (control {cascade['control']:.2f})", cascade["latency_ms"]["p50"],
                     cascade["latency_ms"]["p95"], _pct(cascade.get("accuracy")),
                     " / ".join(_pct(f) for f in cascade["exit_mix"]), no_budget])
    for run in report["router"]:
        rows.append([f"router, budget {run['budget_ms']:.2f} ms", run["latency_ms"]["p50"],
                     run["latency_ms"]["p95"], _pct(run.get("accuracy")),
                     " / ".join(_pct(f) for f in run["exit_mix"]), _pct(run["over_budget_fraction"])])
    out += _table(["policy", "p50 (ms)", "p95 (ms)", "top-1 (%)",
                   f"exit mix, subnets 1..{k} (%)", "frames over budget (%)"], rows)

    memory, thermal = report["memory"], report["thermal"]
    out += ["## Memory and temperature", ""]
    out += _table(["figure", "value", "unit", "source"],
                  [["peak RSS", memory["peak_rss_mib"], "MiB", MEASURED],
                   ["RSS after load", memory["rss_after_load_mib"], "MiB", MEASURED],
                   ["temperature before", thermal["before_c"], "°C", MEASURED],
                   ["temperature after", thermal["after_c"], "°C", MEASURED],
                   ["temperature max seen", thermal["max_c"], "°C", MEASURED],
                   ["soft throttle (profile)", thermal["soft_throttle_c"], "°C", "board profile"],
                   ["hard throttle (profile)", thermal["hard_throttle_c"], "°C", "board profile"],
                   ["throttling seen", thermal["throttle_state"], "state", MEASURED]])
    if not thermal["sensor_available"]:
        out += ["No temperature sensor of the board profile could be read (psutil keys "
                f"{', '.join(thermal['psutil_sensors'])}; thermal zones "
                f"{', '.join(thermal['thermal_zones'])}): temperatures are reported as "
                f"'{NOT_AVAILABLE}'.", ""]

    out += ["## Plots", ""]
    out += [f"![{name}]({name})" for name in plot_files] or [plots_note]
    out += ["", "## Board profile notes", "", "```", board["notes"], "```", ""]
    return "\n".join(out)


def write_report(report: dict, out_dir: Path, report_path_hint: str | None = None) -> list[Path]:
    """report.json, report.md and, when matplotlib is installed, the PNG plots; returns the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    written = [json_path]
    if plots.matplotlib_available():
        written += plots.draw_report_plots(report, out_dir)
        note = ""
    else:
        note = ("matplotlib is not installed on this board, so no plots were drawn here. Copy "
                "report.json to the host and run "
                f"`python host/report.py --plots {report_path_hint or json_path}` to draw them.")
    md_path = out_dir / "report.md"
    md_path.write_text(render_markdown(report, [p.name for p in written[1:]], note),
                       encoding="utf-8")
    return written + [md_path]
