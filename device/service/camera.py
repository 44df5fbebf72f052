"""The camera daemon behind device/run_camera.py: flags, start-up, the loop, a clean stop.

Bad input ends with one line starting with 'error:' and exit status 2 (device/flags.run_cli).
SIGINT and SIGTERM finish the current frame, flush the log and exit 0. Under systemd
(Type=notify) it reports READY=1 and feeds the watchdog; see device/service/systemd/.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings

from device.board import BoardSensors, SensorSampler, keep_faster, resolve_profile
from device.bundle import default_bundle_dir, load_bundle
from device.engine import Cascade
from device.flags import (Parser, UsageError, add_board, add_bundle, add_precision, add_runtime, add_threads,
                          negative_values_as_values, parse_budget, positive)
from device.io import Telemetry, open_log, open_source, pace
from device.policy import ThermalLimits, make_policy
from device.service.daemon import run_loop
from device.service.watchdog import SystemdNotifier

STARTED = time.perf_counter()


def build_parser() -> Parser:
    p = Parser(prog="run_camera.py", description="dynedge camera loop: a dynamic network under a latency budget.")
    add_bundle(p)
    p.add_argument("--budget", type=parse_budget, help="latency budget per frame, e.g. 40ms, 0.04s, 40 "
                                                       "(default: the board profile's)")
    p.add_argument("--source", help="0 (V4L2), picamera2, csi://N, rtsp:// or http(s):// URL, a video "
                                    "file, an image folder or glob (default: the board profile's camera)")
    p.add_argument("--loop", action="store_true", help="start a file or folder source again at its end")
    p.add_argument("--fps", metavar="RATE|auto",
                   help="play a video file or image folder as a live camera would give it: RATE frames per "
                        "second, or auto for a video's own rate; late frames are dropped (default: as fast as "
                        "the loop takes them)")
    p.add_argument("--max-frames", type=positive(int), help="stop after this many frames")
    p.add_argument("--duration", type=positive(float), help="stop after this many seconds")
    p.add_argument("--log", default="-", help="JSON lines per frame to FILE, or - for stdout (default)")
    p.add_argument("--policy", default="router", help="router (default), cascade, or fixed:K")
    add_runtime(p)
    add_threads(p, "the board profile's, unless one thread measures faster at start")
    add_precision(p)
    add_board(p)
    p.add_argument("--show", action="store_true", help="overlay window (only where a display exists)")
    p.add_argument("--metrics-port", type=positive(int), help="serve Prometheus text on 127.0.0.1:PORT")
    p.add_argument("--verbose", action="store_true",
                   help="also show the TFLite runtime's own INFO lines on stderr (run_camera.py drops them)")
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
    """Everything the loop needs; a UserError names what is wrong and how to fix it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        profile = resolve_profile(args.board)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    bundle = load_bundle(args.bundle or default_bundle_dir())
    if args.precision not in bundle.precisions():
        raise UsageError(f"--precision {args.precision}: the bundle has only "
                         f"{', '.join(bundle.precisions())}; rebuild it with {args.precision} or pick one")
    budget = args.budget if args.budget is not None else profile.budget_ms / 1000.0
    sampler = SensorSampler(BoardSensors(profile))
    policy = make_policy(args.policy, bundle, budget,
                         ThermalLimits(profile.soft_throttle_c, profile.hard_throttle_c), sampler)
    log_stream = open_log(args.log)
    source = pace(open_source(args.source if args.source is not None else profile.camera, args.loop), args.fps)
    cascade = start_cascade(args, bundle, profile)
    return profile, bundle, budget, sampler, policy, log_stream, source, cascade


def start_cascade(args, bundle, profile) -> Cascade:
    """The cascade with --threads, or with the board profile's count when one thread is not
    faster here (device/board/threads.py); the choice is logged with its timings, and so is any
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
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(negative_values_as_values(argv, ("--budget",)))
    profile, bundle, budget, sampler, policy, log_stream, source, cascade = load_parts(args)
    on_frame = None
    if args.show:
        from device.io.overlay import Overlay, display_problem
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
            from device.io.metrics import MetricsServer
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
