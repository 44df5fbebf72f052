"""Profile a bundle on this board and write a report to read, compare and share.

    python device/profile.py [--bundle DIR] [--board NAME|auto|FILE.toml] [--out DIR] [--quick]

Measures: load time (verify + interpreters), first inference, warm-up and steady state apart;
per-subnet incremental and cumulative latency; the escalation with the feature cache against
recomputing; a thread-count sweep; fixed subnets, the calibrated cascade and the router at
several budgets on the bundle's labeled images (latency, exit mix, accuracy); peak RSS;
temperature before and after. Every policy run goes through device.service.run_loop, the loop
the camera daemon runs, so a frame's latency here is the daemon's (preprocess + cascade).

It writes profiles/reports/<board>/<bundle>/report.{json,md} (+ PNG plots when matplotlib is
installed; otherwise the report says how to draw them on the host).
"""
from __future__ import annotations

import io
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil

from device.board import BoardSensors, SensorSampler, profiles_dir, read_temperature, resolve_profile
from device.bundle import default_bundle_dir, load_bundle
from device.engine import Cascade
from device.flags import Parser, add_board, add_bundle, add_out, add_precision, add_runtime, add_threads, parse_budgets
from device.io import ArraySource, Telemetry, frame_to_input
from device.policy import ThermalLimits, make_policy
from device.profiling.memory import peak_rss_mib
from device.profiling.report import REPORT_FORMAT, REPORT_VERSION, write_report
from device.profiling.timing import benchmark, summarize, time_call
from device.service import run_loop

# Run lengths: warm-up and steady-state runs of the stage timings, frames per thread count,
# frames per policy run (fixed:k, cascade, each router budget) and the number of budgets.
MODES = {"full": dict(warmup=20, runs=200, thread_runs=100, frames=500, budgets=4),
         "quick": dict(warmup=3, runs=15, thread_runs=8, frames=40, budgets=2)}
SYNTHETIC_FRAMES = 64
CHUNK = 25  # frames per turn when several policies are measured in turn


class Thermometer:
    """Temperature samples over the run (None readings kept out: 'not available', never invented)."""

    def __init__(self, profile):
        self.profile = profile
        self.samples = []
        self.before = self.read()

    def read(self) -> float | None:
        value = read_temperature(self.profile)
        if value is not None:
            self.samples.append(value)
        return value

    def summary(self) -> dict:
        after = self.read()
        peak = max(self.samples) if self.samples else None
        return {"sensor_available": bool(self.samples), "before_c": self.before, "after_c": after,
                "max_c": peak, "soft_throttle_c": self.profile.soft_throttle_c,
                "hard_throttle_c": self.profile.hard_throttle_c,
                "throttle_state": self.profile.throttle_state(peak),
                "psutil_sensors": list(self.profile.psutil_sensors),
                "thermal_zones": list(self.profile.thermal_zones)}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo ('model name' on x86, 'Model' on a Pi), else platform."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def eval_frames(bundle, limit: int):
    """(BGR frames, labels or None): up to `limit` of the bundle's labeled images, else seeded
    synthetic frames. The subset is a seeded shuffle: eval sets are often stored class by class,
    and the first images alone would all be one class."""
    data = bundle.eval_set()
    rng = np.random.default_rng(0)
    if data is not None:
        images, labels = data
        pick = rng.permutation(len(labels))[:limit]
        return np.ascontiguousarray(images[pick, :, :, ::-1]), labels[pick]
    h, w = bundle.input_size
    return rng.integers(0, 256, (SYNTHETIC_FRAMES, h, w, 3), dtype=np.uint8), None


class PolicyRun:
    """One policy's frames through the daemon loop (device.service.run_loop), possibly in chunks:
    per-frame latency (ms), exit subnet and prediction."""

    def __init__(self, cascade, policy, sampler=None):
        self.cascade, self.policy, self.sampler = cascade, policy, sampler
        self.latencies, self.exits, self.predictions, self.frame_ids = [], [], [], []

    def _collect(self, frame, result, latency_s) -> None:
        self.latencies.append(round(latency_s * 1e3, 4))  # 0.1 us: enough, keeps report.json small
        self.exits.append(result.exit_subnet)
        self.predictions.append(result.label)

    def run(self, bundle, frames, start: int, count: int) -> None:
        """Frames start .. start+count-1 (modulo the frame set) through run_loop."""
        done = len(self.latencies)
        telemetry = Telemetry(None, bundle.labels, self.policy.deadline_s or 1.0,
                              self.cascade.num_subnets, self.policy.name,
                              summary_every_s=float("inf"), summary_stream=io.StringIO())
        run_loop(ArraySource(frames, start, count), self.cascade, self.policy, telemetry,
                 sampler=self.sampler, on_frame=self._collect)
        self.frame_ids.extend(range(start, start + len(self.latencies) - done))

    def summary(self, labels) -> dict:
        k = self.cascade.num_subnets
        mix = np.bincount(np.asarray(self.exits) - 1, minlength=k) / max(len(self.exits), 1)
        accuracy = None
        if labels is not None:
            truth = labels[np.asarray(self.frame_ids) % len(labels)]
            accuracy = float(np.mean(np.asarray(self.predictions) == truth))
        return {"frames": len(self.latencies), "latency_ms": summarize(self.latencies),
                "samples_ms": self.latencies, "exits": self.exits,
                "exit_mix": [float(x) for x in mix], "accuracy": accuracy}


def run_interleaved(runs: list, bundle, frames, labels, count: int) -> list[dict]:
    """Run every policy over the same `count` frames, CHUNK frames at a time in turn, so that a
    burst of load from elsewhere lands on all of them alike instead of on one; their summaries."""
    for start in range(0, count, CHUNK):
        for run in runs:
            run.run(bundle, frames, start, min(CHUNK, count - start))
    return [run.summary(labels) for run in runs]


def feed(cascade, frames):
    """A function i -> preprocessed input of frame i, written into the cascade's input buffer as
    the daemon does."""
    size = cascade.input_shape[1]
    return lambda i: frame_to_input(frames[i % len(frames)], size, cascade.input)


def stage_latencies(cascade, inputs, runs: int) -> list[list]:
    """Steady-state wall ms of each stage, run in order on one frame's outputs (the feature cache)."""
    samples = [[] for _ in cascade.stages]
    for i in range(runs):
        cascade.set_image(inputs(i))
        for index, stage_samples in enumerate(samples):
            stage_samples.append(time_call(lambda: cascade.run_stage(index)))
    return samples


def new_stages(cascade) -> list[list]:
    """Per exit k, the stage indices a frame that tried exits 1..k-1 runs to reach it."""
    seen, out = set(), []
    for k in range(1, cascade.num_subnets + 1):
        needed = [i for i in cascade.exit_stages(k) if i not in seen]
        seen.update(needed)
        out.append(needed)
    return out


def escalate_all(cascade, image) -> None:
    """Every exit in turn on one frame through the cache: a frame that escalates to the top."""
    cascade.run_all(image)


def escalate_recomputing(cascade, image) -> None:
    """The same escalation without a cache: exit k reruns every stage it needs from the image."""
    for k in range(1, cascade.num_subnets + 1):
        cascade.set_image(image)
        cascade.run_exit(k)


def thread_counts(cores: int, default: int, quick: bool) -> list[int]:
    """Thread counts to sweep: 1, 2, 4 and all cores (quick: 1 and the default only)."""
    counts = {1, default} if quick else {1, 2, 4, cores, default}
    return sorted(n for n in counts if n <= max(cores, default))


def budgets_between(low_ms: float, high_ms: float, count: int) -> list[float]:
    """Budgets from just above subnet 1's cost to just above subnet K's (measured medians)."""
    return [float(b) for b in np.linspace(low_ms * 1.1, high_ms * 1.1, count)]


def measure_load(args, threads: int) -> tuple:
    """Load and verify the bundle, then create the interpreters; (bundle, cascade, load figures)."""
    start = time.perf_counter()
    bundle = load_bundle(args.bundle)
    verified = time.perf_counter()
    cascade = Cascade(bundle, runtime=args.runtime, threads=threads, precision=args.precision)
    loaded = time.perf_counter()
    return bundle, cascade, {"verify_ms": (verified - start) * 1e3,
                             "interpreters_ms": (loaded - verified) * 1e3,
                             "bundle_load_ms": (loaded - start) * 1e3}


def measure_stages(cascade, inputs, mode: dict) -> dict:
    """First inference, warm-up, then steady-state stage costs and cache against recompute."""
    startup = benchmark(lambda: escalate_all(cascade, inputs(0)), mode["warmup"], 0)
    per_stage = stage_latencies(cascade, inputs, mode["runs"])
    incremental = [np.sum([per_stage[i] for i in stages], axis=0).tolist() for stages in new_stages(cascade)]
    cached, recompute = [], []
    for i in range(mode["runs"]):  # interleaved, so that load from elsewhere hits both alike
        cached.append(time_call(lambda: escalate_all(cascade, inputs(i))))
        recompute.append(time_call(lambda: escalate_recomputing(cascade, inputs(i))))
    with_cache, recomputing = summarize(cached), summarize(recompute)
    return {"startup": startup,
            "stages": [{"name": stage.name, "latency_ms": summarize(x)} for stage, x in zip(cascade.stages, per_stage)],
            "incremental": [summarize(x) for x in incremental],
            "cache": {"with_cache_ms": with_cache, "recompute_ms": recomputing,
                      "ratio": with_cache["p50"] / recomputing["p50"]}}


def measure_threads(args, bundle, cascade, frames, labels, mode: dict, cores: int) -> list[dict]:
    """Frame latency through subnet K (fixed:K in the daemon loop) at each thread count."""
    counts = thread_counts(cores, cascade.threads, args.quick)
    runs = []
    for n in counts:
        other = cascade if n == cascade.threads else Cascade(
            bundle, runtime=args.runtime, threads=n, precision=args.precision)
        other.warm_up(mode["warmup"])
        runs.append(PolicyRun(other, make_policy(f"fixed:{cascade.num_subnets}", bundle, 1.0)))
    done = run_interleaved(runs, bundle, frames, labels, mode["thread_runs"])
    return [{"threads": n, "full_ms": run["latency_ms"]} for n, run in zip(counts, done)]


def measure_policies(args, profile, bundle, cascade, frames, labels, count: int,
                     budget_count: int) -> dict:
    """fixed:1..K and the calibrated cascade, then the router at several budgets between
    subnet 1's and subnet K's measured cost, all in the daemon loop."""
    k_top = cascade.num_subnets
    baseline = run_interleaved(
        [PolicyRun(cascade, make_policy(spec, bundle, 1.0))
         for spec in [f"fixed:{k}" for k in range(1, k_top + 1)] + ["cascade"]],
        bundle, frames, labels, count)
    fixed, calibrated = baseline[:k_top], baseline[k_top]
    budgets = args.budgets or budgets_between(fixed[0]["latency_ms"]["p50"],
                                              fixed[-1]["latency_ms"]["p50"], budget_count)
    limits = ThermalLimits(profile.soft_throttle_c, profile.hard_throttle_c)
    sampler = SensorSampler(BoardSensors(profile))
    routed = run_interleaved(
        [PolicyRun(cascade, make_policy("router", bundle, b / 1e3, limits=limits, sensors=sampler),
                   sampler) for b in budgets], bundle, frames, labels, count)
    for run, budget in zip(routed, budgets):
        run["budget_ms"] = budget
        run["over_budget_fraction"] = float(np.mean(np.asarray(run["samples_ms"]) > budget))
    return {"fixed": fixed, "cascade": calibrated, "router": routed}


def profile_bundle(args, profile, detected: bool) -> dict:
    """Every measurement, in the report.json schema (device/profiling/report.py)."""
    mode = MODES["quick" if args.quick else "full"]
    started = time.perf_counter()
    thermometer = Thermometer(profile)
    load_before = psutil.getloadavg()[0]
    threads = args.threads or profile.default_threads
    bundle, cascade, load = measure_load(args, threads)
    rss_after_load = psutil.Process().memory_info().rss / 2**20
    frames, labels = eval_frames(bundle, mode["frames"])
    count = min(len(frames), mode["frames"])
    inputs = feed(cascade, frames)
    stages = measure_stages(cascade, inputs, mode)
    thermometer.read()
    sweep = measure_threads(args, bundle, cascade, frames, labels, mode, profile.cores)
    thermometer.read()
    runs = measure_policies(args, profile, bundle, cascade, frames, labels, count, mode["budgets"])
    skipped = [] if labels is not None else [{
        "section": "accuracy (fixed subnets, cascade, router)",
        "reason": "the bundle carries no labeled images (manifest eval_set is null); latency was "
                  "measured on seeded synthetic frames"}]
    specs = bundle.manifest["exits"]
    subnets = [{"index": spec["index"], "stages": spec["stages"], "macs_alone": spec["macs_alone"],
                "macs_incremental": spec["macs_incremental"],
                "macs_cumulative": spec["macs_cumulative"], "host_accuracy": spec.get("accuracy"),
                "accuracy": run["accuracy"], "incremental_ms": incremental,
                "cumulative_ms": run["latency_ms"], "cumulative_samples_ms": run["samples_ms"]}
               for spec, incremental, run in zip(specs, stages["incremental"], runs["fixed"])]
    trace = runs["router"][len(runs["router"]) // 2]
    h, w = bundle.input_size
    return {
        "format": REPORT_FORMAT, "format_version": REPORT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python device/profile.py " + " ".join(shlex.quote(a) for a in args.argv),
        "mode": "quick" if args.quick else "full",
        "board": {"name": profile.name, "description": profile.description, "detected": detected,
                  "cores": profile.cores, "threads": threads, "machine": platform.machine(),
                  "python": platform.python_version(), "cpu": cpu_name(), "notes": profile.notes},
        "runtime": {"name": cascade.runtime_name, "numpy": np.__version__,
                    "on_delegate": {stage.name: stage.on_delegate() for stage in cascade.stages}},
        "bundle": {"name": bundle.name, "path": str(args.bundle), "method": bundle.method,
                   "arch": bundle.manifest["arch"],
                   "dataset": bundle.manifest["dataset"], "precision": args.precision,
                   "subnets": cascade.num_subnets, "input_hw": [h, w],
                   "eval_images": 0 if labels is None else count},
        "load": {**load, "first_inference_ms": stages["startup"]["first_ms"],
                 "warmup_runs": mode["warmup"], "warmup_ms": stages["startup"]["warmup_ms"],
                 "steady_runs": mode["runs"], "policy_frames": count},
        "stages": stages["stages"],
        "subnets": subnets,
        "cache": stages["cache"],
        "threads": sweep,
        "cascade": {"control": float(bundle.manifest["router"]["initial"]),
                    "latency_ms": runs["cascade"]["latency_ms"],
                    "accuracy": runs["cascade"]["accuracy"], "exit_mix": runs["cascade"]["exit_mix"]},
        "router": [{"budget_ms": r["budget_ms"], "frames": r["frames"], "latency_ms": r["latency_ms"],
                    "over_budget_fraction": r["over_budget_fraction"], "exit_mix": r["exit_mix"],
                    "accuracy": r["accuracy"]} for r in runs["router"]],
        "router_trace": {"budget_ms": trace["budget_ms"], "latency_ms": trace["samples_ms"],
                         "exit_subnet": trace["exits"]},
        "memory": {"peak_rss_mib": peak_rss_mib(),
                   "rss_after_load_mib": rss_after_load},
        "thermal": thermometer.summary(),
        "system": {"cpus": psutil.cpu_count(), "load_avg_1min_before": load_before,
                   "load_avg_1min_after": psutil.getloadavg()[0]},
        "skipped": skipped,
        "duration_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = Parser(prog="profile.py", description="Profile a bundle on this board and write a report.")
    add_bundle(parser)
    add_board(parser)
    add_threads(parser)
    add_runtime(parser)
    add_precision(parser)
    parser.add_argument("--budgets", type=parse_budgets, help="router budgets, e.g. 5ms,8ms,12ms "
                        "(default: spread between subnet 1's and subnet K's measured cost)")
    add_out(parser, "report folder", "profiles/reports/<board>/<bundle>")
    parser.add_argument("--quick", action="store_true", help="short runs (tests, smoke checks)")
    parser.add_argument("--verbose", action="store_true",
                        help="also show the TFLite runtime's own INFO lines on stderr (profile.py drops them)")
    args = parser.parse_args(argv)
    args.argv = argv
    args.bundle = args.bundle or default_bundle_dir()
    profile = resolve_profile(args.board)
    report = profile_bundle(args, profile, detected=args.board in (None, "", "auto"))
    out = args.out or profiles_dir() / "reports" / report["board"]["name"] / report["bundle"]["name"]
    written = write_report(report, out)
    print(f"profiled {report['bundle']['name']} on {report['board']['name']} in "
          f"{report['duration_s']:.1f} s; wrote {', '.join(str(p) for p in written)}")
    return 0
