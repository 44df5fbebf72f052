#!/usr/bin/env python3
"""dynedge camera daemon: classify frames with a latency budget.

    python device/run_camera.py --budget 40ms                         (inside an unpacked bundle)
    python device/run_camera.py --bundle dist/mobilenet-cifar10 --source video.avi --log frames.jsonl

Bad input ends with one line starting with 'error:' and exit status 2. SIGINT and SIGTERM
finish the current frame, flush the log and exit 0. Under systemd (Type=notify) it reports
READY=1 and feeds the watchdog; see device/systemd/dynedge.service.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import logging
import os
import re
import signal
import threading
import time
import warnings

from device.boards import BoardError, resolve_profile
from device.bundle import BundleError, default_bundle_dir, load_bundle
from device.cascade import Cascade, CascadeError
from device.daemon import run_loop
from device.router import (BoardSensors, PolicyError, SensorSampler, ThermalLimits,
                           make_policy)
from device.runtime import RUNTIMES, RuntimeUnavailable
from device.sources import SourceError, open_source
from device.telemetry import Telemetry, TelemetryError, open_log
from device.threads import keep_faster
from device.watchdog import SystemdNotifier

STARTED = time.perf_counter()
BUDGET_FORMS = "a positive time such as 40ms, 0.04s or 40 (milliseconds)"


class UsageError(Exception):
    """Bad input: printed as one 'error:' line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse_budget(text: str) -> float:
    """'40ms', '0.04s' or '40' (milliseconds) -> seconds; anything else (or <= 0) is refused."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?\s*", str(text))
    if not match:
        raise argparse.ArgumentTypeError(f"--budget '{text}' is not {BUDGET_FORMS}")
    value = float(match.group(1)) / (1.0 if match.group(2) == "s" else 1000.0)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--budget '{text}' must be above zero; give {BUDGET_FORMS}")
    return value


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"'{text}' must be above zero")
        return value
    return parse


def build_parser() -> Parser:
    p = Parser(description="dynedge camera loop: a dynamic network under a latency budget.")
    p.add_argument("--bundle", help="bundle folder (holds model/manifest.json); default: the bundle "
                                    "this script sits in")
    p.add_argument("--budget", type=parse_budget, help="latency budget per frame, e.g. 40ms, 0.04s, 40 "
                                                       "(default: the board profile's)")
    p.add_argument("--source", help="0 (V4L2), picamera2, csi://N, rtsp:// or http(s):// URL, a video "
                                    "file, an image folder or glob (default: the board profile's camera)")
    p.add_argument("--loop", action="store_true", help="start a file or folder source again at its end")
    p.add_argument("--max-frames", type=positive(int), help="stop after this many frames")
    p.add_argument("--duration", type=positive(float), help="stop after this many seconds")
    p.add_argument("--log", default="-", help="JSON lines per frame to FILE, or - for stdout (default)")
    p.add_argument("--policy", default="router", help="router (default), cascade, or fixed:K")
    p.add_argument("--runtime", choices=list(RUNTIMES),
                   help="force a runtime: litert (ai-edge-litert's CompiledModel; the default where installed), "
                        "litert-interpreter (its Interpreter), tflite-runtime or tensorflow")
    p.add_argument("--threads", type=positive(int), help="interpreter threads (default: the board profile's, "
                                                         "unless one thread measures faster at start)")
    p.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    p.add_argument("--board", help="board profile name or .toml path (default: detect)")
    p.add_argument("--show", action="store_true", help="overlay window (only where a display exists)")
    p.add_argument("--metrics-port", type=positive(int), help="serve Prometheus text on 127.0.0.1:PORT")
    p.add_argument("--summary-every", type=positive(float), default=5.0, metavar="S",
                   help="seconds between summary lines on stderr (default 5)")
    return p


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT/SIGTERM set `stop`: the loop finishes its frame, then everything is flushed.
    (Python's default SIGTERM would end the process without running finally blocks.)"""
    def handle(signum, _frame):
        logging.getLogger("dynedge").info("%s received; finishing the current frame",
                                          signal.Signals(signum).name)
        stop.set()
    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def load_parts(args):
    """Everything the loop needs, or UsageError naming what is wrong and how to fix it."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            profile = resolve_profile(args.board)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        bundle = load_bundle(args.bundle if args.bundle else default_bundle_dir(__file__))
        if args.precision not in bundle.precisions():
            raise UsageError(f"--precision {args.precision}: the bundle has only "
                             f"{', '.join(bundle.precisions())}; rebuild it with {args.precision} or pick one")
        budget = args.budget if args.budget is not None else profile.budget_ms / 1000.0
        sampler = SensorSampler(BoardSensors(profile))
        policy = make_policy(args.policy, bundle, budget,
                             ThermalLimits(profile.soft_throttle_c, profile.hard_throttle_c), sampler)
        log_stream = open_log(args.log)
        source = open_source(args.source if args.source is not None else profile.camera, args.loop)
        cascade = start_cascade(args, bundle, profile)
    except (BoardError, BundleError, PolicyError, TelemetryError, SourceError, RuntimeUnavailable,
            CascadeError) as exc:
        raise UsageError(str(exc)) from None
    return profile, bundle, budget, sampler, policy, log_stream, source, cascade


def start_cascade(args, bundle, profile) -> Cascade:
    """The cascade with --threads, or with the board profile's count when one thread is not
    faster here (device/threads.py); the choice is logged with its timings, and so is any
    model file whose convolutions no delegate took (they run on the slower builtin kernels)."""
    log = logging.getLogger("dynedge")

    def make(threads):
        return Cascade(bundle, runtime=args.runtime, threads=threads, precision=args.precision)
    if args.threads:
        cascade = make(args.threads)
    else:
        cascade, timings = keep_faster(make, profile.default_threads)
        if timings:
            log.info("threads: %d (a frame through subnet %d took %s)", cascade.threads, cascade.num_subnets,
                     ", ".join(f"{ms:.2f} ms on {n}" for n, ms in timings.items()))
    builtin = [stage.path.name for stage in cascade.stages if stage.on_delegate() is False]
    if builtin:
        log.warning("no delegate (XNNPACK) took the convolutions of %s in %s: they run on the builtin "
                    "kernels, which can be many times slower; `python device/profile.py` compares "
                    "--precision and --runtime choices on this board", ", ".join(builtin), cascade.runtime_name)
    return cascade


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("dynedge")
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        args = build_parser().parse_args(argv)
        profile, bundle, budget, sampler, policy, log_stream, source, cascade = load_parts(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    on_frame = None
    if args.show:
        from device.overlay import Overlay, display_problem
        problem = display_problem()
        if problem:
            print(f"warning: --show ignored: {problem}", file=sys.stderr)
        else:
            on_frame = Overlay(bundle.labels, budget)
    cascade.warm_up()
    telemetry = Telemetry(log_stream, bundle.labels, budget, cascade.num_subnets, policy.name,
                          summary_every_s=args.summary_every)
    notifier = SystemdNotifier()
    metrics = None
    try:
        if args.metrics_port:
            from device.metrics import MetricsServer
            try:
                metrics = MetricsServer(args.metrics_port, telemetry)
            except OSError as exc:
                print(f"error: --metrics-port {args.metrics_port}: cannot listen on 127.0.0.1 "
                      f"({exc.strerror}); pick a free port", file=sys.stderr)
                return 2
        log.info("bundle %s: %d subnets, %s, runtime %s, %d thread(s); board %s; budget %.1f ms; "
                 "policy %s; source %s; ready in %.2f s", bundle.name, cascade.num_subnets, args.precision,
                 cascade.runtime_name, cascade.threads, profile.name, budget * 1e3, policy.name,
                 source.describe, time.perf_counter() - STARTED)
        notifier.ready(f"budget {budget * 1e3:.1f} ms")
        run_loop(source, cascade, policy, telemetry, sampler=sampler, stop=stop,
                 max_frames=args.max_frames, duration_s=args.duration, on_frame=on_frame,
                 heartbeat=notifier.ping)
    except BrokenPipeError:
        # The reader of `--log -` went away (`| head`, a closed viewer): stop as on SIGTERM. stdout
        # goes to /dev/null so that the interpreter's own flush at exit does not fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        log.info("the reader of the JSON lines on stdout closed the pipe; stopping")
    finally:
        notifier.stopping()
        source.close()
        telemetry.close()
        if metrics is not None:
            metrics.close()
        if on_frame is not None:
            on_frame.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
