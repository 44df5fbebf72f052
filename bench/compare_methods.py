"""Every method side by side (shared/DESIGN.md section 10): same data, input size, training budget,
augmentation and optimizer; each built into a bundle and measured through the board engine here.

    OMP_NUM_THREADS=2 python bench/compare_methods.py --scale camera \
        --data ../shared/datasets/imagenette-160.tar.gz [--epochs 1] [--methods concat,slimmable,single-path] [--seeds 0,1]
    OMP_NUM_THREADS=2 python bench/compare_methods.py --scale cifar --data ../shared/datasets/cifar10-jpg.tar.gz

--scale picks the preset (camera: --preset camera; cifar: --preset quick); every other training
flag is the same for every method, so each sees the same training images the same number of
times (a sandwich step costs more than one pass: each method's training seconds are reported
beside it). Per method and exit: test top-1 (PyTorch, the whole test split), MACs, and p50/p95
latency of that exit alone (fixed:k) in the daemon loop on the bundle's labeled images, on this
host, with measured top-1 there; the router's accuracy at three budgets shared by every method;
and the seed-000 claim computed directly:

  matching rule: for each other method, target = the test top-1 of its largest exit; concat's
  cheapest exit whose test top-1 is at least target - TOLERANCE_PP is matched with it, and the
  ratios are concat's MACs and p50 latency over that largest exit's. Where no exit of concat
  reaches the target the row says so. The other way round too: the method's cheapest exit
  within TOLERANCE_PP of concat's largest exit, with concat's MACs and p50 over its. With several seeds, figures are means over seeds and the
  spread (max - min) of top-1 is reported, so a difference within it reads as noise.

Results go to bench/results/compare_methods.{md,json,png}; running one --scale replaces that
scale's figures and keeps the other's; --rewrite remakes the .md and .png from the .json.
"""
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bench.results_files import command_line, write_results  # noqa: E402
from device.bundle import load_bundle  # noqa: E402
from device.engine import Cascade  # noqa: E402
from device.flags import Parser, UsageError, add_out, run_cli  # noqa: E402
from device.policy import make_policy  # noqa: E402
from device.profiling.profiler import PolicyRun, eval_frames, run_interleaved  # noqa: E402
from host import build, checkpoint, methods  # noqa: E402

SCALES = {"camera": "camera", "cifar": "quick"}   # --scale -> preset
TOLERANCE_PP = 0.5       # "similar accuracy": within half a point of test top-1
FRAMES = 500             # the bundle's labeled images each policy runs over
RESULTS = "compare_methods"
# --smoke: the tests' tiny networks (tests/fixtures_bundle.py), 1/8-width steps
SMOKE_NETWORK = ["--arch", "resnet", "--subnets", "3", "--img-size", "32", "--batch-size", "32", "--calib-size", "200"]
SMOKE_WIDTHS = {"concat": "0.125,0.125,0.125", "width-switching": "0.125,0.25,0.375"}


def parse_args(argv=None):
    parser = Parser(prog="compare_methods.py", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES))
    parser.add_argument("--data", help="the data set every method trains on (folder or .tar.gz)")
    parser.add_argument("--methods", default=",".join(methods.METHODS), help="comma list (default: every method)")
    parser.add_argument("--seeds", default="0", help="comma list of seeds (default 0)")
    parser.add_argument("--epochs", type=float, help="training epochs for every method (default: the preset's)")
    parser.add_argument("--limit-train", type=int, help="train every method on N images only")
    parser.add_argument("--limit-test", type=int, help="evaluate on N test images only")
    parser.add_argument("--rewrite", action="store_true",
                        help="only rewrite the .md and .png from the .json (e.g. after a change of the report)")
    parser.add_argument("--smoke", action="store_true",
                        help="the tests' tiny networks (ResNet, 3 exits at 1/8-width steps, 32 px): checks the "
                             "plumbing in a few minutes; its figures mean nothing")
    parser.add_argument("--reuse", action="store_true",
                        help="measure again, without rebuilding, every method and seed whose folder under --work "
                             "holds a finished build made with the same flags (e.g. add seeds to a run, or resume "
                             "one that stopped)")
    parser.add_argument("--work", type=Path, default=Path("runs/compare"),
                        help="checkpoints and bundles (default runs/compare)")
    add_out(parser, "results folder", "bench/results")
    args = parser.parse_args(argv)
    if not args.rewrite and (args.scale is None or args.data is None):
        raise UsageError("--scale and --data are needed (or --rewrite alone)")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for name in args.methods:
        methods.get(name)  # a one-line error listing the methods
    if "concat" not in args.methods:
        raise UsageError("--methods must include concat: the comparison is concat against the others")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise UsageError(f"--seeds {args.seeds!r} is not a comma list of integers, e.g. 0,1") from None
    args.out = args.out or Path("bench/results")
    return args


def build_flags(args, method: str, seed: int, folder: Path) -> list:
    network = ["--arch", "mobilenet"]
    if args.smoke:
        network = [*SMOKE_NETWORK, "--widths", SMOKE_WIDTHS.get(method, SMOKE_WIDTHS["width-switching"])]
    flags = [*network, "--method", method, "--preset", SCALES[args.scale], "--data", args.data,
             "--seed", str(seed), "--checkpoint-out", str(folder / "checkpoint"), "--out", str(folder), "--force"]
    for flag, value in (("--epochs", args.epochs), ("--limit-train", args.limit_train),
                        ("--limit-test", args.limit_test)):
        if value is not None:
            flags += [flag, str(value)]
    return flags


LOAD_PROBE = """
import json, sys, time
started = time.perf_counter()
from device.bundle import load_bundle
from device.engine import Cascade
from device.profiling.memory import peak_rss_mib
cascade = Cascade(load_bundle(sys.argv[1]), threads=1)
loaded = time.perf_counter() - started
cascade.run_all(cascade.input)
print(json.dumps({"load_s": loaded, "peak_rss_mib": peak_rss_mib()}))
"""


def measure_load(folder: Path) -> dict:
    """Bundle load (imports, verification, interpreters) and peak RSS after one frame, in a fresh
    process that imports the device runtime alone, as the daemon does."""
    done = subprocess.run([sys.executable, "-c", LOAD_PROBE, str(folder)], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def engine_and_frames(folder: Path) -> tuple:
    bundle = load_bundle(folder)
    cascade = Cascade(bundle, threads=1)
    cascade.warm_up()
    frames, labels = eval_frames(bundle, FRAMES)
    return bundle, cascade, frames, labels, min(len(frames), FRAMES)


def measure_exits(folder: Path) -> list:
    """Per exit: p50/p95 ms and top-1 of fixed:k in the daemon loop, on the bundle's labeled images."""
    bundle, cascade, frames, labels, count = engine_and_frames(folder)
    policies = [PolicyRun(cascade, make_policy(f"fixed:{k}", bundle, 1.0)) for k in range(1, cascade.num_subnets + 1)]
    return [{"p50_ms": f["latency_ms"]["p50"], "p95_ms": f["latency_ms"]["p95"], "board_top1": f["accuracy"]}
            for f in run_interleaved(policies, bundle, frames, labels, count)]


def measure_router(folder: Path, budgets_ms: list) -> list:
    """The router at each budget in the daemon loop: top-1, p50/p95 ms, exit mix."""
    bundle, cascade, frames, labels, count = engine_and_frames(folder)
    policies = [PolicyRun(cascade, make_policy("router", bundle, b / 1e3)) for b in budgets_ms]
    return [{"budget_ms": b, "top1": r["accuracy"], "p50_ms": r["latency_ms"]["p50"], "p95_ms": r["latency_ms"]["p95"],
             "exit_mix": r["exit_mix"]} for b, r in zip(budgets_ms, run_interleaved(policies, bundle, frames, labels, count))]


BUILD_RECORD = "build.json"   # in a method/seed folder: the flags of its finished build and the bundle


def finished_build(folder: Path, flags: list):
    """The record ({flags, bundle, build_s}) of a finished build in `folder` made with exactly
    `flags`, or None."""
    try:
        record = json.loads((folder / BUILD_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    found = record.get("flags") == flags and (Path(record.get("bundle", "")) / "model" / "manifest.json").exists()
    return record if found else None


def build_one(args, method: str, seed: int) -> dict:
    """Train and build one method at one seed (or, with --reuse, take its finished build); returns
    its figures."""
    folder = args.work / args.scale / f"{method}-seed{seed}"
    flags = build_flags(args, method, seed, folder)
    record = finished_build(folder, flags) if args.reuse else None
    if record is None:
        (folder / BUILD_RECORD).unlink(missing_ok=True)
        started = time.time()
        bundle_dir, _ = build.build(build.parse_args(flags))
        record = {"flags": flags, "bundle": str(bundle_dir), "build_s": time.time() - started}
        (folder / BUILD_RECORD).write_text(json.dumps(record, indent=1))
    bundle_dir = Path(record["bundle"])
    config = checkpoint.read_config(folder / "checkpoint")
    manifest = json.loads((bundle_dir / "model" / "manifest.json").read_text())
    return {"method": method, "seed": seed, "bundle": str(bundle_dir), "build_s": record["build_s"],
            "train_s": config["results"]["seconds"]["train"], "data": manifest["data"],
            "exits": [{"index": e["index"], "stages": e["stages"], "macs": e["macs_alone"],
                       "macs_cumulative": e["macs_cumulative"], "params": e["params"], "top1": e["accuracy"]}
                      for e in manifest["exits"]]}


def shared_budgets(runs: list) -> list:
    """Three budgets every method is run at: from 1.2x the cheapest exit's p50 of any method to
    1.1x the dearest top exit's p50."""
    low = min(r["exits"][0]["p50_ms"] for r in runs)
    high = max(r["exits"][-1]["p50_ms"] for r in runs)
    return [float(b) for b in np.linspace(1.2 * low, 1.1 * high, 3)]


def mean_over_seeds(runs: list) -> dict:
    """{method: per-exit means over seeds (top-1 spread too), training seconds, router}."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        exits = []
        for k, first in enumerate(mine[0]["exits"]):
            per_seed = [r["exits"][k] for r in mine]
            top1 = [e["top1"] for e in per_seed]
            exits.append({**{key: first[key] for key in ("index", "stages", "macs", "macs_cumulative", "params")},
                          "top1": float(np.mean(top1)), "top1_spread": float(max(top1) - min(top1)),
                          **{key: float(np.mean([e[key] for e in per_seed])) for key in ("p50_ms", "p95_ms", "board_top1")}})
        router = [{"budget_ms": point["budget_ms"],
                   **{key: float(np.mean([r["router"][i][key] for r in mine])) for key in ("top1", "p50_ms", "p95_ms")}}
                  for i, point in enumerate(mine[0]["router"])]
        out[method] = {"seeds": [r["seed"] for r in mine], "train_s": float(np.mean([r["train_s"] for r in mine])),
                       "load_s": max(r["load"]["load_s"] for r in mine),
                       "peak_rss_mib": max(r["load"]["peak_rss_mib"] for r in mine), "exits": exits, "router": router}
    return out


def cheapest_reaching(exits: list, top1: float):
    """The cheapest exit whose test top-1 is within TOLERANCE_PP of `top1`, or None."""
    return next((e for e in exits if e["top1"] >= top1 - TOLERANCE_PP / 100), None)


def seed_claim(table: dict) -> list:
    """Per other method, both ways of matching accuracy (the module docstring's rule): concat's
    cheapest exit that reaches the method's largest exit, and the method's cheapest exit that
    reaches concat's largest; each with concat's MACs and p50 over the method's."""
    concat = table["concat"]["exits"]
    rows = []
    for method, entry in table.items():
        if method == "concat":
            continue
        target = entry["exits"][-1]
        row = {"method": method, "target_top1": target["top1"], "concat_best_top1": concat[-1]["top1"]}
        match = cheapest_reaching(concat, target["top1"])
        row["matched"] = match is not None
        if match is not None:
            row.update(concat_exit=match["index"], concat_top1=match["top1"],
                       macs_ratio=match["macs"] / target["macs"], p50_ratio=match["p50_ms"] / target["p50_ms"])
        reverse = cheapest_reaching(entry["exits"], concat[-1]["top1"])
        if reverse is not None:
            row["at_concat_best"] = {"exit": reverse["index"], "top1": reverse["top1"],
                                     "macs_ratio": concat[-1]["macs"] / reverse["macs"],
                                     "p50_ratio": concat[-1]["p50_ms"] / reverse["p50_ms"]}
        rows.append(row)
    return rows


def holds(row: dict) -> bool:
    """The seed-000 claim's verdict on one claim row: concat matched within <= 0.75x the MACs and
    <= 0.70x the p50."""
    return row["matched"] and row["macs_ratio"] <= 0.75 and row["p50_ratio"] <= 0.70


def claim_per_seed(runs: list) -> dict:
    """{seed: claim rows of that seed's runs alone}: whether the verdict of the means is every
    seed's."""
    seeds = dict.fromkeys(r["seed"] for r in runs)
    return {seed: seed_claim(mean_over_seeds([r for r in runs if r["seed"] == seed])) for seed in seeds}


def per_seed_lines(result: dict) -> list:
    """One line per other method: in how many seeds the claim holds, with each seed's ratios."""
    per_seed = claim_per_seed(result["runs"])
    if len(per_seed) < 2:
        return []
    lines = []
    for method in (row["method"] for row in result["claim"]):
        rows = {seed: next(r for r in claim if r["method"] == method) for seed, claim in per_seed.items()}
        detail = "; ".join(f"seed {seed}: " + (f"{r['macs_ratio']:.2f}x MACs, {r['p50_ratio']:.2f}x p50"
                                               if r["matched"] else "not reached") for seed, r in rows.items())
        lines.append(f"- per seed, vs {method}: holds in {sum(holds(r) for r in rows.values())} of {len(rows)} "
                     f"({detail}).")
    return lines


def markdown(report: dict) -> str:
    lines = ["# Methods side by side", "",
             "Every method trained with the same preset, data, seeds and training images seen, built into a "
             "bundle and run through the board engine on this host (fixed:k in the daemon loop, one thread). "
             f"Matching rule for the seed-000 claim: bench/compare_methods.py (tolerance {TOLERANCE_PP} pp).", ""]
    for scale, result in sorted(report["scales"].items()):
        lines += [f"## {scale} scale", "", f"Command: `{result['command']}` ({result['date']}); "
                  f"training: {result['training']}.", "",
                  "| method | exit | stages | MMACs | params | test top-1 | top-1 spread over seeds | board top-1 "
                  "| p50 ms | p95 ms | train s |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for method, entry in result["methods"].items():
            for e in entry["exits"]:
                lines.append(f"| {method} | {e['index']} | {' + '.join(e['stages'])} | {e['macs'] / 1e6:.1f} | "
                             f"{e['params']:,} | {100 * e['top1']:.2f}% | {100 * e['top1_spread']:.2f} pp | "
                             f"{100 * e['board_top1']:.1f}% | {e['p50_ms']:.2f} | {e['p95_ms']:.2f} | "
                             f"{entry['train_s']:.0f} |")
        lines += ["", "Bundle load (a fresh process importing the device runtime alone, to the engine ready; target <= 2 s) "
                  "and peak RSS after one frame (target <= 200 MiB): " + "; ".join(
                      f"{method} {entry['load_s']:.2f} s, {entry['peak_rss_mib']:.0f} MiB"
                      for method, entry in result["methods"].items()) + ".", "",
                  "Router (top-1 on the bundle's labeled images, p50 ms) at budgets shared by every method:", "",
                  "| method | " + " | ".join(f"{b:.2f} ms" for b in result["budgets_ms"]) + " |",
                  "|---|" + "---:|" * len(result["budgets_ms"])]
        for method, entry in result["methods"].items():
            lines.append(f"| {method} | " + " | ".join(f"{100 * r['top1']:.1f}% ({r['p50_ms']:.2f})"
                                                       for r in entry["router"]) + " |")
        lines += ["", "Seed-000 claim (target: concat <= 0.75x the MACs and <= 0.70x the p50 at matched accuracy):", ""]
        for row in result["claim"]:
            if row["matched"]:
                verdict = "holds" if holds(row) else "does not hold"
                lines.append(f"- vs {row['method']} (largest exit {100 * row['target_top1']:.2f}%): concat exit "
                             f"{row['concat_exit']} ({100 * row['concat_top1']:.2f}%) needs {row['macs_ratio']:.2f}x "
                             f"the MACs and {row['p50_ratio']:.2f}x the p50 latency: {verdict}.")
            else:
                lines.append(f"- vs {row['method']} (largest exit {100 * row['target_top1']:.2f}%): no exit of concat "
                             f"reaches it (best {100 * row['concat_best_top1']:.2f}%): the claim does not hold here.")
            other = row.get("at_concat_best")
            if other:
                lines.append(f"  - the other way: at concat's largest exit ({100 * row['concat_best_top1']:.2f}%), "
                             f"{row['method']} exit {other['exit']} ({100 * other['top1']:.2f}%) is the cheapest that "
                             f"matches; concat needs {other['macs_ratio']:.2f}x its MACs and {other['p50_ratio']:.2f}x "
                             f"its p50.")
        lines += per_seed_lines(result)
        lines.append("")
    lines.append("![accuracy against latency and MACs](compare_methods.png)")
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scales = sorted(report["scales"])
    fig, axes = plt.subplots(len(scales), 2, figsize=(11, 4 * len(scales)), squeeze=False)
    for row, scale in zip(axes, scales):
        for i, (method, entry) in enumerate(report["scales"][scale]["methods"].items()):
            exits = entry["exits"]
            color = f"C{i}"
            row[0].plot([e["p50_ms"] for e in exits], [100 * e["top1"] for e in exits], "o-", color=color,
                        label=f"{method}, fixed exits")
            row[0].plot([r["p50_ms"] for r in entry["router"]], [100 * r["top1"] for r in entry["router"]], "x--",
                        color=color, label=f"{method}, router (board top-1)")
            row[1].plot([e["macs"] / 1e6 for e in exits], [100 * e["top1"] for e in exits], "o-", color=color,
                        label=method)
        row[0].set(xlabel="p50 latency on this host (ms)", ylabel="top-1 (%)", title=f"{scale}: accuracy vs latency")
        row[1].set(xlabel="MMACs", ylabel="test top-1 (%)", title=f"{scale}: accuracy vs MACs")
        for ax in row:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    path = args.out / f"{RESULTS}.json"
    if args.rewrite:
        report = json.loads(path.read_text())
        for result in report["scales"].values():
            result["claim"] = seed_claim(result["methods"])
        plot(report, args.out / f"{RESULTS}.png")
        write_results(args.out, RESULTS, report, markdown(report))
        return 0
    runs = [build_one(args, method, seed) for seed in args.seeds for method in args.methods]
    for run in runs:  # measured after every build, so that no training runs beside a measurement
        for exit_, figures in zip(run["exits"], measure_exits(Path(run["bundle"]))):
            exit_.update(figures)
        run["load"] = measure_load(Path(run["bundle"]))
    budgets = shared_budgets(runs)
    for run in runs:
        run["router"] = measure_router(Path(run["bundle"]), budgets)
    table = mean_over_seeds(runs)
    report = json.loads(path.read_text()) if path.exists() else {"scales": {}}
    first = runs[0]["data"]
    report["scales"][args.scale] = {
        "command": command_line(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "training": f"preset {SCALES[args.scale]}, epochs {args.epochs or 'of the preset'}, "
                    f"{first.get('train', '?')} training images, seeds {args.seeds}",
        "budgets_ms": budgets, "methods": table, "claim": seed_claim(table), "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    plot(report, args.out / f"{RESULTS}.png")
    write_results(args.out, RESULTS, report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
