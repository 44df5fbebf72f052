"""Train a preset and write the results table: per-subnet cost and accuracy, the cascade, the ablation.

    python bench/train_cifar10.py --preset quick --data ../shared/datasets/cifar10-jpg.tar.gz
    python bench/train_cifar10.py --preset quick --limit-train 10000 --ablation --data ...   # CPU-affordable

Writes bench/results/train_<preset>.md and .json (or --report PATH.md) with the exact
command and the hardware. The ablation trains distillation on/off x frozen updating
on/off with the same seed, epochs and data; the default run is its (on, on) cell.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import copy  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from host.calibrate import curve_on_split  # noqa: E402
from device.flags import Parser, run_cli  # noqa: E402
from host.cli import add_training_args, run_training  # noqa: E402

CONTROLS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def hardware() -> dict:
    cpu = platform.processor() or "unknown"
    if Path("/proc/cpuinfo").is_file():
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(), "gpu": gpu,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version()}


def run_summary(result) -> dict:
    return {"test_top1": result.accuracy, "seconds": result.seconds, "checkpoint": str(result.checkpoint_dir)}


def ablation(args, default_result) -> list:
    """The 2x2 distill x frozen-update grid; the already-trained default fills its own cell."""
    cells = []
    for distill in (True, False):
        for frozen in (True, False):
            if distill == args.distill and frozen == args.frozen_update:
                result = default_result
            else:
                cell_args = copy.copy(args)
                cell_args.distill, cell_args.frozen_update, cell_args.resume = distill, frozen, False
                cell_args.checkpoint_out = Path(default_result.checkpoint_dir).with_name(
                    f"{Path(default_result.checkpoint_dir).name}-distill_{on(distill)}-frozen_{on(frozen)}")
                result = run_training(cell_args)
            cells.append({"distill": distill, "frozen_update": frozen, **run_summary(result)})
    return cells


def on(flag: bool) -> str:
    return "on" if flag else "off"


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def markdown(report: dict) -> str:
    costs, subnets = report["costs"], report["costs"]["exits"]
    largest = subnets[-1]["macs_cumulative"]
    hw = report["hardware"]
    lines = [f"# Training benchmark: preset `{report['preset']}`, arch `{report['arch']}`, {report['dataset']}", "",
             f"Command: `{report['command']}`", "",
             f"Hardware: {hw['cpu']} ({hw['cpu_count']} logical CPUs), GPU: {hw['gpu'] or 'none'}; "
             f"{hw['platform']}; Python {hw['python']}, torch {hw['torch']} ({hw['torch_threads']} threads). "
             f"Date: {report['date']}.", "",
             f"Data: {report['counts']['train']} train, {report['counts']['calib']} calibration (held out of train), "
             f"{report['counts']['test']} test images. Wall time (s): " +
             ", ".join(f"{k} {v:.0f}" for k, v in report["seconds"].items()) + ".", "",
             "## Subnets (test top-1; MACs from torch FlopCounterMode, batch 1)", "",
             "| subnet | MMACs incremental | MMACs cumulative | % of largest | params | test top-1 "
             "| calib top-1 |",
             "|---:|---:|---:|---:|---:|---:|---:|",
             *[f"| stage {name} | {cost['macs'] / 1e6:.2f} | | | {cost['params']:,} | | |"
               for name, cost in costs["stages"].items()]]
    for sub, acc, cal in zip(subnets, report["test_top1"], report["calibration"]["exits"]):
        lines.append(f"| {sub['index']} | {sub['macs_incremental'] / 1e6:.2f} | {sub['macs_cumulative'] / 1e6:.2f} | "
                     f"{100 * sub['macs_cumulative'] / largest:.0f}% | {sub['params']:,} | {pct(acc)} | "
                     f"{pct(cal['calib_accuracy'])} |")
    router = report["calibration"]["router"]
    lines += ["", "## Cascade on the test split (thresholds from the calibration quantiles)", "",
              f"Calibrated router: initial control {router['initial']:.2f}, floor {router['floor']:.2f}.", "",
              "| control | test accuracy | mean MMACs | % of largest | exit fractions 1..K | note |",
              "|---:|---:|---:|---:|---|---|"]
    for point in report["test_curve"]:
        note = " ".join(name for name in ("initial", "floor") if abs(point["control"] - router[name]) < 1e-9)
        lines.append(f"| {point['control']:.2f} | {pct(point['accuracy'])} | {point['mean_macs'] / 1e6:.2f} | "
                     f"{100 * point['mean_macs'] / largest:.0f}% | "
                     f"{' / '.join(f'{f:.2f}' for f in point['exit_fractions'])} | {note} |")
    if report.get("ablation"):
        k = len(subnets)
        lines += ["", "## Ablation: in-place distillation x frozen updating (same seed, epochs, data)", "",
                  "| distill | frozen update | " + " | ".join(f"subnet {i} top-1" for i in range(1, k + 1)) +
                  " | train s |", "|---|---|" + "---:|" * (k + 1)]
        for cell in report["ablation"]:
            lines.append(f"| {on(cell['distill'])} | {on(cell['frozen_update'])} | " +
                         " | ".join(pct(a) for a in cell["test_top1"]) + f" | {cell['seconds']['train']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = add_training_args(Parser(prog="train_cifar10.py", description=__doc__.split("\n")[0]),
                               checkpoint_flag="--checkpoint-out")
    parser.add_argument("--ablation", action="store_true", help="also train the 2x2 distill x frozen-update grid")
    parser.add_argument("--report", default=None, help="Markdown output (default bench/results/train_<preset>.md)")
    args = parser.parse_args(argv)
    command = shlex.join([Path(sys.executable).name, *sys.argv] if argv is None else ["python", __file__, *argv])
    result = run_training(args)
    cells = ablation(args, result) if args.ablation else None
    controls = sorted(set(CONTROLS) | {result.calibration["router"]["initial"], result.calibration["router"]["floor"]})
    report = {"preset": args.preset, "arch": args.arch, "dataset": result.splits.name, "command": command,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "hardware": hardware(),
              "counts": {name: len(getattr(result.splits, name)) for name in ("train", "calib", "test")},
              "seconds": result.seconds, "test_top1": result.accuracy, "costs": result.costs,
              "calibration": result.calibration, "ablation": cells,
              "test_curve": curve_on_split(result.test_logits, result.splits.test.labels, result.calibration,
                                           result.costs, controls)}
    path = Path(args.report or Path(__file__).parent / "results" / f"train_{args.preset}.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(report))
    path.with_suffix(".json").write_text(json.dumps(report, indent=2))
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
