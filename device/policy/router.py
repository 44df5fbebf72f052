"""Routing policies: which entropy thresholds a frame uses, and how they move with feedback.

The control value q picks a point of the calibrated accuracy/cost curve (device/policy/exits.py),
whose per-subnet exit levels map through the calibrated quantiles to one threshold per
subnet: higher q means more early exits, a cheaper frame.

  router   the sliding-update router. q starts at the calibrated setting and moves with a
           sliding window of measured frame latencies against the budget: a frame over the
           budget raises q by `step_up` when the window holds more than `spikes_tolerated`
           of them, and otherwise only by `step_down` (a lone spike says little about the
           cost of the setting, and undoing the last step down is enough). A frame that would
           have run over even had subnet 1 answered (a preemption, a stall) does not count:
           no setting of q would have saved it. Once a whole window has run within the budget
           q falls by `step_down` per frame, never below the calibrated floor, under which
           calibration shows no accuracy gain. Two sensors act before the latency shows
           trouble: near the board profile's soft throttle point the temperature sets a rising
           lower bound on q (at the hard point q is 1: subnet 1 answers), and a jump in the
           CPU load of other processes raises q by `step_up` at once. The deadline guard
           (Cascade.infer) is on.
  fixed:K  always subnet K, no guard: the baseline that shows what a fixed model costs.
  cascade  the calibrated thresholds, no feedback, no guard.

Sensors and the clock are injected so that tests drive the router with fakes.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from device.board.sensors import Reading, SensorSampler
from device.errors import UserError
from device.policy.exits import control_row

CONTROL_STEPS = 1000  # q moves on a grid of 1/1000, so thresholds come from a table, not per-frame interpolation
POLICY_FORMS = "router, cascade, fixed:K (K = 1..number of subnets)"


class PolicyError(UserError, ValueError):
    """A --policy value that cannot be used; the message lists the accepted forms."""


@dataclass(frozen=True)
class ThermalLimits:
    soft_c: float
    hard_c: float


@dataclass(frozen=True)
class RouterSettings:
    window: int = 20              # frames in the sliding window
    step_up: float = 0.05         # q added for a frame over the budget past the tolerated spikes
    spikes_tolerated: int = 1     # frames over the budget in the window that raise q by step_down only
    step_down: float = 0.02       # q removed per frame once a window ran within the budget
    thermal_margin_c: float = 5.0  # the temperature bound on q starts this far below the soft point
    load_jump: float = 40.0       # a rise of other processes' CPU % this large raises q at once


class FixedPolicy:
    """Always subnet k: subnets 1..k-1 never exit early, k always answers; no deadline guard."""

    def __init__(self, num_subnets: int, k: int):
        if not 1 <= k <= num_subnets:
            raise PolicyError(f"policy fixed:{k}: the bundle has subnets 1..{num_subnets}; "
                              f"accepted forms: {POLICY_FORMS}")
        self.name = f"fixed:{k}"
        self.thresholds = [-math.inf] * (k - 1) + [math.inf] * (num_subnets - k + 1)
        self.control = None
        self.deadline_s = None

    def update(self, latency_s: float, result=None) -> None:
        """No feedback."""


class CascadePolicy(FixedPolicy):
    """The calibrated thresholds at the bundle's initial control value, without feedback."""

    def __init__(self, table: np.ndarray, control: float):
        self.name = "cascade"
        self.control = float(control)
        self.thresholds = table[control_row(self.control, len(table))].tolist()
        self.deadline_s = None


class Router:
    """The sliding-update router (see the module docstring)."""

    name = "router"

    def __init__(self, table: np.ndarray, budget_s: float, initial: float, floor: float,
                 limits: ThermalLimits | None = None, sensors: SensorSampler | None = None,
                 settings: RouterSettings = RouterSettings()):
        """`table`: (P, K) thresholds, one row per calibrated curve point (Bundle.control_table)."""
        if budget_s <= 0:
            raise ValueError(f"budget must be > 0 s, got {budget_s}")
        rows = table.tolist()  # lists of floats, made once: the per-frame lookup is an index, each
        # threshold a float the cascade compares without making a numpy scalar
        self._table = [rows[control_row(step / CONTROL_STEPS, len(rows))] for step in range(CONTROL_STEPS + 1)]
        self.budget_s = budget_s
        self.deadline_s = budget_s
        self.floor = float(np.clip(floor, 0.0, 1.0))
        self.limits = limits
        self.sensors = sensors
        self.settings = settings
        self.reading = Reading(None, None, None)
        self._frame = 0  # frames seen
        self._overs = deque(maxlen=settings.spikes_tolerated + 1)  # frame numbers of the latest overruns
        self._last_move_up = 0  # frame number of the last frame over the budget or load jump
        self._load_rose = False
        self._lowest = self._lowest_step()
        if sensors is not None:
            self._take(sensors.poll())
        self._set_control(float(initial))

    def _lowest_step(self) -> int:
        """The grid step of lower_bound(), rounded up: q never goes below the bound."""
        return math.ceil(self.lower_bound() * CONTROL_STEPS - 1e-9)

    def _set_control(self, value: float) -> None:
        self._step = max(self._lowest, min(CONTROL_STEPS, round(value * CONTROL_STEPS)))
        self.control = self._step / CONTROL_STEPS
        self.thresholds = self._table[self._step]

    def thermal_bound(self) -> float:
        """Lowest q the temperature allows: the floor when cool, rising linearly from
        (soft - margin) to 1.0 at the hard throttle point."""
        t = self.reading.temperature
        if t is None or self.limits is None:
            return self.floor
        start = self.limits.soft_c - self.settings.thermal_margin_c
        if t <= start:
            return self.floor
        span = max(self.limits.hard_c - start, 1e-6)
        return min(1.0, self.floor + (1.0 - self.floor) * (t - start) / span)

    def lower_bound(self) -> float:
        return max(self.floor, self.thermal_bound())

    def _take(self, reading: Reading) -> None:
        """Take a new reading: note whether other processes' load jumped since the last one, and
        move the bound on q with the temperature."""
        before, now = self.reading.other_load, reading.other_load
        self._load_rose = (before is not None and now is not None
                           and now - before >= self.settings.load_jump)
        self.reading = reading
        self._lowest = self._lowest_step()

    def update(self, latency_s: float, result=None) -> None:
        """Feed one frame's measured latency (seconds) and its cascade Result; moves q for the
        next frame.

        An overrun that the frame would have had even had exit 1 answered (its latency less the
        stages exit 1 does not need: the process was preempted, the board stalled) is one no setting of q
        can prevent, so it does not count as over the budget. O(1), and a frame within the
        budget with no new sensor reading, the usual one, costs a few comparisons: the window
        keeps the frame numbers of its last overruns, not a flag per frame."""
        new_reading = False
        if self.sensors is not None:
            reading = self.sensors.poll()
            if reading is not self.reading:
                self._take(reading)
                new_reading = True
        self._frame = frame = self._frame + 1
        s = self.settings
        over = latency_s > self.budget_s and (
            result is None or latency_s - result.escalated_s <= self.budget_s)
        if over or self._load_rose:
            overs = self._overs
            if over:
                overs.append(frame)
            spike = not self._load_rose and (len(overs) <= s.spikes_tolerated or frame - overs[0] >= s.window)
            self._last_move_up = frame
            self._load_rose = False
            self._set_control(self.control + (s.step_down if spike else s.step_up))
        elif frame - self._last_move_up >= s.window and self._step > self._lowest:
            self._set_control(self.control - s.step_down)
        elif new_reading:
            self._set_control(self.control)  # re-apply a bound the temperature may have raised


def make_policy(spec: str, bundle, budget_s: float, limits: ThermalLimits | None = None,
                sensors: SensorSampler | None = None):
    """--policy value -> policy object; PolicyError lists the accepted forms."""
    router = bundle.manifest["router"]
    if spec == "router":
        return Router(bundle.control_table(), budget_s, router["initial"], router["floor"],
                      limits=limits, sensors=sensors)
    if spec == "cascade":
        return CascadePolicy(bundle.control_table(), router["initial"])
    if spec.startswith("fixed:"):
        try:
            k = int(spec.split(":", 1)[1])
        except ValueError:
            raise PolicyError(f"policy '{spec}': K must be a whole number; "
                              f"accepted forms: {POLICY_FORMS}") from None
        return FixedPolicy(bundle.num_subnets, k)
    raise PolicyError(f"unknown policy '{spec}'; accepted forms: {POLICY_FORMS}")
