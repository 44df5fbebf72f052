"""Threshold initialization from one round of entropy collection (shared/DESIGN.md sections 3 and 6).

One pass over the calibration split records every subnet's softmax entropy and whether
it was right. From those, per subnet: the entropy quantiles the board turns a control
value into thresholds with (device.entropy), and the calibration accuracy. Simulating
the board's cascade at many control values gives the curve the router moves along:
accuracy and mean MACs (cumulative MACs of the exit subnet) against the control value.

Router settings chosen on the calibration curve:
  initial  the cheapest control (lowest mean MACs; the higher control on ties) whose cascade
           accuracy is within INITIAL_TOLERANCE (0.5 pp) of the largest subnet's calibration accuracy.
  floor    the largest control whose cascade accuracy equals the best accuracy on the curve:
           every lower control (more escalation, more MACs) has no higher calibration
           accuracy, so the router never goes below it. floor <= initial always holds.
"""
import numpy as np

from device.entropy import entropy_quantiles, exit_subnets, softmax_entropy, thresholds_for_control
from host.evaluate import collect_logits

CURVE_POINTS = 51
INITIAL_TOLERANCE = 0.005


def controls(points: int = CURVE_POINTS) -> np.ndarray:
    return np.round(np.linspace(0.0, 1.0, points), 6)


def cascade_curve(logits: np.ndarray, labels: np.ndarray, quantiles: np.ndarray, cumulative_macs,
                  control_values=None) -> list:
    """The cascade at each control value: accuracy, mean MACs, exit fractions per subnet."""
    entropies = softmax_entropy(logits)  # (K, N)
    correct = logits.argmax(axis=2) == labels[None, :]
    macs = np.asarray(cumulative_macs, dtype=np.float64)
    K, N = correct.shape
    curve = []
    for q in controls() if control_values is None else control_values:
        exit_at = exit_subnets(entropies, thresholds_for_control(quantiles, float(q)))
        curve.append({"control": float(q),
                      "accuracy": float(correct[exit_at, np.arange(N)].mean()),
                      "mean_macs": float(macs[exit_at].mean()),
                      "exit_fractions": (np.bincount(exit_at, minlength=K) / N).tolist()})
    return curve


def router_settings(curve: list, largest_accuracy: float) -> tuple[float, float]:
    """(initial, floor) by the rules in the module docstring."""
    ok = [p for p in curve if p["accuracy"] >= largest_accuracy - INITIAL_TOLERANCE - 1e-12]
    initial = min(ok, key=lambda p: (p["mean_macs"], -p["control"]))["control"]
    best = max(p["accuracy"] for p in curve)
    floor = max(p["control"] for p in curve if p["accuracy"] >= best - 1e-12)
    return initial, floor


def calibration_from_logits(logits: np.ndarray, labels: np.ndarray, costs: dict) -> dict:
    """Per-subnet quantiles and accuracy plus the router block of the bundle manifest."""
    entropies = softmax_entropy(logits)
    quantiles = np.stack([entropy_quantiles(e) for e in entropies])
    accuracy = (logits.argmax(axis=2) == labels[None, :]).mean(axis=1)
    cumulative = [s["macs_cumulative"] for s in costs["subnets"]]
    curve = cascade_curve(logits, labels, quantiles, cumulative)
    initial, floor = router_settings(curve, float(accuracy[-1]))
    return {"count": int(len(labels)),
            "subnets": [{"index": k + 1, "entropy_quantiles": quantiles[k].tolist(),
                         "calib_accuracy": float(accuracy[k])} for k in range(len(accuracy))],
            "router": {"control": "exit_quantile", "initial": initial, "floor": floor, "curve": curve}}


def calibrate(net, calib_split, costs: dict, batch_size: int = 256, device: str = "auto") -> dict:
    """One entropy-collection pass over the calibration split -> quantiles, accuracy, router curve."""
    logits = collect_logits(net, calib_split, batch_size, device, desc="calibrating")
    return calibration_from_logits(logits, calib_split.labels, costs)


def curve_on_split(test_logits: np.ndarray, test_labels: np.ndarray, calibration: dict, costs: dict,
               control_values=None) -> list:
    """The cascade on the test split using the calibration quantiles (what the board would do)."""
    quantiles = np.array([s["entropy_quantiles"] for s in calibration["subnets"]])
    cumulative = [s["macs_cumulative"] for s in costs["subnets"]]
    return cascade_curve(test_logits, test_labels, quantiles, cumulative, control_values)
