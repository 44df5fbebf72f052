"""Probes that choose the camera preset: input side and schedule on real photographs.

    OMP_NUM_THREADS=2 python bench/camera_probes.py --data ../shared/datasets/imagenette-160.tar.gz \
        [--only side-96,side-128]

Every probe trains MobileNetV2 (4 x 0.25 branches) with the camera preset and one change, on the
same data and seed, and reports per-subnet test top-1, MACs, the Raspberry Pi 4 latency estimate
of host/complexity.py (public figures, not a measurement), and the wall time of its stages on
this host. The side probes give each side the same training compute (epochs scaled by the
inverse of the pixel count), so they compare sides at equal cost. Results:
bench/results/camera_preset_probes.{md,json} (--out for another folder); a run with --only
replaces those probes' rows and keeps the others, each row with the command that made it.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json  # noqa: E402
import time  # noqa: E402

from bench.results_files import command_line, write_results  # noqa: E402
from device.flags import Parser, UsageError, add_out, run_cli  # noqa: E402
from host.cli import add_data, add_training_args, run_training  # noqa: E402
from host.complexity import pi4_estimate_ms  # noqa: E402

# name -> flags added to `--arch mobilenet --preset camera`; side probes at equal training compute
PROBES = {
    "side-96": ["--img-size", "96", "--epochs", str(round(2.0 * (128 / 96) ** 2, 2))],
    "side-128": ["--img-size", "128", "--epochs", "2"],
    "side-160": ["--img-size", "160", "--epochs", str(round(2.0 * (128 / 160) ** 2, 2))],
}


def probe(name: str, flags: list, data: str, runs: Path) -> dict:
    parser = add_training_args(Parser(), checkpoint_flag="--checkpoint-out")
    args = parser.parse_args(["--arch", "mobilenet", "--preset", "camera", "--data", data,
                              "--checkpoint-out", str(runs / name), *flags])
    result = run_training(args)
    subnets = [{"index": c["index"], "mmacs": c["macs_cumulative"] / 1e6, "test_top1": acc}
               for c, acc in zip(result.costs["exits"], result.accuracy)]
    return {"name": name, "flags": flags, "img_size": result.net.cfg.img_size, "subnets": subnets,
            "seconds": result.seconds, "data": result.splits.describe(), "command": command_line(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def markdown(report: dict) -> str:
    lines = ["# Camera preset probes", "",
             "MobileNetV2, 4 x 0.25 branches, `--preset camera` plus the probe's flags, on this host; Pi 4 ms: the "
             "estimate of host/complexity.py (XNNPACK's public MobileNetV2 figure), not a measurement. Each probe's "
             "command and date follow the table.", "",
             "| probe | flags | side | subnet | MMACs | Pi 4 ms (estimate) | test top-1 | train s |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for p in report["probes"]:
        for s in p["subnets"]:
            lines.append(f"| {p['name']} | `{' '.join(p['flags'])}` | {p['img_size']} | {s['index']} | {s['mmacs']:.1f} | "
                         f"{pi4_estimate_ms(s['mmacs'] * 1e6):.1f} | {100 * s['test_top1']:.2f}% | "
                         f"{p['seconds']['train']:.0f} |")
    lines += ["", *(f"- {p['name']} ({p['date']}): `{p['command']}`" for p in report["probes"])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = Parser(prog="camera_probes.py", description=__doc__.splitlines()[0])
    add_data(parser)
    parser.add_argument("--only", help=f"comma list of probes (default all: {', '.join(PROBES)})")
    parser.add_argument("--runs", type=Path, default=Path("runs/camera-probes"), help="checkpoint folders")
    parser.add_argument("--rewrite", action="store_true", help="only write the Markdown again from the JSON")
    add_out(parser, "results folder", "bench/results")
    args = parser.parse_args(argv)
    out = args.out or Path(__file__).resolve().parent / "results"
    earlier = out / "camera_preset_probes.json"
    if args.rewrite:
        (out / "camera_preset_probes.md").write_text(markdown(json.loads(earlier.read_text())))
        return 0
    names = args.only.split(",") if args.only else list(PROBES)
    unknown = [n for n in names if n not in PROBES]
    if unknown or not args.data:
        raise UsageError(f"unknown probe(s) {', '.join(unknown)}; choose from {', '.join(PROBES)}" if unknown
                         else "--data is required, e.g. --data ../shared/datasets/imagenette-160.tar.gz")
    kept = [p for p in json.loads(earlier.read_text())["probes"] if p["name"] not in names] if earlier.is_file() else []
    fresh = [probe(n, PROBES[n], args.data, args.runs) for n in names]
    report = {"probes": sorted(kept + fresh, key=lambda p: list(PROBES).index(p["name"]))}
    write_results(out, "camera_preset_probes", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
