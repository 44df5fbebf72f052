"""Softmax entropy and the one control value the router moves.

The control value q in [0, 1] is an *exit quantile*: subnet k (k < K) answers when
its softmax entropy is at or under the q-quantile of the entropies it showed on the
calibration split, so roughly a fraction q of the images that reach subnet k stop
there. q = 0 never exits early (always the largest subnet); q = 1 always answers
with subnet 1. Host calibration and the board router both use these functions.
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


def thresholds_for_control(quantiles: np.ndarray, control: float) -> np.ndarray:
    """Per-subnet entropy thresholds for the control value q.

    `quantiles` has one row per subnet (K rows). Returns K thresholds; the last is +inf
    because the largest subnet always answers. q <= 0 gives -inf (no early exit) and
    q >= 1 gives +inf (everything exits at subnet 1).
    """
    quantiles = np.asarray(quantiles, dtype=np.float64)
    k = quantiles.shape[0]
    out = np.empty(k, dtype=np.float64)
    if control <= 0.0:
        out[:] = -np.inf
    elif control >= 1.0:
        out[:] = np.inf
    else:
        probs = np.linspace(0.0, 1.0, quantiles.shape[1])
        for i in range(k):
            out[i] = np.interp(control, probs, quantiles[i])
    out[-1] = np.inf
    return out


def exit_subnets(entropies: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """0-based subnet at which the cascade answers each image: the first k whose entropy is at
    or under its threshold. `entropies` is (K, N); the largest subnet always answers."""
    exits = entropies <= np.asarray(thresholds)[:, None]
    exits[-1] = True
    return exits.argmax(axis=0)
