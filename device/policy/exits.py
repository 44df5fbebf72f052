"""Softmax entropy and the one control value the router moves.

Subnet k (k < K) answers when its softmax entropy is at or under a threshold; a threshold
is set as an exit level, a quantile of the entropies subnet k showed on the calibration
split. Host calibration searches per-subnet levels for the cascade's accuracy/cost frontier
and stores it as a curve of points, cheapest last; the control value q in [0, 1] picks a
point: q = 0 the most accurate setting, q = 1 subnet 1 always. Host calibration and the board
router both use these functions.
"""

import numpy as np

QUANTILE_POINTS = 101  # quantiles stored per subnet, at probabilities linspace(0, 1, 101)


def softmax_entropy(logits: np.ndarray) -> np.ndarray:
    """Entropy in nats of softmax(logits) along the last axis (numerically stable)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=-1, keepdims=True)
    p = e / s
    return np.log(s[..., 0]) - (p * z).sum(axis=-1)


def entropy_quantiles(entropies: np.ndarray) -> np.ndarray:
    """The QUANTILE_POINTS quantiles of one subnet's calibration entropies (non-decreasing)."""
    return np.quantile(entropies, np.linspace(0.0, 1.0, QUANTILE_POINTS))


def thresholds_for_levels(quantiles: np.ndarray, levels) -> np.ndarray:
    """Per-subnet entropy thresholds from per-subnet exit levels.

    `quantiles` has one row per subnet (K rows); `levels` has K - 1 exit quantiles in [0, 1],
    one per subnet that may exit early. Level 0 gives -inf (never exits), 1 gives +inf
    (everything reaching it exits). The last threshold is +inf: the largest subnet always answers.
    """
    quantiles = np.asarray(quantiles, dtype=np.float64)
    probs = np.linspace(0.0, 1.0, quantiles.shape[1])
    out = np.full(quantiles.shape[0], np.inf)
    for k, level in enumerate(levels):
        out[k] = -np.inf if level <= 0.0 else np.inf if level >= 1.0 else np.interp(level, probs, quantiles[k])
    return out


def control_table(quantiles: np.ndarray, curve_levels: np.ndarray) -> np.ndarray:
    """(P, K) thresholds, one row per calibrated curve point; row i is control i / (P - 1)."""
    return np.array([thresholds_for_levels(quantiles, levels) for levels in curve_levels])


def control_row(control: float, rows: int) -> int:
    """The curve point a control value in [0, 1] selects."""
    return int(round(min(1.0, max(0.0, control)) * (rows - 1)))


def exit_subnets(entropies: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """0-based subnet at which the cascade answers each image: the first k whose entropy is at
    or under its threshold. `entropies` is (K, N); the largest subnet always answers."""
    exits = entropies <= np.asarray(thresholds)[:, None]
    exits[-1] = True
    return exits.argmax(axis=0)
