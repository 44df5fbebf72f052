"""The training flags every host command shares, and run_training(): data -> train -> evaluate -> calibrate.

host/build.py adds these flags to its own parser and calls run_training(args);
`python host/train.py ...` runs training alone through main() here. Bad input raises a
UserError, which the entry scripts print as one 'error:' line with exit status 2.
"""
import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from device.errors import UserError
from device.flags import Parser, positive
from host import checkpoint, distributed, methods
from host.calibrate import calibrate
from host.checkpoint import CheckpointError
from host.complexity import ladder_costs
from host.data import Splits, load_cifar_like
from host.evaluate import collect_logits, top1
from host.network import ARCHS, NetConfig
from host.presets import PRESETS
from host.training import TrainConfig, seed_everything, train


class CliError(UserError, ValueError):
    """Flag values that are individually valid but do not fit together."""


def add_data(parser) -> None:
    """--data, as every host tool takes it."""
    parser.add_argument("--data", default=None,
                        help="ImageFolder dir (train/<class>/*, test/<class>/*) or a .tar.gz of one; "
                             "default: download CIFAR-10")


def on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")
    return text == "on"


def add_training_args(parser: argparse.ArgumentParser, checkpoint_flag: str = "--out") -> argparse.ArgumentParser:
    """Add the shared training flags; None defaults are filled from --preset by resolve_settings().

    `checkpoint_flag` names the checkpoint folder's flag: `--out` where the checkpoint is the
    command's result (host/train.py), `--checkpoint-out` where it is a by-product (build.py)."""
    g = parser.add_argument_group("training")
    g.add_argument("--arch", default="mobilenet", choices=ARCHS, help="base architecture (default mobilenet)")
    g.add_argument("--method", default=methods.DEFAULT, metavar="M",
                   help=f"the dynamic network: {', '.join(methods.METHODS)} (default {methods.DEFAULT})")
    add_data(g)
    g.add_argument("--preset", default="quick", choices=sorted(PRESETS), help="training recipe (default quick)")
    g.add_argument("--epochs", type=float, help="training epochs; a fraction ends part-way through the last (preset)")
    g.add_argument("--batch-size", type=int, help="batch size (preset)")
    g.add_argument("--lr", type=float, help="peak learning rate (preset)")
    g.add_argument("--label-smoothing", type=float, help="label smoothing of the label losses, 0..1 (preset)")
    g.add_argument("--crop-pad", type=int, help="pad-and-crop augmentation in pixels, 0 for flips only (preset)")
    g.add_argument("--crop-scale", type=float,
                   help="random resized crops of this share of an image's area up to all of it, 0 for off "
                        "(preset: camera 0.35)")
    g.add_argument("--img-size", type=int, help="input side in pixels (preset: 32 for quick and full, camera's own)")
    g.add_argument("--low-res-size", type=int,
                   help="progressive resizing: train the first --low-res-epochs at this side in pixels, 0 for off "
                        "(preset: quick 3/4 of --img-size)")
    g.add_argument("--low-res-epochs", type=float, help="epochs of the low-resolution phase (preset)")
    g.add_argument("--subnets", type=int, default=4, help="number of subnets K (default 4)")
    g.add_argument("--widths", default=None,
                   help="comma list of K widths: concat's branch fractions summing to at most 1 (default 1/K "
                        "each), or a width-switching method's increasing multipliers (default e.g. 0.25,0.5,0.75,1)")
    g.add_argument("--limit-train", type=int, help="train on N images only (smoke runs)")
    g.add_argument("--limit-test", type=int, help="evaluate on N test images only (smoke runs)")
    g.add_argument("--calib-size", type=int, help="images held out of train for calibration (preset)")
    g.add_argument("--distill", type=on_off, default=True, metavar="on|off", help="in-place distillation (default on)")
    g.add_argument("--frozen-update", type=on_off, default=False, metavar="on|off",
                   help="frozen updating (default off: bench/results/train_ablation_cpu.md)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto",
                   help="auto, cpu, cuda, cuda:1 ...; under torchrun: auto, cpu (gloo) or cuda (NCCL, the GPU of "
                        "each process's LOCAL_RANK)")
    g.add_argument("--lr-scaling", default="linear", choices=("linear", "none"),
                   help="under torchrun: linear multiplies the learning rate by the number of processes, "
                        "none keeps it (default linear; --batch-size is per process)")
    g.add_argument("--dist-timeout", type=positive(float), default=distributed.DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help="under torchrun: how long a process waits for the others to join and at every "
                        f"collective before it fails (default {distributed.DEFAULT_TIMEOUT_S:g})")
    g.add_argument(checkpoint_flag, dest="checkpoint_out", type=Path, default=None,
                   help="checkpoint folder (default runs/<arch>-<dataset>)")
    g.add_argument("--resume", action="store_true", help=f"continue from the checkpoint in {checkpoint_flag}")
    return parser


def parse_widths(text: str | None, k: int, method: methods.Method = methods.get(methods.DEFAULT)) -> list:
    """K widths from '0.25,0.25,...' (default: the method's); refuses a wrong count or widths the
    method cannot use (concat: a sum past 1; slimmable: not increasing)."""
    if k < 1:
        raise CliError(f"--subnets must be at least 1, got {k}")
    if text is None:
        return [round(w, 6) for w in method.default_widths(k)]
    try:
        widths = [float(w) for w in text.split(",")]
    except ValueError:
        raise CliError(f"--widths {text!r} is not a comma list of numbers, e.g. 0.25,0.25,0.25,0.25") from None
    if len(widths) != k:
        raise CliError(f"--widths has {len(widths)} value(s) but --subnets is {k}; give exactly {k}")
    if any(w <= 0 for w in widths):
        raise CliError(f"--widths {text} must all be positive")
    try:
        method.check_widths(widths)
    except ValueError as exc:
        raise CliError(f"--widths {text}: {exc}") from None
    return widths


@dataclass
class Settings:
    net: NetConfig
    train: TrainConfig
    limit_train: int | None
    limit_test: int | None
    calib_size: int


def resolve_settings(args, world_size: int = 1) -> Settings:
    """Merge the preset with explicit flags and check that they fit together; the learning rate
    follows --lr-scaling over `world_size` processes."""
    preset = PRESETS[args.preset]

    def pick(name):
        value = getattr(args, name)
        return preset[name] if value is None else value

    img_size = pick("img_size")
    for name in ("batch_size", "img_size", "limit_train", "limit_test", "calib_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise CliError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    epochs = pick("epochs")
    scale = epochs / preset["epochs"]  # a user's --epochs stretches or shrinks the preset's phases alike
    low_res_size = args.low_res_size
    if low_res_size is None:  # the preset gives the low-resolution side as a fraction of --img-size
        low_res_size = round(preset["low_res_scale"] * img_size)
    low_res_epochs = args.low_res_epochs
    if low_res_epochs is None:
        low_res_epochs = preset["low_res_epochs"] * scale if low_res_size else 0.0
    if epochs <= 0:
        raise CliError(f"--epochs must be more than 0, got {epochs}")
    if low_res_size and not 8 <= low_res_size < img_size:
        raise CliError(f"--low-res-size {low_res_size} must be 0 (off) or from 8 to below --img-size {img_size}")
    crop_scale = pick("crop_scale")
    if not (crop_scale == 0 or 0 < crop_scale <= 1):
        raise CliError(f"--crop-scale must be 0 (off) or in (0, 1], got {crop_scale}")
    if not 0 <= low_res_epochs <= epochs:
        raise CliError(f"--low-res-epochs {low_res_epochs} must be from 0 to --epochs {epochs}")
    if args.crop_pad is not None and args.crop_pad < 0:
        raise CliError(f"--crop-pad must be 0 or more, got {args.crop_pad}")
    if args.label_smoothing is not None and not 0 <= args.label_smoothing < 1:
        raise CliError(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    method = methods.get(args.method)
    try:
        net = NetConfig(arch=args.arch, img_size=img_size, widths=parse_widths(args.widths, args.subnets, method),
                        method=method.name)
    except ValueError as exc:  # NetConfig's own checks (e.g. --img-size too small)
        raise CliError(str(exc)) from None
    lr = pick("lr") * (world_size if args.lr_scaling == "linear" else 1)
    cfg = TrainConfig(epochs=epochs, batch_size=pick("batch_size"), lr=lr,
                      warmup_epochs=preset["warmup_epochs"] * scale, crop_pad=pick("crop_pad"), crop_scale=crop_scale,
                      low_res_size=low_res_size, low_res_epochs=low_res_epochs,
                      label_smoothing=pick("label_smoothing"), distill=args.distill,
                      frozen_update=args.frozen_update, seed=args.seed, device=args.device)
    return Settings(net, cfg, pick("limit_train"), args.limit_test, pick("calib_size"))


@dataclass
class TrainingResult:
    net: object  # the method's network
    splits: Splits
    accuracy: list  # per-subnet test top-1, 0..1
    costs: dict  # host.complexity.ladder_costs
    calibration: dict  # host.calibrate.calibrate
    checkpoint_dir: Path
    history: list
    test_logits: object  # (K, N, classes) numpy array
    seconds: dict  # wall time of each stage


def prepare_network(settings: Settings, out: Path, resume: bool, num_classes: int):
    """A fresh network, or with --resume the checkpoint's, which must match the requested config."""
    settings.net.num_classes = num_classes
    if resume and checkpoint.exists(out):
        net, _ = checkpoint.load(out, expected_arch=settings.net.arch)
        if net.cfg.to_dict() != settings.net.to_dict():
            raise CheckpointError(f"checkpoint {out} was trained with {net.cfg.to_dict()}, not "
                                  f"{settings.net.to_dict()}; pass the same flags or another --out")
        return net
    if resume:
        print(f"warning: --resume but no checkpoint in {out}; starting from scratch", file=sys.stderr)
    seed_everything(settings.train.seed)  # the initial weights follow --seed too
    return methods.build_network(settings.net)


def run_training(args) -> TrainingResult | None:
    """Load data, train (or resume), then measure per-subnet test top-1, costs and calibration.

    Under torchrun every process trains its shard; rank 0 alone goes on to evaluate and
    calibrate, the others return None once the last checkpoint is written.
    """
    world = distributed.from_env()
    settings = resolve_settings(args, world.size)
    world = distributed.start(world, args.device, args.dist_timeout)
    started = time.time()
    splits = load_cifar_like(args.data, settings.net.img_size, settings.limit_train, settings.calib_size,
                             settings.train.seed, limit_test=settings.limit_test)
    out = args.checkpoint_out or Path("runs") / run_name(settings.net.arch, splits.name, settings.net.method)
    seconds = {"data": time.time() - started}
    net = prepare_network(settings, out, args.resume, len(splits.classes))
    meta = {"dataset": splits.name, "classes": splits.classes, "preset": args.preset, "data": splits.describe()}
    if world.is_main:
        print(splits.summary(), file=sys.stderr)
    if world.distributed:
        settings.train.device = world.device
        meta["distributed"] = {"world_size": world.size, "lr_scaling": args.lr_scaling}
        if world.is_main:
            print(distributed.describe(world, settings.train.batch_size, settings.train.lr, args.lr_scaling),
                  file=sys.stderr)
    started = time.time()
    history = train(net, splits, settings.train, checkpoint_dir=out, resume=args.resume, meta=meta, world=world)
    distributed.finish(world)
    if not world.is_main:
        return None
    seconds["train"] = time.time() - started
    started = time.time()
    costs = ladder_costs(methods.get(net.cfg.method).export_plan(net))
    test_logits = collect_logits(net, splits.test, device=settings.train.device)
    accuracy = top1(test_logits, splits.test.labels)
    seconds["evaluate"] = time.time() - started
    started = time.time()
    calibration = calibrate(net, splits.calib, costs, device=settings.train.device)
    seconds["calibrate"] = time.time() - started
    checkpoint.update_config(out, {"results": {"test_top1": accuracy, "test_count": len(splits.test),
                                               "costs": costs, "calibration": calibration, "seconds": seconds}})
    return TrainingResult(net, splits, accuracy, costs, calibration, out, history, test_logits, seconds)


def run_name(arch: str, dataset: str, method: str) -> str:
    """<arch>-<dataset>, with -<method> for every method but the kit's own: the checkpoint folder's
    and the bundle's name."""
    return f"{arch}-{dataset}" + ("" if method == methods.DEFAULT else f"-{method}")


def summary_lines(result: TrainingResult) -> list:
    """One line per subnet (MACs, params, test top-1) and the router's calibrated setting."""
    lines = [f"{'exit':>6} {'MMACs':>10} {'params':>11} {'test top-1':>10} {'calib top-1':>11}"]
    for cost, acc, cal in zip(result.costs["exits"], result.accuracy, result.calibration["exits"]):
        lines.append(f"{cost['index']:>6} {cost['macs_alone'] / 1e6:>10.2f} {cost['params']:>11,} "
                     f"{100 * acc:>9.2f}% {100 * cal['calib_accuracy']:>10.2f}%")
    router = result.calibration["router"]
    lines.append(f"router: initial control {router['initial']:.2f}, floor {router['floor']:.2f}; "
                 f"checkpoint {result.checkpoint_dir}; seconds " +
                 ", ".join(f"{k} {v:.0f}" for k, v in result.seconds.items()))
    return lines


def main(argv=None) -> int:
    """host/train.py: train, evaluate and calibrate; prints the summary lines."""
    parser = add_training_args(Parser(prog="train.py", description="Train, evaluate and calibrate the dynamic network."))
    result = run_training(parser.parse_args(argv))
    if result is not None:  # under torchrun, rank 0 alone prints
        print("\n".join(summary_lines(result)))
    return 0
