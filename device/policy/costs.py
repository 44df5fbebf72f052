"""The deadline guard's cost model: what the next stage of a frame is expected to cost."""


class CostModel:
    """Predicts a stage's next cost as its nominal cost times one slowdown shared by all stages.

    Contention (other processes, thermal throttling) slows every stage alike, and the trunk
    and subnet 1 run on every frame, so the slowdown stays current even for a subnet the
    deadline guard has not let run for a while: its own last measurement would be stale.

    A frame moves the slowdown once, by its measured seconds over the nominal seconds of the
    stages it ran, with a weight that grows with those nominal seconds. That is each stage
    moving the slowdown in proportion to its nominal cost, to first order, in a handful of
    operations: the first, cheap stage of a frame pays for caches gone cold while the board
    slept between camera frames, a fixed penalty that must not scale the predicted cost of
    the subnets, and it is diluted by the frame's nominal total.

    A frame measured at more than `max_jump` times the current slowdown counts as `max_jump`
    times it: one preemption moves the estimate by a bounded step, so that it does not make
    every stage look slow for the next dozen frames, while a lasting slowdown of any size is
    still learned, the bound rising with the estimate. A fixed bound in multiples of the
    nominal cost let each preemption under load push the predictions up enough that the
    deadline guard answered most camera-paced frames with subnet 1 where subnet 2 held the
    budget (docs/measurements.md).

    predict() returns nominal x slowdown, the expected cost, with no safety margin added. Under
    contention a stage's cost is bimodal (it runs through, or it is preempted for a time
    slice), so a margin of one mean deviation priced a subnet well above its run-through cost,
    and the deadline guard cut frames whose subnet would have fit, each at a cost in accuracy.
    The frames that still run over are mostly those preempted during a subnet, which no
    prediction made before it can see coming. bench/device_runtime.py replays the guard on runs
    without it, to show how many of the frames it would cut did run over.
    """

    def __init__(self, stages: int, alpha: float = 0.2, max_jump: float = 2.0):
        self.alpha = alpha
        self.max_jump = max_jump
        self.slowdown = 1.0
        self._set_nominal([0.0] * stages)  # seconds; 0 = not measured yet

    def _set_nominal(self, nominal: list) -> None:
        """Nominal costs, and per stage the weight its move of the slowdown has: alpha x its
        cost over the heaviest stage's."""
        self.nominal = nominal
        heaviest = max(nominal) or 1.0
        self._keep = [1.0 - self.alpha * cost / heaviest for cost in nominal]
        self._unmeasured = 0.0 in nominal  # once warm-up has measured every stage, frames skip the check

    def observe_frame(self, stages, latencies) -> None:
        """Learn from one frame: latencies[j] is the seconds of stage stages[j]. The frame moves
        the slowdown with weight 1 - prod(1 - alpha x cost / heaviest) over its stages, the
        weight the stages' moves would have if each moved it in turn. A frame that reaches a
        stage not measured yet (no warm-up) only sets nominal costs: the slowdown learns from the
        frames after it."""
        nominal = self.nominal
        if self._unmeasured and any(nominal[i] == 0.0 for i in stages):
            measured = list(nominal)
            for i, seconds in zip(stages, latencies):
                measured[i] = measured[i] or seconds
            self._set_nominal(measured)
            return
        total, keep = 0.0, 1.0
        for i in stages:
            total += nominal[i]
            keep *= self._keep[i]
        if not total:
            return
        slowdown = self.slowdown
        ratio = min(sum(latencies) / total, self.max_jump * slowdown)
        self.slowdown = slowdown + (1.0 - keep) * (ratio - slowdown)

    def predict(self, stage: int) -> float:
        """The expected cost: nominal x slowdown; 0 before any measurement."""
        return self.nominal[stage] * self.slowdown

    def predict_stages(self, stages) -> float:
        """The expected cost of running `stages` (indices) in turn."""
        return sum(self.nominal[i] for i in stages) * self.slowdown
    def calibrate(self, samples: list) -> None:
        """Nominal costs from warm-up samples (one list of seconds per stage); slowdown back to 1.

        The fastest sample, not the median: contention only ever slows a stage, so a load spike
        during warm-up must outlast every round to bias it. A biased nominal cost would last, as
        the deadline guard never lets a stage run whose predicted cost stays past the deadline."""
        self._set_nominal([float(min(s)) for s in samples])
        self.slowdown = 1.0
