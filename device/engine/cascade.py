"""The board engine: one walk up a bundle's exit ladder per frame, for every method.

A bundle is a set of stages (one model file each, fed by the image or by named outputs of
other stages) and a ladder of exits (device/bundle/manifest.py). For the next exit, a frame
runs the stages that exit needs and this frame has not run yet, on the outputs already
computed, then decides from that exit's statistics: answer when its softmax entropy is at or
under its threshold, else go on. What a frame computed stays where the stages wrote it (their
own output tensors, allocated once at load): that is the feature cache. The concat method's
exit k+1 needs only subnet_{k+1}, which reads the cached trunk tensor and [f_1..f_k]; a
width-switching method's exit k+1 is a stage of its own and runs from the image. An exit whose
threshold is -inf (level 0: it never answers) is still tried where that costs nothing, where
the top exit needs all of its stages (concat: it is the deadline guard's fallback answer), and
passed by otherwise: fixed:K of a slimmable bundle runs width K alone.

Before going on, the deadline guard compares the time spent plus the predicted cost of the
stages the next exit would run with the deadline and, when it would pass, answers with what it
has. On a ladder without reuse it also plans before the first stage: when the exits the
thresholds would try cannot all run within the deadline, the frame keeps the most capable exit
whose own stages fit, and of the exits below it those that still fit, from the top down;
escalating bottom-up would spend the budget on cheap widths and answer with one of them where
a wider one alone fits (measured in bench/results/compare_methods.md). Each answering file computes its own entropy, top-1 probability and class (its
"statistics" output), so a decision reads one number; the CostModel learns the stages' costs
from the frames infer() answers.
"""
from __future__ import annotations

import functools
import math
import os
import time
from typing import NamedTuple

import numpy as np

from device.bundle.ladder import Ladder, free_to_try
from device.bundle.manifest import IMAGE
from device.engine.runtime import stage_factory
from device.engine.stage import CascadeError, PublicStage, Stage, hand_over
from device.policy.costs import CostModel


def default_threads() -> int:
    """Threads when neither --threads nor a board profile says: the cores, at most 4."""
    return max(1, min(os.cpu_count() or 1, 4))


class _Exit(NamedTuple):
    needs: tuple        # stage indices, sources first
    free: bool          # the top exit needs all of them: trying this exit costs nothing extra
    answer: object      # the answering stage
    statistics: object  # memoryview of its (1, 3) float32 statistics output: entropy, top-1 probability, class
    logits: object      # its logits Port


class Result(NamedTuple):
    """One frame's answer (a NamedTuple: immutable, and cheap to make every frame)."""
    label: int               # class index into the bundle's labels
    score: float             # softmax probability of `label`
    entropy: float           # softmax entropy (nats) of the answering exit
    exit_subnet: int         # 1..K, the exit (subnet) that answered
    stage_latencies: tuple   # seconds of each stage the frame ran, in run order
    deadline_cut: bool       # True when the deadline guard stopped an escalation
    stages: tuple = ()       # the indices of those stages (Cascade.stages)
    escalated_s: float = 0.0  # seconds of the stages run that exit 1 does not need: what answering
    # at the cheapest exit would have saved


class Cascade:
    """The stages of one bundle precision and the exits that read them."""

    def __init__(self, bundle, runtime: str | None = None, threads: int | None = None,
                 precision: str = "fp32", interpreter_factory=None, clock=time.perf_counter, fast: bool | None = None):
        """The stages of `bundle`'s `precision` files (a Bundle, or anything with ladder(precision)).
        `interpreter_factory(path, threads)` (fake interpreters, run as PublicStages unless `fast`)
        and `clock` are injectable for tests; `fast` forces the fast path on or off (default: by
        the runtime's version)."""
        self.clock = clock
        self.threads = threads or default_threads()
        if interpreter_factory is not None:
            kind = Stage if fast else PublicStage

            def factory(name, path, threads, clock):
                return kind(name, interpreter_factory(path, threads), path, clock)
            factory.runtime_name = getattr(interpreter_factory, "runtime_name", "custom")
            factory.fast_path = bool(fast)
        else:
            factory = stage_factory(runtime, fast)
        self.runtime_name = factory.runtime_name
        self.fast_path = factory.fast_path
        self.precision = precision
        ladder = bundle.ladder(precision)
        self.stages = [factory(spec.name, spec.path, self.threads, clock) for spec in ladder.stages]
        self._index = {spec.name: i for i, spec in enumerate(ladder.stages)}
        self.input = self._image_input(ladder)
        self.input_shape = self.input.shape
        self._loads = [tuple(self._wire(spec)) for spec in ladder.stages]
        self._runs = [stage.run for stage in self.stages]
        self._exits = self._check_exits(ladder)
        self.num_subnets = len(self._exits)
        self._beyond_exit_1 = [i not in self._exits[0].needs for i in range(len(self.stages))]
        self._plans = not all(e.free for e in self._exits)  # some exit has stages of its own
        self.costs = CostModel(len(self.stages))
        self._ran = [False] * len(self.stages)  # which stages hold this frame's outputs
        self._frame_runs = [0] * len(self.stages)  # infer()'s runs of each stage, on top of stage.invokes

    @classmethod
    def from_ladder(cls, ladder: Ladder, **options) -> "Cascade":
        """An engine over model files not bundled yet (the build's parity); `options` as for Cascade()."""
        class _Files:
            @staticmethod
            def ladder(precision):
                return ladder
        return cls(_Files(), **options)

    def _image_input(self, ladder: Ladder) -> np.ndarray:
        """Where the daemon preprocesses a frame: the one image-fed float input's own array when
        there is one, which saves a copy per frame, else a staging array that each image-fed
        stage copies (and quantizes) from when it runs."""
        ports = [self.stages[i].port("input", name) for i, spec in enumerate(ladder.stages)
                 for name, source in spec.inputs if source == IMAGE]
        if not ports:
            raise CascadeError("no stage of the bundle takes the image; rebuild the bundle with host/build.py")
        shapes = {port.shape for port in ports}
        if len(shapes) > 1:
            raise CascadeError(f"the stages take images of different shapes {sorted(shapes)}")
        if len(ports) == 1 and not ports[0].quantized:
            return ports[0].array
        return np.zeros(ports[0].shape, np.float32)

    def _wire(self, spec) -> list:
        """The moves that bring one stage's inputs in before it runs: the image from the staging
        array, other stages' outputs by hand_over (a copy, or a requantization between int8 files)."""
        stage = self.stages[self._index[spec.name]]
        moves = []
        for name, source in spec.inputs:
            port = stage.port("input", name)
            if source == IMAGE:
                if port.array is not self.input:
                    moves.append(functools.partial(port.write, self.input))
                continue
            producer, output = source
            moves += hand_over(self.stages[self._index[producer]].port("output", output), port, spec.path,
                               f"{name} ({producer}.{output})")
        return moves

    def _check_exits(self, ladder: Ladder) -> list:
        exits, num_classes = [], ladder.num_classes
        free = free_to_try([spec.stages for spec in ladder.exits])
        for k, spec in enumerate(ladder.exits, start=1):
            answer = self.stages[self._index[spec.answer]]
            outputs = ladder.stages[self._index[spec.answer]].outputs
            logits, statistics = answer.port("output", outputs["logits"]), answer.port("output", outputs["statistics"])
            num_classes = num_classes or logits.shape[-1]
            if logits.shape != (1, num_classes):
                raise CascadeError(f"{answer.path}: logits {logits.shape} are not (1, {num_classes})")
            if statistics.shape != (1, 3) or statistics.dtype != np.float32:
                raise CascadeError(f"{answer.path}: exit statistics are {statistics.dtype}{list(statistics.shape)}, "
                                   f"not float32 [1, 3]; rebuild the bundle with host/build.py")
            exits.append(_Exit(tuple(self._index[name] for name in spec.stages), free[k - 1], answer,
                               memoryview(statistics.array[0]), logits))
        return exits

    @property
    def invokes(self) -> dict:
        """{stage name: runs so far}: each stage's own count (warm-up, run_stage) plus infer()'s."""
        return {stage.name: stage.invokes + runs for stage, runs in zip(self.stages, self._frame_runs)}

    def answer_file(self, k: int) -> str:
        """The file name of the stage that answers exit k."""
        return self._exits[k - 1].answer.path.name

    def exit_stages(self, k: int) -> tuple:
        """The stage indices exit k needs, sources first."""
        return self._exits[k - 1].needs

    def set_image(self, image: np.ndarray) -> None:
        """Start a frame on one preprocessed image (the input shape; no copy when it is `self.input`)."""
        self._ran = [False] * len(self.stages)
        if image is not self.input:
            np.copyto(self.input, image)

    def run_stage(self, i: int) -> float:
        """Stage i's invoke with its inputs moved in, unchecked (its sources must have run on this
        frame); returns its seconds."""
        for move in self._loads[i]:
            move()
        seconds = self.stages[i].invoke()
        self._ran[i] = True
        return seconds

    def run_exit(self, k: int) -> float:
        """Run the stages exit k (1-based) needs that this frame has not run; returns their seconds."""
        if not 1 <= k <= self.num_subnets:
            raise ValueError(f"exit {k} does not exist (1..{self.num_subnets})")
        return sum(self.run_stage(i) for i in self._exits[k - 1].needs if not self._ran[i])

    def run_all(self, image: np.ndarray) -> float:
        """Every exit on one preprocessed image, as a frame that escalates to the top; returns the
        seconds of its invokes."""
        self.set_image(image)
        return sum(self.run_exit(k) for k in range(1, self.num_subnets + 1))

    def exit_statistics(self, k: int) -> tuple[float, float, int]:
        """(softmax entropy in nats, top-1 probability, top-1 class) of exit k's last run, as its
        file computed them."""
        entropy, top1, label = self._exits[k - 1].statistics.tolist()
        return entropy, top1, int(label)

    def logits(self, k: int) -> np.ndarray:
        """Exit k's logits (1, classes) as float32: its own output array, or a dequantized copy."""
        port = self._exits[k - 1].logits
        if not port.quantized:
            return port.array
        out = np.empty(port.shape, np.float32)
        port.read(out)
        return out

    def infer(self, image: np.ndarray, thresholds, deadline_s: float | None = None) -> Result:
        """The ladder on one image: answer at the first exit with entropy <= its threshold.

        `thresholds` holds one entropy threshold per exit (the last is ignored: exit K always
        answers; -inf: the exit never answers, and is passed by unless trying it is free). With
        `deadline_s` (seconds from this call), the frame goes on to the next exit only when the
        time spent plus the predicted cost of the stages it would run stays within the deadline,
        and on a ladder without reuse tries only the exits planned to fit (_fit).
        """
        clock = self.clock
        start = clock()
        self.set_image(image)
        ran, loads, runs, frame_runs = self._ran, self._loads, self._runs, self._frame_runs
        costs, exits = self.costs, self._exits
        path, cut = self._path(thresholds), False
        if deadline_s is not None and self._plans:
            path, cut = self._fit(path, deadline_s - (clock() - start))
        order, latencies = [], []
        answered = None
        for k in path:
            exit_ = exits[k]
            todo = [i for i in exit_.needs if not ran[i]]
            if answered is not None and deadline_s is not None and \
                    clock() - start + costs.predict_stages(todo) > deadline_s:
                cut = True
                break
            for i in todo:
                for move in loads[i]:
                    move()
                began = clock()
                runs[i]()
                latencies.append(clock() - began)
                ran[i] = True
                frame_runs[i] += 1
                order.append(i)
            answered = k
            if exit_.statistics[0] <= thresholds[k]:
                break
        entropy, score, label = exits[answered].statistics.tolist()
        costs.observe_frame(order, latencies)
        beyond = self._beyond_exit_1
        return Result(int(label), score, entropy, answered + 1, tuple(latencies), cut, tuple(order),
                      sum(seconds for i, seconds in zip(order, latencies) if beyond[i]))

    def _path(self, thresholds) -> list:
        """The exits a frame tries, in order: up to the first that always answers (threshold
        +inf, or the top exit), passing by those that never answer unless trying them is free."""
        path, last = [], self.num_subnets - 1
        for k, exit_ in enumerate(self._exits):
            threshold = thresholds[k]
            if k == last or threshold == math.inf:
                path.append(k)
                break
            if threshold != -math.inf or exit_.free:
                path.append(k)
        return path

    def _fit(self, path: list, remaining_s: float) -> tuple[list, bool]:
        """(the exits to try within `remaining_s`, whether that trimmed `path`): `path` when all
        its stages are predicted to fit; else the highest exit up to its top whose own stages
        fit, with the exits of `path` below it that still fit, taken from the top down; `path`
        when no exit fits (the frame then answers with its first exit)."""
        price = self.costs.predict_stages
        if price(set().union(*(self._exits[k].needs for k in path))) <= remaining_s:
            return path, False
        top = next((t for t in range(path[-1], -1, -1) if price(self._exits[t].needs) <= remaining_s), None)
        if top is None:
            return path, False
        plan, stages = [top], set(self._exits[top].needs)
        for k in reversed([k for k in path if k < top]):
            more = stages.union(self._exits[k].needs)
            if price(more) <= remaining_s:
                plan.insert(0, k)
                stages = more
        return plan, True

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
            self.set_image(blank)
            seconds = [self.run_stage(i) for i in range(len(self.stages))]
            if round_ > 0 or rounds == 1:
                for stage_samples, value in zip(samples, seconds):
                    stage_samples.append(value)
            if round_ >= 1 and self.clock() - started >= max_seconds:
                break
        self.costs.calibrate(samples)
