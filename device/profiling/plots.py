"""The profile report's plots, shared by device/profile.py (on the board) and host/report.py.

matplotlib is not a device dependency: it is imported inside the functions, and callers check
matplotlib_available() first. Every function takes report dicts (the report.json schema written
by device/profiling/report.py) and a path, so the host can redraw a board's plots from its JSON.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

PLOT_FILES = {"accuracy_latency": "accuracy_vs_latency.png",
              "histograms": "latency_histograms.png",
              "router_trace": "router_trace.png"}


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot():
    """pyplot on the Agg backend (no display needed on a board or in CI)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path) -> Path:
    """Lay out, write as PNG and free the figure (pyplot keeps every open figure alive)."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return Path(path)


def _report_label(report: dict) -> str:
    return f"{report['board']['name']} / {report['bundle']['name']}"


def _accuracy_points(report: dict):
    """(latency ms, accuracy %, measured?) for fixed subnets, the cascade and the router budgets."""
    subnets = []
    for sub in report["subnets"]:
        acc, measured = sub.get("accuracy"), True
        if acc is None:
            acc, measured = sub.get("host_accuracy"), False
        if acc is not None:
            subnets.append((sub["cumulative_ms"]["p50"], 100.0 * acc, measured))
    cascade = report.get("cascade") or {}
    cascade_pts = ([(cascade["latency_ms"]["p50"], 100.0 * cascade["accuracy"], True)]
                   if cascade.get("accuracy") is not None else [])
    router = [(r["latency_ms"]["p50"], 100.0 * r["accuracy"], True)
              for r in report.get("router", []) if r.get("accuracy") is not None]
    return subnets, cascade_pts, router


def accuracy_vs_latency(reports: list[dict], path: Path, labels: list[str] | None = None) -> Path:
    """Top-1 accuracy against median frame latency: fixed subnets, cascade and router points.

    Hollow markers are accuracies from the bundle manifest (host, PyTorch), not measured here.
    """
    plt = _pyplot()
    labels = labels or [_report_label(r) for r in reports]
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (report, label) in enumerate(zip(reports, labels)):
        color = f"C{i}"
        subnets, cascade, router = _accuracy_points(report)
        if subnets:
            xs, ys, measured = zip(*subnets)
            ax.plot(xs, ys, "-", color=color, alpha=0.5)
            for k, (x, y, m) in enumerate(subnets, start=1):
                ax.plot(x, y, "o", color=color, mfc=color if m else "none")
                ax.annotate(f"{k}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
            note = "" if all(measured) else " (hollow: manifest accuracy)"
            ax.plot([], [], "o-", color=color, label=f"{label}: fixed subnets{note}")
        if cascade:
            ax.plot(*zip(*[(x, y) for x, y, _ in cascade]), "D", color=color, ms=8,
                    label=f"{label}: cascade")
        if router:
            ax.plot(*zip(*[(x, y) for x, y, _ in router]), "^", color=color, ms=8, ls=":",
                    label=f"{label}: router (budgets)")
    ax.set_xlabel("median frame latency (ms)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Accuracy against latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def latency_histograms(report: dict, path: Path) -> Path:
    """One histogram per subnet of the steady-state cumulative latency samples, p50/p95 marked."""
    plt = _pyplot()
    subnets = report["subnets"]
    fig, axes = plt.subplots(len(subnets), 1, figsize=(7, 1.8 * len(subnets) + 0.6), squeeze=False)
    for ax, sub in zip(axes[:, 0], subnets):
        samples = sub.get("cumulative_samples_ms") or []
        ax.hist(samples, bins=30, color="C0", alpha=0.8)
        stats = sub["cumulative_ms"]
        for key, style in (("p50", "-"), ("p95", "--")):
            if key in stats:
                ax.axvline(stats[key], color="k", ls=style, lw=1, label=f"{key} {stats[key]:.2f} ms")
        ax.set_ylabel(f"subnet {sub['index']}\n(frames)")
        ax.legend(fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("trunk + subnets 1..k latency (ms)")
    fig.suptitle(f"Latency per subnet, steady state - {_report_label(report)}", fontsize=10)
    return _save(fig, path)


def router_trace(report: dict, path: Path) -> Path:
    """Latency of every frame of one router run, coloured by exit subnet, with the budget line."""
    plt = _pyplot()
    trace = report["router_trace"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    latencies, exits = trace["latency_ms"], trace["exit_subnet"]
    ax.plot(range(len(latencies)), latencies, "-", color="0.7", lw=0.8)
    for k in sorted(set(exits)):
        idx = [i for i, e in enumerate(exits) if e == k]
        ax.plot(idx, [latencies[i] for i in idx], ".", ms=4, color=f"C{k}", label=f"exit at subnet {k}")
    ax.axhline(trace["budget_ms"], color="k", ls="--", label=f"budget {trace['budget_ms']:.2f} ms")
    ax.set_xlabel("frame (count)")
    ax.set_ylabel("frame latency (ms)")
    ax.set_title(f"Router run over time - {_report_label(report)}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, path)


def subnet_latency_bars(reports: list[dict], path: Path, labels: list[str] | None = None) -> Path:
    """Median cumulative latency per subnet, one bar group per subnet, one colour per report."""
    plt = _pyplot()
    labels = labels or [_report_label(r) for r in reports]
    depth = max(len(r["subnets"]) for r in reports)
    width = 0.8 / len(reports)
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (report, label) in enumerate(zip(reports, labels)):
        xs = [s["index"] - 0.4 + width * (i + 0.5) for s in report["subnets"]]
        ax.bar(xs, [s["cumulative_ms"]["p50"] for s in report["subnets"]], width, label=label)
    ax.set_xticks(range(1, depth + 1))
    ax.set_xlabel("subnet (trunk + subnets 1..k)")
    ax.set_ylabel("median latency (ms)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def draw_report_plots(report: dict, out_dir: Path) -> list[Path]:
    """The three plots of one report into out_dir; returns the files written."""
    out_dir = Path(out_dir)
    written = [accuracy_vs_latency([report], out_dir / PLOT_FILES["accuracy_latency"]),
               latency_histograms(report, out_dir / PLOT_FILES["histograms"])]
    if report.get("router_trace"):
        written.append(router_trace(report, out_dir / PLOT_FILES["router_trace"]))
    return written
