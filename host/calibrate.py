"""Threshold initialization from one round of entropy collection (shared/DESIGN.md sections 3 and 6).

One pass over the calibration split records every exit's softmax entropy and whether it was
right. From those, per exit: the entropy quantiles the board turns exit levels into
thresholds with (device.policy.exits), and the calibration accuracy. Then the curve the
router moves along: the cascade is simulated for every combination of per-exit levels on a
grid, and the accuracy/mean-MACs Pareto frontier, resampled at CURVE_POINTS evenly spaced
costs, becomes the curve (control 0 its most accurate point, 1 exit 1 alone). A frame's MACs
are those of the stages it runs: level 0 at an exit means it never answers, and the engine passes
it by unless the top exit needs its stages anyway (host.complexity.walk_macs), so for a
width-switching method an exit passed by costs nothing and one tried costs its whole width.
One shared level for all subnets, the first design, was measured to fall below
fixed subnet 2 at subnet 2's cost on a briefly trained model (bench/results/device_runtime.md);
every fixed subnet is a point of this search (levels 0 up to it, 1 at it), so the frontier
is never below one on the calibration split.

Router settings chosen on the calibration curve:
  initial  the cheapest control (lowest mean MACs; the higher control on ties) whose cascade
           accuracy is within INITIAL_TOLERANCE (0.5 pp) of the largest subnet's calibration accuracy.
  floor    the largest control whose cascade accuracy equals the best accuracy on the curve:
           every lower control (more escalation, more MACs) has no higher calibration
           accuracy, so the router never goes below it. floor <= initial always holds.
"""
import itertools

import numpy as np

from device.bundle.ladder import free_to_try
from device.policy.exits import control_row, entropy_quantiles, exit_subnets, softmax_entropy, thresholds_for_levels
from host.complexity import walk_macs
from host.evaluate import collect_logits

CURVE_POINTS = 51
INITIAL_TOLERANCE = 0.005
MAX_LEVEL_COMBINATIONS = 20_000  # the grid gets coarser with more subnets: 11 levels each up to K = 5
COMBINATION_CHUNK = 256


def level_grid(early_subnets: int) -> np.ndarray:
    """Exit levels tried for each subnet that may exit early."""
    steps = int(MAX_LEVEL_COMBINATIONS ** (1 / max(1, early_subnets)))
    return np.linspace(0.0, 1.0, min(11, max(3, steps)))


class LadderMacs:
    """Per row of exit levels, the MACs of answering at each exit (C, K), from a method's costs
    (host.complexity.ladder_costs): only which early exits are tried matters, those with level
    > 0 and, as the engine does, those the top exit needs every stage of (free to try)."""

    def __init__(self, costs: dict):
        self.needs = [e["stages"] for e in costs["exits"]]
        self.stage_macs = {name: c["macs"] for name, c in costs["stages"].items()}
        self.free = np.array(free_to_try(self.needs)[:-1])
        self._by_tried = {}

    def __call__(self, level_sets: np.ndarray) -> np.ndarray:
        rows = []
        for tried in (np.asarray(level_sets) > 0.0) | self.free:
            key = tried.tobytes()
            if key not in self._by_tried:
                self._by_tried[key] = walk_macs(self.needs, self.stage_macs, tried.tolist())
            rows.append(self._by_tried[key])
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(self.needs))


def simulate(entropies, correct, macs: LadderMacs, quantiles, level_sets: np.ndarray) -> tuple:
    """The cascade for each row of per-exit levels: (accuracy, mean MACs, exit fractions) arrays."""
    K, N = correct.shape
    exit_at = np.stack([exit_subnets(entropies, thresholds_for_levels(quantiles, levels))
                        for levels in level_sets])  # (C, N): the exit that answers each image
    accuracy = correct[exit_at, np.arange(N)].mean(axis=1)
    fractions = np.stack([(exit_at == k).mean(axis=1) for k in range(K)], axis=1)
    return accuracy, (fractions * macs(level_sets)).sum(axis=1), fractions


def pareto_front(accuracy, mean_macs) -> np.ndarray:
    """Indices of the settings no cheaper setting matches in accuracy, cheapest first."""
    order = np.lexsort((-accuracy, mean_macs))
    front, best = [], -np.inf
    for i in order:
        if accuracy[i] > best + 1e-12:
            front.append(i)
            best = accuracy[i]
    return np.array(front)


def frontier_curve(entropies, correct, macs, quantiles, points: int = CURVE_POINTS) -> list:
    """The router's curve: the Pareto frontier of per-subnet exit levels, resampled at evenly
    spaced costs from the most accurate point (control 0) to subnet 1 alone (control 1)."""
    K = correct.shape[0]
    grid = level_grid(K - 1)
    level_sets = np.array(list(itertools.product(grid, repeat=K - 1))).reshape(-1, K - 1)
    results = [simulate(entropies, correct, macs, quantiles, level_sets[i:i + COMBINATION_CHUNK])
               for i in range(0, len(level_sets), COMBINATION_CHUNK)]
    accuracy, mean_macs, fractions = (np.concatenate(parts) for parts in zip(*results))
    front = pareto_front(accuracy, mean_macs)
    costs = mean_macs[front]
    curve = []
    for i, target in enumerate(np.linspace(costs[-1], costs[0], points)):
        j = front[np.searchsorted(costs, target + 1e-9 * max(1.0, target), side="right") - 1]  # priciest affordable
        curve.append({"control": round(i / (points - 1), 6), "levels": level_sets[j].tolist(),
                      "accuracy": float(accuracy[j]), "mean_macs": float(mean_macs[j]),
                      "exit_fractions": fractions[j].tolist()})
    return curve


def cascade_on_curve(logits, labels, quantiles, macs: LadderMacs, curve, control_values=None) -> list:
    """The cascade at the curve's levels on another split (per point, or at the given control values)."""
    entropies = softmax_entropy(logits)
    correct = logits.argmax(axis=2) == labels[None, :]
    picked = curve if control_values is None else [curve[control_row(q, len(curve))] for q in control_values]
    accuracy, mean_macs, fractions = simulate(entropies, correct, macs, quantiles,
                                              np.array([p["levels"] for p in picked]).reshape(len(picked), -1))
    return [{"control": float(p["control"]), "levels": p["levels"], "accuracy": float(a), "mean_macs": float(m),
             "exit_fractions": f.tolist()} for p, a, m, f in zip(picked, accuracy, mean_macs, fractions)]


def router_settings(curve: list, largest_accuracy: float) -> tuple[float, float]:
    """(initial, floor) by the rules in the module docstring."""
    ok = [p for p in curve if p["accuracy"] >= largest_accuracy - INITIAL_TOLERANCE - 1e-12]
    initial = min(ok, key=lambda p: (p["mean_macs"], -p["control"]))["control"]
    best = max(p["accuracy"] for p in curve)
    floor = max(p["control"] for p in curve if p["accuracy"] >= best - 1e-12)
    return initial, floor


def calibration_from_logits(logits: np.ndarray, labels: np.ndarray, costs: dict) -> dict:
    """Per-exit quantiles and accuracy plus the router block of the bundle manifest."""
    entropies = softmax_entropy(logits)
    quantiles = np.stack([entropy_quantiles(e) for e in entropies])
    correct = logits.argmax(axis=2) == labels[None, :]
    accuracy = correct.mean(axis=1)
    curve = frontier_curve(entropies, correct, LadderMacs(costs), quantiles)
    initial, floor = router_settings(curve, float(accuracy[-1]))
    return {"count": int(len(labels)),
            "exits": [{"index": k + 1, "entropy_quantiles": quantiles[k].tolist(),
                         "calib_accuracy": float(accuracy[k])} for k in range(len(accuracy))],
            "router": {"control": "frontier", "initial": initial, "floor": floor, "curve": curve}}


def calibrate(net, calib_split, costs: dict, batch_size: int = 256, device: str = "auto") -> dict:
    """One entropy-collection pass over the calibration split -> quantiles, accuracy, router curve."""
    logits = collect_logits(net, calib_split, batch_size, device, desc="calibrating")
    return calibration_from_logits(logits, calib_split.labels, costs)


def curve_on_split(test_logits: np.ndarray, test_labels: np.ndarray, calibration: dict, costs: dict,
                   control_values=None) -> list:
    """The cascade on the test split at the calibrated curve's settings (what the board would do)."""
    quantiles = np.array([s["entropy_quantiles"] for s in calibration["exits"]])
    return cascade_on_curve(test_logits, test_labels, quantiles, LadderMacs(costs), calibration["router"]["curve"],
                            control_values)


def initial_thresholds(calibration: dict) -> np.ndarray:
    """Per-subnet thresholds at the calibrated initial control (parity checks the exits there)."""
    quantiles = np.array([s["entropy_quantiles"] for s in calibration["exits"]])
    curve = calibration["router"]["curve"]
    return thresholds_for_levels(quantiles, curve[control_row(calibration["router"]["initial"], len(curve))]["levels"])
