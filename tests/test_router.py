"""The sliding-update router and the policies, driven by a fake clock, fake sensors and a model
of the board: latency(q) = load * (TRUNK + ESCALATION * (1 - q)) seconds, i.e. more early
exits (higher q) make a frame cheaper."""
import numpy as np
import pytest

from device.engine.cascade import Result
from device.policy.exits import QUANTILE_POINTS, control_table
from device.policy.router import (CascadePolicy, FixedPolicy, PolicyError, Reading, Router, RouterSettings,
                           SensorSampler, ThermalLimits, make_policy)
from tests.device_fakes import FakeClock, fake_bundle

BUDGET = 0.030
TRUNK, ESCALATION = 0.010, 0.030
SETTINGS = RouterSettings()
SETTLE_FRAMES = 5   # stated: a latency step up is back under budget within this many frames
RECOVER_FRAMES = SETTINGS.window + 40  # stated: headroom restores the floor within this many frames
QUANTILES = np.tile(np.linspace(0.1, 2.0, QUANTILE_POINTS), (3, 1))
TABLE = control_table(QUANTILES, np.repeat(np.linspace(0.0, 1.0, 51)[:, None], 2, axis=1))  # one shared level


def latency(q: float, load: float) -> float:
    return load * (TRUNK + ESCALATION * (1.0 - q))


class FakeSensors:
    def __init__(self):
        self.temperature = 50.0
        self.other_load = 0.0

    def __call__(self):
        return Reading(self.other_load, self.other_load, self.temperature)


def make_router(initial=0.5, floor=0.4, limits=ThermalLimits(80.0, 85.0)):
    clock, sensors = FakeClock(), FakeSensors()
    router = Router(TABLE, BUDGET, initial, floor, limits=limits,
                    sensors=SensorSampler(sensors, clock=clock, period_s=0.5))
    return router, clock, sensors


def run(router, clock, frames, load):
    """Feed `frames` frames of the board model; returns their latencies."""
    seen = []
    for _ in range(frames):
        lat = latency(router.control, load)
        clock.advance(lat)
        router.update(lat)
        seen.append(lat)
    return np.array(seen)


def test_latency_step_up_settles_under_budget():
    router, clock, _ = make_router()
    assert (run(router, clock, 50, load=1.0) <= BUDGET).all()
    after = run(router, clock, 300, load=1.4)  # the board gets 40 % slower
    assert (after[SETTLE_FRAMES:SETTLE_FRAMES + SETTINGS.window] <= BUDGET).all()
    assert (after[SETTLE_FRAMES:] > BUDGET).mean() <= 0.05  # probing for headroom overruns rarely
    assert np.percentile(after[SETTLE_FRAMES:], 95) <= BUDGET


def test_a_lone_spike_undoes_one_step_and_a_burst_raises():
    router, clock, _ = make_router()
    run(router, clock, 60, load=1.0)
    settled = router.control
    router.update(2 * BUDGET)  # one preempted frame
    assert router.control == pytest.approx(settled + SETTINGS.step_down)
    router.update(2 * BUDGET)  # a second one inside the window: the setting itself is too costly
    assert router.control == pytest.approx(settled + SETTINGS.step_down + SETTINGS.step_up)


def test_headroom_brings_the_accuracy_setting_back():
    router, clock, _ = make_router()
    run(router, clock, 100, load=1.4)
    assert router.control > 0.6
    run(router, clock, RECOVER_FRAMES, load=1.0)
    assert router.control == pytest.approx(0.4)  # the floor: calibration shows no gain below it
    run(router, clock, 200, load=0.5)
    assert router.control == pytest.approx(0.4)


def test_temperature_near_soft_limit_moves_exits_cheaper_before_latency_rises():
    router, clock, sensors = make_router()
    run(router, clock, 60, load=1.0)
    settled, thresholds = router.control, router.thresholds.copy()
    sensors.temperature = 81.0  # over the soft point; latency still well within budget
    clock.advance(1.0)
    lat = run(router, clock, 1, load=1.0)
    assert lat[0] <= BUDGET
    assert router.control > settled
    assert all(now > before for now, before in zip(router.thresholds[:-1], thresholds[:-1]))  # more early exits
    sensors.temperature = 86.0  # past the hard point: subnet 1 answers
    clock.advance(1.0)
    run(router, clock, 1, load=1.0)
    assert router.control == 1.0
    sensors.temperature = 60.0
    clock.advance(1.0)
    run(router, clock, RECOVER_FRAMES + 20, load=1.0)
    assert router.control == pytest.approx(settled)


def test_sensors_are_read_once_per_period():
    calls = []
    clock = FakeClock()
    sampler = SensorSampler(lambda: calls.append(1) or Reading(None, None, None), clock=clock, period_s=0.5)
    for _ in range(10):
        sampler.poll()
        clock.advance(0.1)
    assert len(calls) == 2


def test_other_processes_load_jump_moves_exits_cheaper_before_latency_rises():
    router, clock, sensors = make_router()
    run(router, clock, 60, load=1.0)
    settled = router.control
    sensors.other_load = 95.0  # two CPU-bound processes start
    clock.advance(1.0)
    assert run(router, clock, 1, load=1.0)[0] <= BUDGET
    assert router.control == pytest.approx(settled + SETTINGS.step_up)
    clock.advance(1.0)
    run(router, clock, RECOVER_FRAMES, load=1.0)  # a steady load that the budget absorbs
    assert router.control == pytest.approx(settled)


def frame(exit_subnet, stages, cut=False):
    """A concat Result as the router sees it: exit, stage latencies (trunk, subnet 1, ...), guard
    cut; the stages past the trunk and subnet 1 are escalations."""
    return Result(0, 0.9, 0.1, exit_subnet, tuple(stages), cut, tuple(range(len(stages))), sum(stages[2:]))


def test_an_overrun_no_setting_could_avoid_leaves_q_alone():
    router, clock, _ = make_router()
    run(router, clock, 60, load=1.0)
    settled = router.control
    for _ in range(3):  # preempted frames: over the budget even as far as subnet 1
        router.update(5 * BUDGET, frame(1, (4 * BUDGET, BUDGET)))
    assert router.control == settled
    router.update(1.2 * BUDGET, frame(3, (0.1 * BUDGET, 0.4 * BUDGET, 0.35 * BUDGET, 0.35 * BUDGET)))
    assert router.control > settled  # over because of its escalations: a cheaper setting helps


def test_never_below_floor_and_guard_is_on():
    router, _, _ = make_router(initial=0.1, floor=0.4)
    assert router.control == pytest.approx(0.4)
    assert router.deadline_s == BUDGET


def test_fixed_and_cascade_policies():
    fixed = FixedPolicy(3, 2)
    assert list(fixed.thresholds) == [-np.inf, np.inf, np.inf] and fixed.deadline_s is None
    cascade = CascadePolicy(TABLE, 0.5)
    before = cascade.thresholds.copy()
    cascade.update(10.0)
    assert cascade.thresholds == before and cascade.deadline_s is None


@pytest.mark.parametrize("spec, message", [("fixed:9", "subnets 1..3"), ("fixed:x", "whole number"),
                                            ("fast", "accepted forms: router, cascade, fixed:K")])
def test_bad_policy_lists_forms(spec, message):
    with pytest.raises(PolicyError, match=message):
        make_policy(spec, fake_bundle(), BUDGET)


def test_make_policy_uses_calibrated_settings():
    policy = make_policy("router", fake_bundle(), BUDGET)
    assert policy.control == pytest.approx(0.5) and policy.floor == pytest.approx(0.2)
    assert make_policy("fixed:3", fake_bundle(), BUDGET).name == "fixed:3"
