"""Two gloo processes against one: test top-1 and wall time at the same total batch, to
bench/results/distributed.{md,json}.

    OMP_NUM_THREADS=1 .venv/bin/python bench/distributed.py --limit-train 6000 --seeds 0,1,2

For every seed, `host/train.py` runs once as one process with --batch-size B and once under
`torchrun --nproc_per_node=2` with --batch-size B/2 and --lr-scaling none: the same images
in the same global batches (the shards interleave one epoch's order), the same learning
rate; what differs is BatchNorm's statistics (B/2 images per process), the crops and flips
drawn, and the order in which gradients are summed. One torch thread per process: the two
processes share this host's cores, so the wall-time ratio is what 2 processes on the same
cores give, not a scaling figure.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.convert_bundle import hardware  # noqa: E402
from bench.results_files import command_line, write_results  # noqa: E402
from host import checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def train_flags(args, seed: int) -> list:
    return ["--arch", args.arch, "--data", str(args.data), "--epochs", "1", "--low-res-size", "0",
            "--limit-train", str(args.limit_train), "--calib-size", str(args.calib_size),
            "--limit-test", str(args.limit_test), "--seed", str(seed)]


def run_arm(name: str, launcher: list, flags: list, out: Path) -> dict:
    """One training run; its figures from the checkpoint's config.json."""
    cmd = [*launcher, str(REPO / "host" / "train.py"), *flags, "--out", str(out)]
    started = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.time() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    config = checkpoint.read_config(out)
    history = config["training_state"]["history"]
    return {"arm": name, "command": " ".join(cmd[len(launcher):-2]), "test_top1": config["results"]["test_top1"],
            "train_seconds": config["results"]["seconds"]["train"], "wall_seconds": wall,
            "final_loss": history[-1]["loss"], "lr": config["train"]["lr"], "batch_size": config["train"]["batch_size"]}


def noise_verdict(single: list, ddp: list) -> dict:
    """Difference of mean top-1 (2 processes - 1) and its standard error over seeds; within noise if
    the difference is at most twice its standard error."""
    diff = statistics.mean(ddp) - statistics.mean(single)
    if len(single) < 2:
        return {"difference": diff, "standard_error": None, "within_noise": None}
    se = (statistics.variance(single) / len(single) + statistics.variance(ddp) / len(ddp)) ** 0.5
    return {"difference": diff, "standard_error": se, "within_noise": abs(diff) <= 2 * se}


def summarize(runs: list) -> dict:
    arms = {arm: [r for r in runs if r["arm"] == arm] for arm in ("1 process", "2 processes")}
    k = len(runs[0]["test_top1"])
    per_subnet = []
    for s in range(k):
        single = [r["test_top1"][s] for r in arms["1 process"]]
        ddp = [r["test_top1"][s] for r in arms["2 processes"]]
        per_subnet.append({"subnet": s + 1, "mean_1": statistics.mean(single), "mean_2": statistics.mean(ddp),
                           "std_1": statistics.stdev(single) if len(single) > 1 else None,
                           "std_2": statistics.stdev(ddp) if len(ddp) > 1 else None,
                           **noise_verdict(single, ddp)})
    ratio = {key: statistics.mean(r[key] for r in arms["2 processes"]) /
             statistics.mean(r[key] for r in arms["1 process"]) for key in ("train_seconds", "wall_seconds")}
    return {"per_subnet": per_subnet, "time_ratio_2_over_1": ratio}


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def markdown(report: dict) -> str:
    hw, s = report["hardware"], report["summary"]
    lines = ["# Two gloo processes against one, same total batch", "",
             f"Measured {report['date']} with:", "", "```", report["command"], "```", "",
             f"Hardware: {hw['cpu']}, {hw['cores']} cores (shared; load average at start "
             f"{hw['load_avg_at_start'][0]:.1f}); one torch thread per process. Data: {report['data']}, "
             f"{report['limit_train']} training images, one epoch at 32 px (`--low-res-size 0`), "
             f"test top-1 on {report['limit_test']} test images, seeds {report['seeds']}.", "",
             "Arms (host/train.py flags beyond the common ones):", "",
             f"- 1 process: `--batch-size {report['batch_size']}`",
             f"- 2 processes: `torchrun --standalone --nproc_per_node=2`, `--batch-size {report['batch_size'] // 2}"
             f" --lr-scaling none`", "",
             "## Test top-1 (%) per seed", "",
             "| seed | arm | " + " | ".join(f"subnet {i + 1}" for i in range(len(s["per_subnet"])))
             + " | train s | wall s |",
             "|---|---|" + "---|" * len(s["per_subnet"]) + "---|---|"]
    for r in report["runs"]:
        lines.append(f"| {r['seed']} | {r['arm']} | " + " | ".join(pct(a) for a in r["test_top1"])
                     + f" | {r['train_seconds']:.0f} | {r['wall_seconds']:.0f} |")
    lines += ["", "## Over seeds", "",
              "| subnet | 1 process mean (std) | 2 processes mean (std) | difference | 2 x std. error | within noise |",
              "|---|---|---|---|---|---|"]
    for p in s["per_subnet"]:
        bound = "-" if p["standard_error"] is None else pct(2 * p["standard_error"])
        verdict = "-" if p["within_noise"] is None else ("yes" if p["within_noise"] else "no")
        lines.append(f"| {p['subnet']} | {pct(p['mean_1'])} ({pct(p['std_1'])}) | {pct(p['mean_2'])} "
                     f"({pct(p['std_2'])}) | {100 * p['difference']:+.2f} | {bound} | {verdict} |")
    ratio = s["time_ratio_2_over_1"]
    lines += ["", f"Wall-time ratio, 2 processes / 1 (means over seeds): training {ratio['train_seconds']:.2f}, "
              f"whole command {ratio['wall_seconds']:.2f}. The two processes share the same cores: this is "
              "not a scaling figure (multi-GPU scaling was not measured; docs/distributed-training.md).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz")
    parser.add_argument("--arch", default="mobilenet")
    parser.add_argument("--limit-train", type=int, default=6000)
    parser.add_argument("--calib-size", type=int, default=1000)
    parser.add_argument("--limit-test", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32, help="total batch: 2 processes take half each")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    machine = hardware()
    runs = []
    with tempfile.TemporaryDirectory(prefix="dynedge-bench-ddp-") as work:
        for seed in seeds:  # the arms alternate, so a change in the host's load hits both
            flags = train_flags(args, seed)
            for name, launcher, batch in (("1 process", [sys.executable], args.batch_size),
                                          ("2 processes", TORCHRUN, args.batch_size // 2)):
                extra = ["--batch-size", str(batch)] + (["--lr-scaling", "none"] if launcher is TORCHRUN else [])
                runs.append({"seed": seed, **run_arm(name, launcher, flags + extra,
                                                     Path(work) / f"{name.replace(' ', '-')}-{seed}")})
                print(f"seed {seed} {name}: top-1 {runs[-1]['test_top1']}, train {runs[-1]['train_seconds']:.0f}s",
                      file=sys.stderr)
    report = {"command": command_line(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "hardware": machine, "data": str(args.data), "arch": args.arch, "limit_train": args.limit_train,
              "limit_test": args.limit_test, "batch_size": args.batch_size, "seeds": seeds, "runs": runs,
              "summary": summarize(runs)}
    write_results(args.out, "distributed", report, markdown(report))


if __name__ == "__main__":
    main()
