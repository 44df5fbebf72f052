"""The host's one command: train (or reuse a checkpoint) -> calibrate -> convert -> verify -> bundle.

    python host/build.py --arch mobilenet --data ../shared/datasets/cifar10-jpg.tar.gz [--method M] [--quantize int8|int8-per-channel]

writes dist/<arch>-<dataset>[-<method>]/ and its .tar.gz (`--out` is the bundle root), then
prints one row per exit: MACs, params, top-1, fp32 (and int8) latency on this host, file size. The training flags of host/train.py pass through; the checkpoint a build trains
goes to --checkpoint-out. Bad input ends in one 'error:' line and exit status 2. Under
torchrun every process trains its shard and rank 0 builds (docs/distributed-training.md).
"""
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: import from the repository root, not host/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

from converters.bundle import BundleSpec, PrecisionFiles, refuse_existing, write_bundle  # noqa: E402
from converters.captured import output_to  # noqa: E402
from converters.export import export_stages, stage_entries  # noqa: E402
from converters.parity import MIN_PARITY_IMAGES, check_fp32, check_int8, measure, torch_reference  # noqa: E402
from converters.quantize import export_int8  # noqa: E402
from device.bundle.ladder import ladder_from  # noqa: E402
from device.engine import Cascade  # noqa: E402
from device.flags import Parser, UsageError, add_out, add_threads, run_cli  # noqa: E402
from device.profiling import median_ms  # noqa: E402
from device.service.runtime_logs import filter_runtime_logs  # noqa: E402
from host import checkpoint, distributed, methods  # noqa: E402
from host.calibrate import calibrate, initial_thresholds  # noqa: E402
from host.cli import CliError, add_training_args, resolve_settings, run_name, run_training  # noqa: E402
from host.complexity import ladder_costs  # noqa: E402
from host.data import Split, dataset_name, load_cifar_like  # noqa: E402
from host.evaluate import collect_logits, top1  # noqa: E402

EVAL_SET_SIZE = 500         # labeled test images shipped in the bundle for on-board accuracy
PARITY_IMAGES = 2000        # images each file is checked on: test images, topped up to MIN_PARITY_IMAGES
INT8_CALIB_IMAGES = 200     # training images the int8 observers see
CONVERT_LOG = "convert.log"  # beside the checkpoint: the converter's and the runtime's own output


@dataclass
class Trained:
    """What the build needs from training, whether it just ran or came from --checkpoint."""
    net: object
    splits: object
    accuracy: list
    costs: dict
    calibration: dict
    checkpoint_dir: Path


def parse_args(argv=None):
    parser = add_training_args(Parser(prog="build.py", description=__doc__.splitlines()[0]),
                               checkpoint_flag="--checkpoint-out")
    g = parser.add_argument_group("build")
    g.add_argument("--checkpoint", type=Path, help="reuse this checkpoint folder instead of training")
    g.add_argument("--quantize", choices=["int8", "int8-per-channel"],
                   help="also ship post-training int8 files: per-tensor weights (smaller), or per-channel "
                        "for a model whose int8 top-1 falls too far with per-tensor")
    add_out(g, "bundle root: the bundle goes to OUT/<arch>-<dataset>/ and OUT/<arch>-<dataset>.tar.gz", "dist/")
    g.add_argument("--dist", type=Path, help=argparse.SUPPRESS)
    g.add_argument("--force", action="store_true", help="replace an existing bundle")
    add_threads(g, "1; for the latency figures of the summary")
    args = parser.parse_args(argv)
    if args.dist is not None:
        raise UsageError("--dist is now --out (the bundle root); the checkpoint folder is --checkpoint-out")
    if args.checkpoint is not None and distributed.from_env().distributed:
        raise UsageError("--checkpoint builds from a finished checkpoint in one process; "
                         "run python host/build.py without torchrun")
    args.out = args.out or Path("dist")
    args.threads = args.threads or 1
    return args


def stage(number: int, text: str, out=None) -> float:
    print(f"[{number}/5] {text}", file=out or sys.stderr, flush=True)
    return time.time()


def from_checkpoint(args) -> Trained:
    """Load --checkpoint (refusing another arch), then measure and calibrate it like a fresh run."""
    net, config = checkpoint.load(args.checkpoint, expected_arch=args.arch)
    if net.cfg.method != args.method:
        raise CliError(f"checkpoint {args.checkpoint} holds a {net.cfg.method} network, not {args.method}; "
                       f"pass --method {net.cfg.method}")
    if args.calib_size is None and "results" in config:  # the split training held out, not images it saw
        args.calib_size = config["results"]["calibration"]["count"]
    settings = resolve_settings(args)
    splits = load_cifar_like(args.data, net.cfg.img_size, settings.limit_train, settings.calib_size,
                             settings.train.seed, limit_test=settings.limit_test)
    if len(splits.classes) != net.cfg.num_classes:
        raise CliError(f"checkpoint {args.checkpoint} has {net.cfg.num_classes} classes but --data has "
                       f"{len(splits.classes)}; pass the data it was trained on")
    print(splits.summary(), file=sys.stderr)
    costs = ladder_costs(methods.get(net.cfg.method).export_plan(net))
    accuracy = top1(collect_logits(net, splits.test, device=args.device), splits.test.labels)
    return Trained(net, splits, accuracy, costs, calibrate(net, splits.calib, costs, device=args.device),
                   args.checkpoint)


def train_or_load(args) -> Trained | None:
    """None on a torchrun rank other than 0, once training is done: rank 0 alone builds the bundle."""
    if args.checkpoint is not None:
        return from_checkpoint(args)
    result = run_training(args)
    if result is None:
        return None
    return Trained(result.net, result.splits, result.accuracy, result.costs, result.calibration,
                   result.checkpoint_dir)


def exit_entries(trained: Trained) -> list:
    """Manifest exit entries: the ladder and its costs, and test and calibration figures."""
    return [{**cost, "accuracy": trained.accuracy[k], "calib_accuracy": cal["calib_accuracy"],
             "entropy_quantiles": cal["entropy_quantiles"]}
            for k, (cost, cal) in enumerate(zip(trained.costs["exits"], trained.calibration["exits"]))]


def spread(split, count: int):
    """`count` images evenly spaced over the split (test folders are sorted by class)."""
    index = np.unique(np.linspace(0, len(split) - 1, min(count, len(split))).astype(int))
    return split.subset(index)


def parity_images(splits) -> tuple:
    """Up to PARITY_IMAGES test images spread over the split; a test split under MIN_PARITY_IMAGES
    (a user's small photo folders) is topped up with training images, since parity compares the
    files with PyTorch, which any real image serves; a data set smaller than that gives all it has.
    Returns (images as a Split, what they are)."""
    test = spread(splits.test, PARITY_IMAGES)
    if len(test) >= MIN_PARITY_IMAGES:
        return test, "test images"
    extra = spread(splits.train, MIN_PARITY_IMAGES - len(test))
    return (Split(np.concatenate([test.images, extra.images]), np.concatenate([test.labels, extra.labels])),
            f"images: {len(test)} test, {len(extra)} training")


def convert_and_verify(trained: Trained, plan, quantize: str | None, work: Path, threads: int) -> tuple:
    """Export every precision, check parity, time on this host: ({name: PrecisionFiles}, {name: latency}).

    The converter's and the runtime's own output goes to convert.log beside the checkpoint."""
    test, what = parity_images(trained.splits)
    log = Path(trained.checkpoint_dir) / CONVERT_LOG
    with output_to(log) as terminal:
        print(f"      the converter's own output goes to {log}", file=terminal)
        return exported_and_checked(trained, plan, test, what, quantize, work, threads, terminal)


def exported_and_checked(trained: Trained, plan, test, what: str, quantize: str | None, work: Path, threads: int,
                         terminal) -> tuple:
    """convert_and_verify's work, with its progress lines on `terminal`."""
    net = trained.net
    started = stage(3, "convert: litert-torch export" + (" + int8 PTQ" if quantize else ""), terminal)
    exported = {"fp32": export_stages(plan, work)}
    if quantize:
        calib = trained.splits.train.images[:INT8_CALIB_IMAGES]
        exported["int8"] = export_int8(plan, calib, work, per_channel=quantize == "int8-per-channel")
    print(f"      converted in {time.time() - started:.0f}s", file=terminal)

    stage(4, f"verify: parity with PyTorch on {len(test)} {what}, latency on this host", terminal)
    reference = torch_reference(net, test.images)
    thresholds = initial_thresholds(trained.calibration)
    stages = stage_entries(plan, {name: c["macs"] for name, c in trained.costs["stages"].items()})
    precisions, latency = {}, {}
    for name, files in exported.items():
        ladder = ladder_from(stages, trained.costs["exits"], {n: p.name for n, p in files.items()}, work,
                             net.cfg.num_classes)
        engine = Cascade.from_ladder(ladder, threads=threads)
        parity, cascade = measure(engine, reference, test.images, test.labels, thresholds,
                                  min_images=min(MIN_PARITY_IMAGES, len(test)))
        if name == "fp32":
            check_fp32(parity)
        else:
            check_int8(parity, precisions["fp32"].parity)
        precisions[name] = PrecisionFiles(files, parity, cascade)
        latency[name] = exit_latency_ms(engine, test.images[0])
    return precisions, latency


def exit_latency_ms(cascade: Cascade, image: np.ndarray) -> dict:
    """Median ms of each exit run alone from the image (what fixed:k costs), and of a frame that
    tries every exit ('ladder'), with the profiler's timing harness."""
    x = image[None].astype(np.float32)
    cascade.run_all(x)

    def alone(k):
        cascade.set_image(x)
        cascade.run_exit(k)
    times = {k: median_ms(lambda: alone(k)) for k in range(1, cascade.num_subnets + 1)}
    times["ladder"] = median_ms(lambda: cascade.run_all(x))
    return times


def summary(trained: Trained, plan, precisions: dict, latency: dict) -> str:
    """One row per exit, benchmark_model style: cost, accuracy, host latency, size of its files."""
    names = list(precisions)
    head = (f"{'exit':>6} {'MMACs':>9} {'MMACs cum':>9} {'params':>10} {'top-1':>7} "
            + " ".join(f"{n + ' ms':>8} {n + ' KB':>8} {n + ' top-1':>10}" for n in names))
    rows = [head]
    for k, cost in enumerate(trained.costs["exits"]):
        cells = []
        for n in names:
            files = precisions[n].files
            size = sum(files[stage].stat().st_size for stage in cost["stages"])
            parity = precisions[n].parity[files[plan.exits[k].answer].name]
            cells.append(f"{latency[n][k + 1]:>8.2f} {size / 1024:>8.0f} {parity['top1']:>10.2%}")
        rows.append(f"{k + 1:>6} {cost['macs_alone'] / 1e6:>9.2f} {cost['macs_cumulative'] / 1e6:>9.2f} "
                    f"{cost['params']:>10,} {trained.accuracy[k]:>7.2%} " + " ".join(cells))
    ladder = " ".join(f"{n}: a frame through every exit {latency[n]['ladder']:.2f} ms" for n in names)
    return "\n".join(rows + [f"latency (median, 1 image, this host; ms = the exit alone from the image) {ladder}"])


def expected_name(args) -> str:
    """The bundle's name as host.data will name the dataset (CIFAR-10 when --data is not given)."""
    return run_name(args.arch, dataset_name(Path(args.data)) if args.data else "cifar10", args.method)


def build(args) -> tuple | None:
    """The whole pipeline; returns (bundle folder, archive), or None on a torchrun rank other than 0."""
    refuse_existing(args.out / expected_name(args), args.force)  # before minutes of training
    if distributed.from_env().is_main:
        stage(1, "train" if args.checkpoint is None else f"load checkpoint {args.checkpoint}")
    started = time.time()
    trained = train_or_load(args)
    if trained is None:
        return None
    print(f"      done in {time.time() - started:.0f}s", file=sys.stderr)
    cfg = trained.net.cfg
    name = run_name(cfg.arch, trained.splits.name, cfg.method)
    router = trained.calibration["router"]
    plan = methods.get(cfg.method).export_plan(trained.net.cpu().eval())
    stage(2, f"calibrate: entropy quantiles of {len(plan.exits)} exits on "
             f"{trained.calibration['count']} held-out images; router initial {router['initial']:.2f}, "
             f"floor {router['floor']:.2f}")
    with tempfile.TemporaryDirectory(prefix="dynedge-build-") as work:
        precisions, latency = convert_and_verify(trained, plan, args.quantize, Path(work), args.threads)
        stage(5, f"bundle: {args.out / name}")
        test = spread(trained.splits.test, EVAL_SET_SIZE)
        spec = BundleSpec(
            name=name, method=cfg.method, arch=cfg.arch, dataset=trained.splits.name, labels=trained.splits.classes,
            img_size=cfg.img_size,
            stages=stage_entries(plan, {n: c["macs"] for n, c in trained.costs["stages"].items()}),
            exits=exit_entries(trained), router=router, precisions=precisions,
            eval_images=test.images, eval_labels=test.labels, data=trained.splits.describe())
        folder, archive = write_bundle(spec, args.out, force=args.force)
        print(summary(trained, plan, precisions, latency))
    return folder, archive


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        built = build(args)
    except KeyboardInterrupt:
        print("error: interrupted; no bundle was written (partial output is removed)", file=sys.stderr)
        return 130
    if built is not None:
        print(f"bundle: {built[0]}  archive: {built[1]}")
    return 0


if __name__ == "__main__":
    filter_runtime_logs()  # the runtime's lines at exit, after convert.log is closed
    sys.exit(run_cli(main))
