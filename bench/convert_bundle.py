"""Issue 3 benchmarks, all measured in one run on this host, written to bench/results/convert_bundle.{md,json}.

  conversion   wall time of exporting trunk + K subnets (fp32), and of the int8 PTQ files
  int8         cascade latency ratio int8 / fp32 (trunk + all K subnets, same runtime and threads),
               top-1 cost in pp (largest subnet and the cascade at the calibrated setting),
               size ratio of the model files (int8 / fp32) and their bytes by kind
               (converters/flatbuffer.py); the same for per-channel int8 weights
  split        trunk + subnet_1..K one after another on cached inputs vs one monolithic
               export of the largest subnet (image -> logits): through the board engine
               (device.engine.Cascade: a frame escalating to K on the feature cache), and
               invoke-only, which isolates what splitting the graph costs the runtime

    OMP_NUM_THREADS=1 .venv/bin/python bench/convert_bundle.py --checkpoint CKPT \
        --data ../shared/datasets/cifar10-jpg.tar.gz

Latencies are medians over interleaved rounds (fp32, int8, monolith in turn), so a neighbour's
load on a shared host hits all three alike.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bench.results_files import command_line, write_results  # noqa: E402
from device.flags import Parser, add_out, add_threads, run_cli  # noqa: E402
from converters.export import export_stages, stage_entries  # noqa: E402
from converters.flatbuffer import KINDS, anatomy  # noqa: E402
from converters.parity import measure, torch_reference  # noqa: E402
from converters.quantize import export_int8  # noqa: E402
from device.bundle.ladder import ladder_from  # noqa: E402
from device.engine import Cascade  # noqa: E402
from device.engine.outputs import ModelFile  # noqa: E402
from device.profiling import median_ms  # noqa: E402
from host import checkpoint, methods  # noqa: E402
from host.build import INT8_CALIB_IMAGES  # noqa: E402
from host.calibrate import calibrate, initial_thresholds  # noqa: E402
from host.complexity import ladder_costs  # noqa: E402
from host.methods.concat import export_monolith  # noqa: E402
from host.data import load_cifar_like  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TFLRT_PYTHON = REPO / ".venv-tflrt" / "bin" / "python"
TARGETS = {"conversion_s": 120.0, "int8_latency_ratio": 0.7, "int8_top1_cost_pp": 1.0,
           "int8_size_ratio": 0.3, "split_ratio": 1.10}


def timed(fn, *args):
    start = time.time()
    result = fn(*args)
    return result, time.time() - start


def interleaved_latency(candidates: dict, image: np.ndarray, rounds: int, repeats: int) -> dict:
    """Median ms per candidate (name -> fn(image)), each measured `rounds` times in turn."""
    samples = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            samples[name].append(median_ms(lambda: fn(image), warmup=5, runs=repeats))
    return {name: float(np.median(v)) for name, v in samples.items()}


def total_bytes(files: dict) -> int:
    return sum(p.stat().st_size for p in files.values())


def bytes_by_kind(files: dict) -> dict:
    """converters.flatbuffer.anatomy summed over every stage's file."""
    parts = [anatomy(p) for p in files.values()]
    return {kind: sum(p[kind] for p in parts) for kind in KINDS}


def tflite_runtime_top1(work: Path, ladder: dict, exported: dict, images: np.ndarray, labels: np.ndarray) -> dict:
    """Largest subnet's top-1 per precision under tflite-runtime 2.14 (.venv-tflrt), {} when it is not set up.

    Runs the board engine there as a module, as tests/test_tflite_runtime_compat.py does."""
    if not TFLRT_PYTHON.exists():
        return {}
    (work / "manifest.json").write_text(json.dumps({**ladder, "precisions": {
        name: {"files": {stage: str(p.relative_to(work)) for stage, p in f.items()}} for name, f in exported.items()}}))
    np.save(work / "images.npy", images)
    top1 = {}
    for name in exported:
        subprocess.run([str(TFLRT_PYTHON), "-m", "device.engine.outputs", str(work),
                        str(work / "images.npy"), str(work / "outputs.npz"), "--runtime", "tflite-runtime",
                        "--precision", name], check=True, capture_output=True, cwd=REPO)
        top1[name] = float((np.load(work / "outputs.npz")["logits"][-1].argmax(-1) == labels).mean())
    return top1


def hardware() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "load_avg_at_start": list(os.getloadavg()), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def run(args) -> dict:
    machine = hardware()  # before the run: its load average is the one at start
    net, _ = checkpoint.load(args.checkpoint)
    net.eval()
    splits = load_cifar_like(args.data, net.cfg.img_size, limit_train=INT8_CALIB_IMAGES, calib_size=args.calib_size,
                             seed=0, limit_test=args.limit_test)
    plan = methods.get(net.cfg.method).export_plan(net)
    costs = ladder_costs(plan)
    calibration = calibrate(net, splits.calib, costs, device="cpu")
    thresholds = initial_thresholds(calibration)
    ladder = {"stages": stage_entries(plan, {n: c["macs"] for n, c in costs["stages"].items()}), "exits": costs["exits"]}
    with tempfile.TemporaryDirectory(prefix="dynedge-bench-") as work:
        work = Path(work)
        fp32, fp32_s = timed(export_stages, plan, work)
        calib = splits.train.images[:INT8_CALIB_IMAGES]
        int8, int8_s = timed(export_int8, plan, calib, work)
        per_channel = export_int8(plan, calib, work / "per_channel", per_channel=True)
        monolith, monolith_s = timed(export_monolith, net, work / "monolith.tflite")
        exported = {"fp32": fp32, "int8": int8, "int8_per_channel": per_channel}
        engines = {name: Cascade.from_ladder(ladder_from(ladder["stages"], ladder["exits"],
                                                         {n: str(p.relative_to(work)) for n, p in f.items()}, work,
                                                         net.cfg.num_classes), threads=args.threads)
                   for name, f in exported.items()}
        reference = torch_reference(net, splits.test.images)
        parity = {name: measure(engine, reference, splits.test.images, splits.test.labels, thresholds)
                  for name, engine in engines.items()}
        mono = ModelFile(monolith, threads=args.threads)
        image = splits.test.images[:1].astype(np.float32)
        for engine in engines.values():
            engine.run_all(image)  # leaves valid inputs in every file for the invoke-only rows
        mono(image)
        runs = {name: [stage.run for stage in engine.stages] for name, engine in engines.items()}
        latency = interleaved_latency({
            "fp32_cascade": engines["fp32"].run_all, "int8_cascade": engines["int8"].run_all,
            "int8_per_channel_cascade": engines["int8_per_channel"].run_all, "monolith_fp32": mono,
            "fp32_split_invoke_only": lambda _: [run() for run in runs["fp32"]],
            "int8_split_invoke_only": lambda _: [run() for run in runs["int8"]],
            "monolith_invoke_only": lambda _: mono.stage.run()}, image, args.rounds, args.repeats)
        sizes = {**{name: total_bytes(f) for name, f in exported.items()}, "monolith": monolith.stat().st_size}
        kinds = {name: bytes_by_kind(f) for name, f in exported.items()}
        tflrt = tflite_runtime_top1(work, ladder, exported, splits.test.images, splits.test.labels)
    largest = {name: list(p[0].values())[-1]["top1"] for name, p in parity.items()}
    cascade = {name: p[1]["top1"] for name, p in parity.items()}
    results = {
        "conversion_s": fp32_s, "int8_conversion_s": int8_s, "monolith_conversion_s": monolith_s,
        "int8_latency_ratio": latency["int8_cascade"] / latency["fp32_cascade"],
        "int8_latency_ratio_invoke_only": latency["int8_split_invoke_only"] / latency["fp32_split_invoke_only"],
        "int8_top1_cost_pp": 100 * (largest["fp32"] - largest["int8"]),
        "int8_cascade_top1_cost_pp": 100 * (cascade["fp32"] - cascade["int8"]),
        "int8_size_ratio": sizes["int8"] / sizes["fp32"],
        "int8_per_channel_latency_ratio": latency["int8_per_channel_cascade"] / latency["fp32_cascade"],
        "int8_per_channel_top1_cost_pp": 100 * (largest["fp32"] - largest["int8_per_channel"]),
        "int8_per_channel_size_ratio": sizes["int8_per_channel"] / sizes["fp32"],
        "split_ratio": latency["fp32_cascade"] / latency["monolith_fp32"],
        "split_ratio_invoke_only": latency["fp32_split_invoke_only"] / latency["monolith_invoke_only"],
    }
    return {"command": command_line(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "hardware": machine,
            "model": {**net.cfg.to_dict(), "test_images": len(splits.test), "checkpoint": str(args.checkpoint)},
            "latency_ms": latency, "bytes": sizes, "bytes_by_kind": kinds,
            "top1_largest": largest, "top1_cascade": cascade, "top1_largest_tflite_runtime": tflrt,
            "results": results, "targets": TARGETS,
            "parity": {name: p[0] for name, p in parity.items()}}


def markdown(report: dict) -> str:
    r, t = report["results"], report["targets"]
    rows = [("fp32 conversion, trunk + K subnets", f"{r['conversion_s']:.1f} s", f"<= {t['conversion_s']:.0f} s",
             r["conversion_s"] <= t["conversion_s"]),
            ("int8 / fp32 cascade latency", f"{r['int8_latency_ratio']:.2f}", f"<= {t['int8_latency_ratio']}",
             r["int8_latency_ratio"] <= t["int8_latency_ratio"]),
            ("int8 top-1 cost, largest subnet", f"{r['int8_top1_cost_pp']:+.2f} pp", f"<= {t['int8_top1_cost_pp']} pp",
             r["int8_top1_cost_pp"] <= t["int8_top1_cost_pp"]),
            ("int8 / fp32 model size", f"{r['int8_size_ratio']:.2f}", f"<= {t['int8_size_ratio']}",
             r["int8_size_ratio"] <= t["int8_size_ratio"]),
            ("split (trunk + K subnets) / monolith, board engine", f"{r['split_ratio']:.2f}",
             f"<= {t['split_ratio']}", r["split_ratio"] <= t["split_ratio"]),
            ("split / monolith, interpreter invoke only", f"{r['split_ratio_invoke_only']:.2f}",
             f"<= {t['split_ratio']}", r["split_ratio_invoke_only"] <= t["split_ratio"])]
    lines = ["# Converter and bundle benchmarks (issue 3)", "",
             f"Measured {report['date']} with:", "", "```", report["command"], "```", "",
             f"Hardware: {report['hardware']['cpu']}, {report['hardware']['cores']} cores "
             f"(shared; load average at start {report['hardware']['load_avg_at_start'][0]:.1f}).",
             f"Model: {report['model']['arch']}, widths {report['model']['widths']}, {report['model']['img_size']} px, "
             f"{report['model']['test_images']} test images.", "",
             "| measure | value | target | status |", "|---|---|---|---|"]
    lines += [f"| {name} | {value} | {target} | {'pass' if ok else 'FAIL'} |" for name, value, target, ok in rows]
    lat, size = report["latency_ms"], report["bytes"]
    lines += ["", "Median latency, 1 image: " + ", ".join(f"{k} {v:.3f} ms" for k, v in lat.items()) + ".",
              "Model bytes: " + ", ".join(f"{k} {v / 1024:.0f} KB" for k, v in size.items()) + ".",
              *[f"{name} bytes by kind (trunk + subnets): " + ", ".join(f"{k} {v}" for k, v in kinds.items()) + "."
                for name, kinds in report["bytes_by_kind"].items()],
              f"int8 conversion {r['int8_conversion_s']:.1f} s, monolith conversion {r['monolith_conversion_s']:.1f} s; "
              f"cascade top-1 cost at the calibrated setting {r['int8_cascade_top1_cost_pp']:+.2f} pp.",
              f"int8 (per-tensor weights, the default): invoke-only latency ratio "
              f"{r['int8_latency_ratio_invoke_only']:.2f}. int8 with per-channel weights (`--quantize "
              f"int8-per-channel`): size ratio {r['int8_per_channel_size_ratio']:.2f}, latency ratio "
              f"{r['int8_per_channel_latency_ratio']:.2f}, top-1 cost {r['int8_per_channel_top1_cost_pp']:+.2f} pp.",
              "Top-1 of the largest subnet: " + ", ".join(f"{k} {v:.2%}" for k, v in report["top1_largest"].items())
              + "; under tflite-runtime 2.14: " + (", ".join(f"{k} {v:.2%}" for k, v in
                                                      report["top1_largest_tflite_runtime"].items()) or "not set up")
              + ".", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = Parser(prog="convert_bundle.py", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", required=True, help="the data the checkpoint was trained on (folder or .tar.gz)")
    parser.add_argument("--limit-test", type=int, default=1000)
    parser.add_argument("--calib-size", type=int, default=1000)
    add_threads(parser, "1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=100)
    add_out(parser, "results folder", "bench/results")
    args = parser.parse_args(argv)
    args.threads = args.threads or 1
    args.out = args.out or Path(__file__).resolve().parent / "results"
    report = run(args)
    write_results(args.out, "convert_bundle", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
