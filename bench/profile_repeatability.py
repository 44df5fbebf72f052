"""Run device/profile.py twice on one bundle and check the two targets of the profiler:

- a full profile of a 4-subnet bundle finishes in <= 3 minutes on this machine;
- two runs on an idle machine agree within 10% on every per-subnet median.

    python bench/profile_repeatability.py --bundle dist/mobilenet-cifar10 [--quick]

Writes bench/results/profile_repeatability.md (or --result) with the command, the hardware and
both runs' figures. Run it on a quiet machine: other processes move the medians.
"""
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device.flags import Parser, add_bundle, add_threads, run_cli  # noqa: E402

MAX_SECONDS = 180.0
MAX_REL_DIFF = 0.10


def run_profile(bundle: Path, out: Path, extra: list[str]) -> tuple[dict, float]:
    """One device/profile.py run in a fresh process; returns its report and wall seconds."""
    cmd = [sys.executable, str(REPO / "device/profile.py"), "--bundle", str(bundle),
           "--out", str(out), *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO)
    return json.loads((out / "report.json").read_text()), time.perf_counter() - start


def median_rows(a: dict, b: dict) -> list[tuple[str, float, float, float]]:
    """(figure, run 1 ms, run 2 ms, relative difference) for every per-subnet median."""
    rows = [(f"stage {sa['name']} p50", sa["latency_ms"]["p50"], sb["latency_ms"]["p50"])
            for sa, sb in zip(a["stages"], b["stages"])]
    for sa, sb in zip(a["subnets"], b["subnets"]):
        for kind in ("incremental", "cumulative"):
            rows.append((f"subnet {sa['index']} {kind} p50", sa[f"{kind}_ms"]["p50"],
                         sb[f"{kind}_ms"]["p50"]))
    return [(name, x, y, abs(x - y) / max(min(x, y), 1e-9)) for name, x, y in rows]


def main(argv=None) -> int:
    parser = Parser(prog="profile_repeatability.py", description=__doc__.split("\n\n")[0])
    add_bundle(parser, "dist/mobilenet-cifar10")
    parser.add_argument("--quick", action="store_true", help="profile in --quick mode (a smoke run)")
    add_threads(parser, "the board profile's; passed to device/profile.py")
    parser.add_argument("--result", type=Path, default=REPO / "bench/results/profile_repeatability.md")
    args = parser.parse_args(argv)
    args.bundle = args.bundle or REPO / "dist" / "mobilenet-cifar10"
    if not (args.bundle / "model" / "manifest.json").is_file():
        print(f"error: {args.bundle} is not a bundle (no model/manifest.json); build one with "
              "`python host/build.py --arch mobilenet` or pass --bundle", file=sys.stderr)
        return 2
    extra = (["--quick"] if args.quick else []) + \
        (["--threads", str(args.threads)] if args.threads else [])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        first, t1 = run_profile(args.bundle, Path(tmp) / "run1", extra)
        second, t2 = run_profile(args.bundle, Path(tmp) / "run2", extra)
    rows = median_rows(first, second)
    worst = max(r[3] for r in rows)
    board = first["board"]
    time_ok = max(t1, t2) <= MAX_SECONDS
    agree_ok = worst <= MAX_REL_DIFF
    command = "python bench/profile_repeatability.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:])
    lines = ["# Profile repeatability", "",
             f"- command: `{command}`" + (" (QUICK MODE: a smoke run, not the target figure)"
                                          if args.quick else ""),
             f"- bundle: `{args.bundle}` ({first['bundle']['subnets']} subnets, "
             f"{first['bundle']['precision']}, {first['bundle']['eval_images']} labeled images)",
             f"- hardware: {board['cpu']}, {os.cpu_count()} logical CPUs, {platform.machine()}, "
             f"board profile {board['name']}, {board['threads']} threads, runtime "
             f"{first['runtime']['name']}",
             f"- load average before (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in load_before)}",
             f"- date: {first['created']}", "",
             "| check | run 1 | run 2 | target | status |", "|---|---|---|---|---|",
             f"| profile wall time (s) | {t1:.1f} | {t2:.1f} | <= {MAX_SECONDS:.0f} | "
             f"{'PASS' if time_ok else 'FAIL'} |",
             f"| worst per-subnet median difference (%) | {100 * worst:.1f} | | "
             f"<= {100 * MAX_REL_DIFF:.0f} | {'PASS' if agree_ok else 'FAIL'} |", "",
             "| median | run 1 (ms) | run 2 (ms) | difference (%) |", "|---|---|---|---|"]
    lines += [f"| {name} | {x:.3f} | {y:.3f} | {100 * d:.1f} |" for name, x, y, d in rows]
    args.result.parent.mkdir(parents=True, exist_ok=True)
    args.result.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0 if (time_ok and agree_ok) else 1


if __name__ == "__main__":
    sys.exit(run_cli(main))
