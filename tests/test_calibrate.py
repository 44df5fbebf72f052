"""Calibration: monotone entropy quantiles, the cascade curve, the router's initial and floor; MAC counts."""
import numpy as np
import pytest
import torch

from device.policy.exits import QUANTILE_POINTS, exit_subnets, softmax_entropy, thresholds_for_levels
from host.calibrate import calibrate, calibration_from_logits, curve_on_split, router_settings
from host import methods
from host.calibrate import LadderMacs
from host.complexity import ladder_costs
from host.data import Split
from host.network import DynamicNet, NetConfig
from tests.torch_threads import one_thread  # noqa: F401  (autouse fixture)

# a concat-like ladder: exit k needs stages s1..sk, each 10 MACs
COSTS = {"stages": {f"s{k}": {"macs": 10} for k in (1, 2, 3)},
         "exits": [{"stages": [f"s{j}" for j in range(1, k + 1)]} for k in (1, 2, 3)]}
# a width-switching ladder: exit k is one stage of its own, 10, 20 and 30 MACs
WIDTHS = {"stages": {f"w{k}": {"macs": 10 * k} for k in (1, 2, 3)}, "exits": [{"stages": [f"w{k}"]} for k in (1, 2, 3)]}


def test_a_frame_pays_for_the_exits_it_tries():
    """concat's costs nest (trying exit 1 is free on the way to 3); a width-switching method pays
    for each width it tries and nothing for one passed by (level 0)."""
    levels = np.array([[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]])
    np.testing.assert_array_equal(LadderMacs(COSTS)(levels), [[10, 20, 30]] * 4)
    np.testing.assert_array_equal(LadderMacs(WIDTHS)(levels),
                                  [[10, 20, 30], [10, 30, 40], [10, 30, 60], [10, 20, 50]])


def synthetic_logits(n=600, seed=0):
    """Three subnets that grow more confident and more often right with k."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    logits = []
    for k, (scale, right) in enumerate([(1.0, 0.5), (2.0, 0.7), (3.0, 0.9)]):
        z = rng.normal(size=(n, 10)) * scale
        hit = rng.random(n) < right
        z[np.arange(n)[hit], labels[hit]] += 3 * scale
        logits.append(z)
    return np.stack(logits).astype(np.float32), labels


def test_quantiles_monotone_and_sized():
    logits, labels = synthetic_logits()
    cal = calibration_from_logits(logits, labels, COSTS)
    for sub in cal["exits"]:
        q = np.array(sub["entropy_quantiles"])
        assert q.shape == (QUANTILE_POINTS,)
        assert np.all(np.diff(q) >= 0)
        assert 0 <= sub["calib_accuracy"] <= 1


def test_curve_ends_and_monotone_cost():
    logits, labels = synthetic_logits()
    cal = calibration_from_logits(logits, labels, COSTS)
    curve = cal["router"]["curve"]
    assert curve[0]["control"] == 0 and curve[-1]["control"] == 1
    assert curve[-1]["exit_fractions"] == [1, 0, 0] and curve[-1]["mean_macs"] == 10
    assert curve[-1]["accuracy"] == pytest.approx(cal["exits"][0]["calib_accuracy"])
    assert all(len(p["levels"]) == 2 for p in curve)
    macs = [p["mean_macs"] for p in curve]
    accuracy = [p["accuracy"] for p in curve]
    assert all(a >= b for a, b in zip(macs, macs[1:])) and macs[0] > macs[-1]
    assert all(a >= b for a, b in zip(accuracy, accuracy[1:]))  # paying more never loses accuracy
    router = cal["router"]
    assert router["control"] == "frontier"
    assert 0 <= router["floor"] <= router["initial"] <= 1


def test_curve_is_never_below_a_fixed_subnet_at_its_cost():
    """Each fixed subnet k is one setting of the search (levels 0 below k, 1 at k), so the frontier
    at subnet k's cost must reach subnet k's calibration accuracy."""
    logits, labels = synthetic_logits()
    cal = calibration_from_logits(logits, labels, COSTS)
    curve = cal["router"]["curve"]
    for sub, cost in zip(cal["exits"], (10, 20, 30)):
        affordable = [p["accuracy"] for p in curve if p["mean_macs"] <= cost]
        assert max(affordable) >= sub["calib_accuracy"] - 1e-12


def test_curve_levels_reproduce_on_the_board():
    """The thresholds the board derives from a point's levels give the point's exits again."""
    logits, labels = synthetic_logits()
    cal = calibration_from_logits(logits, labels, COSTS)
    quantiles = np.array([s["entropy_quantiles"] for s in cal["exits"]])
    entropies = softmax_entropy(logits)
    for point in cal["router"]["curve"][::10]:
        exit_at = exit_subnets(entropies, thresholds_for_levels(quantiles, point["levels"]))
        assert (np.bincount(exit_at, minlength=3) / len(labels)).tolist() == pytest.approx(point["exit_fractions"])


def test_router_settings_rules():
    curve = [{"control": q, "accuracy": a, "mean_macs": m} for q, a, m in [
        (0.0, 0.900, 100), (0.2, 0.903, 80), (0.4, 0.903, 60), (0.6, 0.897, 40), (0.8, 0.890, 20), (1.0, 0.8, 10)]]
    initial, floor = router_settings(curve, largest_accuracy=0.900)
    assert initial == 0.6  # cheapest within 0.5 pp of 0.900
    assert floor == 0.4  # the largest control reaching the best accuracy (0.903)


def test_curve_on_test_uses_calibration_levels():
    logits, labels = synthetic_logits()
    cal = calibration_from_logits(logits, labels, COSTS)
    test_logits, test_labels = synthetic_logits(seed=1)
    curve = curve_on_split(test_logits, test_labels, cal, COSTS, control_values=[0.0, 0.5, 1.0])
    assert [p["control"] for p in curve] == [0.0, 0.5, 1.0]
    assert sum(curve[1]["exit_fractions"]) == pytest.approx(1.0)
    assert curve[1]["levels"] == cal["router"]["curve"][25]["levels"]


def test_costs_and_calibrate_on_a_real_network():
    torch.manual_seed(0)
    net = DynamicNet(NetConfig(arch="resnet", img_size=16, widths=[0.25, 0.25]))
    costs = ladder_costs(methods.get("concat").export_plan(net))
    subs = costs["exits"]
    assert subs[-1]["params"] == sum(p.numel() for p in net.parameters())
    for k, sub in enumerate(subs):
        before = 0 if k == 0 else subs[k - 1]["macs_cumulative"]
        assert sub["macs_cumulative"] == before + sub["macs_incremental"] > before
        assert sub["macs_alone"] == sub["macs_cumulative"]
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8), rng.integers(0, 10, 40))
    cal = calibrate(net, split, costs, device="cpu")
    assert len(cal["exits"]) == 2 and len(cal["router"]["curve"]) == 51
