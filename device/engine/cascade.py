"""The cascade engine: trunk once per frame, then subnets 1..K through the feature cache.

A frame runs the trunk, then subnet 1; it stops at the first subnet whose softmax entropy is at
or under that subnet's threshold, else escalates to the next subnet, which reads the cached
trunk tensor and the features [f_1..f_{k-1}] that the subnet before it returned, instead of
recomputing them. Each subnet file computes its own entropy, top-1 probability and class (its
exit statistics output), so a decision reads one number. Before escalating, the deadline guard
compares the time spent plus the next subnet's measured cost with the deadline and, when it
would pass, answers with what it has.

Every model file is a stage (device/engine/stage.py: a TFLite Interpreter; device/engine/compiled.py: a
LiteRT CompiledModel, whose subnets read the buffers the trunk and subnet k-1 wrote) that
resolves its signature tensors by name and runs once at load to check them; the CostModel
learns the stages' costs from the frames infer() answers. device/profile.py reuses
run_trunk/run_subnet to time stages one by one.

Between invokes a frame runs Python, and each invoke has just evicted that Python's code and
data from the CPU caches, so every operation there costs several times its warm cost. infer()
therefore calls no Python function per stage: it runs the stage's prepared moves (none between
CompiledStages; else functools.partial over np.copyto or the runtime's write) and times the
model's run with two clock reads. Outputs are read where the model wrote them, the softmax
runs inside the subnet files, the daemon preprocesses straight into the trunk's input
(Cascade.input), and the cost model learns once per frame, after the answer.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from device.engine.cache import FeatureCache
from device.engine.runtime import stage_factory
from device.engine.stage import CascadeError, Stage, hand_over
from device.policy.costs import CostModel


def default_threads() -> int:
    """Threads when neither --threads nor a board profile says: the cores, at most 4."""
    return max(1, min(os.cpu_count() or 1, 4))


class _Wiring(NamedTuple):
    """What one stage's step runs: the stage, the prepared moves of its inputs into the runtime
    (where not shared: the image, the trunk tensor, [f_1..f_{k-1}]), and its model run, untimed."""
    stage: object
    load: tuple          # zero-argument callables
    run: object          # stage.run


class _Files(NamedTuple):
    """What a Cascade reads of a bundle, for files that are not in one."""
    trunk: Path
    subnets: list
    num_classes: int | None

    @property
    def labels(self) -> range | None:
        return None if self.num_classes is None else range(self.num_classes)

    def model_files(self, precision: str) -> tuple:
        return self.trunk, self.subnets


class Result(NamedTuple):
    """One frame's answer (a NamedTuple: immutable, and made every frame at a third of the
    cost of a frozen dataclass)."""
    label: int               # class index into the bundle's labels
    score: float             # softmax probability of `label`
    entropy: float           # softmax entropy (nats) of the answering subnet
    exit_subnet: int         # 1..K, the subnet that answered
    stage_latencies: tuple   # seconds: (trunk, subnet 1, ..., subnet exit_subnet)
    deadline_cut: bool       # True when the deadline guard stopped an escalation


class Cascade:
    """The trunk and K subnet interpreters of one bundle precision, sharing one FeatureCache."""

    def __init__(self, bundle, runtime: str | None = None, threads: int | None = None,
                 precision: str = "fp32", interpreter_factory=None, clock=time.perf_counter):
        """The stages of `bundle`'s `precision` files. `interpreter_factory(path, threads)` (fake
        interpreters, run as Stages) and `clock` are injectable for tests."""
        self.clock = clock
        self.threads = threads or default_threads()
        if interpreter_factory is not None:
            def factory(name, path, threads, clock):
                return Stage(name, interpreter_factory(path, threads), path, clock)
            factory.runtime_name = getattr(interpreter_factory, "runtime_name", "custom")
        else:
            factory = stage_factory(runtime)
        self.runtime_name = factory.runtime_name
        self.precision = precision
        trunk_path, subnet_paths = bundle.model_files(precision)
        num_classes = None if bundle.labels is None else len(bundle.labels)
        self.trunk = factory("trunk", trunk_path, self.threads, clock)
        self.subnets = [factory(f"subnet_{k}", p, self.threads, clock) for k, p in enumerate(subnet_paths, start=1)]
        self._input = self.trunk.port("input", "args_0")
        self.input_shape = self._input.shape
        # Preprocess into this and pass it to infer(): it is the trunk's own input array unless
        # that is quantized, which saves a copy per frame.
        self.input = np.zeros(self.input_shape, np.float32) if self._input.quantized else self._input.array
        self._trunk = _Wiring(self.trunk, tuple(self.trunk.flushes()), self.trunk.run)
        self.num_subnets = len(self.subnets)
        self.costs = CostModel(1 + len(self.subnets))  # stage 0 is the trunk, k is subnet k
        self.cache = self._build_cache(num_classes)
        self._wiring = self._wire_subnets()
        # What infer() reads per stage, made once: (k, moves, model run, exit statistics)
        self._steps = [(k, w.load, w.run, self.cache.exit_stats[k - 1] if k else None)
                       for k, w in enumerate([self._trunk, *self._wiring])]
        self._frames_by_exit = [0] * (self.num_subnets + 1)  # infer() frames by exit subnet: its invokes

    @classmethod
    def from_files(cls, trunk: Path, subnets: list, num_classes: int | None, **options) -> "Cascade":
        """A cascade over model files not bundled yet (the build's parity): trunk.tflite and
        subnet_1..K.tflite of one precision; `num_classes` None takes subnet 1's logits width;
        `options` as for Cascade()."""
        return cls(_Files(Path(trunk), [Path(p) for p in subnets], num_classes), **options)

    @property
    def stages(self) -> list:
        return [self.trunk, *self.subnets]

    @property
    def input_moves(self) -> tuple:
        """Per subnet step, the array operations that move its inputs in: copies, requantizations
        and writes to the runtime; 0 where it reads the buffers the trunk and the subnet before it
        wrote (CompiledModel stages)."""
        return tuple(len(wiring.load) for wiring in self._wiring)

    @property
    def invokes(self) -> dict:
        """{stage name: invokes so far}, e.g. {'trunk': 10, 'subnet_1': 10, 'subnet_2': 3, ...}:
        each stage's own count (warm-up, run_trunk, run_subnet) plus the infer() frames that ran
        it, those that exited at or past it."""
        by_exit = self._frames_by_exit
        return {stage.name: stage.invokes + sum(by_exit[max(k, 1):]) for k, stage in enumerate(self.stages)}

    def _build_cache(self, num_classes: int | None) -> FeatureCache:
        """The cache over the subnets' own output arrays."""
        if num_classes is None:
            num_classes = self.subnets[0].port("output", "output_1").shape[-1]
        widths, logits, exit_stats = [], [], []
        for stage in self.subnets:
            f_out, logits_out = stage.port("output", "output_0"), stage.port("output", "output_1")
            previous_width = widths[-1] if widths else 0
            if (len(f_out.shape) != 2 or f_out.shape[0] != 1 or f_out.shape[1] <= previous_width
                    or logits_out.shape != (1, num_classes)):
                raise CascadeError(f"{stage.path}: outputs (features {f_out.shape}, logits {logits_out.shape}) do "
                                   f"not fit (1, D) with D past the last subnet's {previous_width}, and "
                                   f"(1, {num_classes})")
            if "output_2" not in stage.outputs:
                raise CascadeError(f"{stage.path}: has no exit statistics output (output_2), which subnet files "
                                   f"have had since bundle format 3; rebuild the bundle with host/build.py")
            stats_out = stage.outputs["output_2"]
            if stats_out.shape != (1, 3) or stats_out.dtype != np.float32:
                raise CascadeError(f"{stage.path}: exit statistics (output_2) are "
                                   f"{stats_out.dtype}{list(stats_out.shape)}, not float32 [1, 3]; "
                                   f"rebuild the bundle with host/build.py")
            widths.append(f_out.shape[1])
            logits.append(logits_out.array)
            exit_stats.append(memoryview(stats_out.array[0]))
        return FeatureCache(widths, logits, exit_stats)

    def _wire_subnets(self) -> list:
        """Check each subnet's inputs against what feeds them; prepare the moves each step makes.

        Where two stages can share one buffer (CompiledStages whose tensors hold the same
        values), the reader takes the writer's output as its input and no step copies it:
        the trunk tensor into every subnet, subnet k-1's features into subnet k. Otherwise the
        step copies it (or requantizes it, between int8 tensors of different scales)."""
        trunk_out = self.trunk.port("output", "output_0")
        shared = self.trunk.share_output("output_0", [(stage, "args_0") for stage in self.subnets])
        wiring = []
        for k, stage in enumerate(self.subnets, start=1):
            load = [] if shared else hand_over(trunk_out, stage.port("input", "args_0"), stage.path, "trunk tensor")
            if k > 1:
                cached_in = stage.port("input", "args_1")
                if cached_in.shape != (1, self.cache.prefix_width(k)):
                    raise CascadeError(f"{stage.path}: takes cached features {cached_in.shape}, "
                                       f"[f_1..f_{k - 1}] is {(1, self.cache.prefix_width(k))}")
                previous = self.subnets[k - 2]
                features_out = previous.port("output", "output_0")  # before sharing hides its array
                if not previous.share_output("output_0", [(stage, "args_1")]):
                    load += hand_over(features_out, cached_in, stage.path, f"[f_1..f_{k - 1}]")
            wiring.append(_Wiring(stage, tuple(load + stage.flushes()), stage.run))
        return wiring

    def run_trunk(self, image: np.ndarray) -> float:
        """Run the trunk on one preprocessed image (the trunk's input shape; no copy when it is
        `self.input`); returns its seconds."""
        self.cache.filled = 0  # the trunk tensor changes: no cached feature is valid any more
        if image is not self._input.array:
            self._input.write(image)
        for move in self._trunk.load:
            move()
        return self.trunk.invoke()

    def run_subnet(self, k: int) -> tuple[np.ndarray, float, float]:
        """Run subnet k (1-based) on the cached tensors; returns (float32 logits, entropy, seconds).

        Subnets 1..k-1 must have run on the current frame: their features are its input.
        """
        if not 1 <= k <= self.num_subnets:
            raise ValueError(f"subnet {k} does not exist (1..{self.num_subnets})")
        if self.cache.filled < k - 1:
            raise ValueError(f"subnet {k} needs f_1..f_{k - 1} of this frame; run subnets in order")
        seconds = self.step(k)
        return self.logits(k), self.exit_statistics(k)[0], seconds

    def step(self, k: int) -> float:
        """Subnet k's invoke with its inputs moved in from the cache, unchecked (run_subnet checks
        the order); returns its seconds."""
        wiring = self._wiring[k - 1]
        for move in wiring.load:
            move()
        seconds = wiring.stage.invoke()
        self.cache.filled = k
        return seconds

    def run_all(self, image: np.ndarray) -> float:
        """The trunk and every subnet on one preprocessed image, as a frame that escalates to the
        top through the cache; returns the seconds of their invokes."""
        seconds = self.run_trunk(image)
        for k in range(1, self.num_subnets + 1):
            seconds += self.step(k)
        return seconds

    def trunk_tensor(self) -> np.ndarray:
        """A float32 copy of the trunk tensor of the last frame (where the subnets read it)."""
        return self.trunk.read_output("output_0")

    def exit_statistics(self, k: int) -> tuple[float, float, int]:
        """(softmax entropy in nats, top-1 probability, top-1 class) of subnet k's last run, as its
        file computed them."""
        entropy, top1, label = self.cache.exit_stats[k - 1].tolist()
        return entropy, top1, int(label)

    def logits(self, k: int) -> np.ndarray:
        """Subnet k's logits (1, classes) as float32: its own output buffer, or a dequantized copy."""
        port = self.subnets[k - 1].outputs["output_1"]
        if not port.quantized:
            return port.array
        out = np.empty(port.shape, np.float32)
        port.read(out)
        return out

    def infer(self, image: np.ndarray, thresholds, deadline_s: float | None = None) -> Result:
        """The cascade on one image: exit at the first subnet with entropy <= its threshold.

        `thresholds` holds one entropy threshold per subnet (the last one is ignored: subnet K
        always answers). With `deadline_s` (seconds from this call), escalation to subnet k+1
        happens only when the time spent plus its predicted cost stays within the deadline.
        """
        clock = self.clock
        start = end = clock()
        cache = self.cache
        cache.filled = 0  # run_trunk(image) and step(k), inlined: no Python call per stage
        if image is not self._input.array:
            self._input.write(image)
        costs = self.costs
        nominal, slowdown = costs.nominal, costs.slowdown
        latencies = []
        cut = False
        for k, load, run, exit_stats in self._steps:  # the trunk (k = 0), then subnets 1..K
            if k > 1 and deadline_s is not None and end - start + nominal[k] * slowdown > deadline_s:  # predict(k)
                cut = True
                break
            for move in load:
                move()
            began = clock()
            run()
            end = clock()
            latencies.append(end - began)
            if k and exit_stats[0] <= thresholds[k - 1]:  # at k = K the loop ends either way: subnet K answers
                break
        exit_k = cache.filled = len(latencies) - 1
        self._frames_by_exit[exit_k] += 1
        entropy, score, label = cache.exit_stats[exit_k - 1].tolist()  # exit_statistics(exit_k), inlined
        costs.observe_frame(latencies)
        # tuple.__new__ over the fields: Result(...) would run namedtuple's __new__, a Python call
        return tuple.__new__(Result, (int(label), score, entropy, exit_k, tuple(latencies), cut))

    def warm_up(self, rounds: int = 20, max_seconds: float = 0.5) -> None:
        """Run every stage up to `rounds` times on a blank image and take the nominal costs from
        all but the first round (first invokes are slow); the deadline guard needs them from
        frame one. After `max_seconds` it stops at the end of a round, once two rounds have run
        (one measured): on a board where a frame takes tens of ms, twenty rounds would hold up
        the first result by a second."""
        blank = np.zeros(self.input_shape, dtype=np.float32)
        samples = [[] for _ in self.stages]
        started = self.clock()
        for round_ in range(rounds):
            seconds = [self.run_trunk(blank)] + [self.run_subnet(k)[2] for k in range(1, self.num_subnets + 1)]
            if round_ > 0 or rounds == 1:
                for stage_samples, value in zip(samples, seconds):
                    stage_samples.append(value)
            if round_ >= 1 and self.clock() - started >= max_seconds:
                break
        self.costs.calibrate(samples)
