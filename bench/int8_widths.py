"""int8 / fp32 latency and size of one branch step at several widths, to bench/results/int8_widths.{md,json}.

Is int8 slower than fp32 on this host because our branches are narrow (0.25 width: 8-80
channels, 9 weights per depthwise channel), or at every width? For each width w this exports
subnet_1 of a one-branch MobileNet (trunk + branch at width w, random weights: latency and
size do not depend on their values) in fp32 and in int8 (converters.quantize defaults),
then times both files' invoke interleaved, and the trunk's as well (full width at every w).

    OMP_NUM_THREADS=1 .venv/bin/python bench/int8_widths.py --widths 0.25,0.5,1.0
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.convert_bundle import hardware  # noqa: E402
from bench.results_files import command_line, write_results  # noqa: E402
from device.flags import Parser, add_out, add_threads, run_cli  # noqa: E402
from converters.export import convert_module  # noqa: E402
from converters.flatbuffer import anatomy  # noqa: E402
from converters.quantize import calibration_inputs, quantize_module  # noqa: E402
from device.engine.outputs import ModelFile  # noqa: E402
from device.profiling import median_ms  # noqa: E402
from host.methods.concat import CONCAT, SubnetExport, TrunkExport, sample_inputs  # noqa: E402
from host.network import DynamicNet, NetConfig  # noqa: E402

CALIB_IMAGES = 32


def export_pair(module, fp32_args: tuple, samples: list, work: Path, name: str) -> dict:
    """{'fp32': path, 'int8': path} of one module."""
    return {"fp32": convert_module(module.eval(), fp32_args, work / f"{name}.tflite", name),
            "int8": quantize_module(module, samples, work / f"{name}_int8.tflite", name)}


def interleaved_invoke_ms(files: dict, rounds: int, repeats: int) -> dict:
    """Median invoke ms per file (name -> ModelFile with inputs set), measured `rounds` times in turn."""
    samples = {name: [] for name in files}
    for _ in range(rounds):
        for name, f in files.items():
            samples[name].append(median_ms(f.stage.run, warmup=5, runs=repeats))
    return {name: float(np.median(v)) for name, v in samples.items()}


def measure_width(width: float, img_size: int, threads: int, rounds: int, repeats: int) -> dict:
    torch.manual_seed(0)
    net = DynamicNet(NetConfig(arch="mobilenet", img_size=img_size, widths=[width])).eval()
    images = np.random.default_rng(0).integers(0, 256, (CALIB_IMAGES, img_size, img_size, 3)).astype(np.float32)
    samples = calibration_inputs(CONCAT.export_plan(net), images)
    with tempfile.TemporaryDirectory(prefix="dynedge-widths-") as work:
        work = Path(work)
        paths = {"trunk": export_pair(TrunkExport(net), sample_inputs(net, None), samples["trunk"], work, "trunk"),
                 "subnet_1": export_pair(SubnetExport(net, 1), sample_inputs(net, 1), samples["subnet_1"], work,
                                         "subnet_1")}
        files = {}
        for name, pair in paths.items():
            for precision, path in pair.items():
                f = ModelFile(path, threads=threads)
                f(*[a.numpy() for a in samples[name][0]])
                files[f"{name} {precision}"] = f
        latency = interleaved_invoke_ms(files, rounds, repeats)
        parts = {f"{name} {precision}": anatomy(path) for name, pair in paths.items()
                 for precision, path in pair.items()}
    return {"width": width, "feature_dim": net.feature_dims[0], "latency_ms": latency,
            "bytes": {name: {k: v for k, v in p.items() if k not in ("ops", "weight_scales")}
                      for name, p in parts.items()},
            "ratios": {name: {"latency": latency[f"{name} int8"] / latency[f"{name} fp32"],
                              "size": parts[f"{name} int8"]["file"] / parts[f"{name} fp32"]["file"]}
                       for name in paths}}


def markdown(report: dict) -> str:
    lines = ["# int8 / fp32 by branch width (one branch, subnet_1 step)", "",
             f"Measured {report['date']} with:", "", "```", report["command"], "```", "",
             f"Hardware: {report['hardware']['cpu']}, {report['hardware']['cores']} cores "
             f"(shared; load average at start {report['hardware']['load_avg_at_start'][0]:.1f}); "
             f"{report['threads']} interpreter thread(s), {report['img_size']} px, ai-edge-litert (XNNPACK).", "",
             "| width | features | subnet_1 fp32 ms | int8 ms | latency int8/fp32 | size int8/fp32 "
             "| int8 file: weights / quant params / graph+names |",
             "|---|---|---|---|---|---|---|"]
    for row in report["widths"]:
        lat, b = row["latency_ms"], row["bytes"]["subnet_1 int8"]
        rest = b["file"] - b["int8"] - b["int32"] - b["quant_params"]
        lines.append(f"| {row['width']} | {row['feature_dim']} | {lat['subnet_1 fp32']:.3f} "
                     f"| {lat['subnet_1 int8']:.3f} "
                     f"| {row['ratios']['subnet_1']['latency']:.2f} | {row['ratios']['subnet_1']['size']:.2f} "
                     f"| {b['int8'] + b['int32']} / {b['quant_params']} / {rest} B |")
    trunk = report["widths"][0]
    lines += ["", f"Trunk (full width, the same at every w): fp32 {trunk['latency_ms']['trunk fp32']:.3f} ms, "
              f"int8 {trunk['latency_ms']['trunk int8']:.3f} ms, ratio {trunk['ratios']['trunk']['latency']:.2f}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = Parser(prog="int8_widths.py", description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="0.25,0.5,1.0")
    parser.add_argument("--img-size", type=int, default=32)
    add_threads(parser, "1")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=100)
    add_out(parser, "results folder", "bench/results")
    args = parser.parse_args(argv)
    args.threads = args.threads or 1
    args.out = args.out or Path(__file__).resolve().parent / "results"
    report = {"command": command_line(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "hardware": hardware(),
              "threads": args.threads, "img_size": args.img_size,
              "widths": [measure_width(float(w), args.img_size, args.threads, args.rounds, args.repeats)
                         for w in args.widths.split(",")]}
    write_results(args.out, "int8_widths", report, markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
