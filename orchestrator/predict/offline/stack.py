"""Learned blend of the linear token scores into the boosters' output (out of source).

The p50 booster reads the dense features and the two ridge scores; the token-embedding ridge
(and, here, the token-id ridge once more) is added to its output with a weight. A fixed weight
was chosen on the leave-one-source-out table; `blend_weights` instead fits it on the
training sources only: each source's booster predictions come from boosters fitted without
that source, and the weights are the within-source least-squares fit of what those
predictions miss (every source's mean removed, so only the order inside a source counts).
"""

from __future__ import annotations

import numpy as np


def _demeaned(values: np.ndarray, sources: np.ndarray, weight: np.ndarray) -> np.ndarray:
    out = np.array(values, dtype=np.float64)
    for s in set(sources):
        sel = sources == s
        out[sel] -= np.average(out[sel], axis=0, weights=weight[sel])
    return out


def blend_weights(
    residual: np.ndarray,
    scores: np.ndarray,
    sources: np.ndarray,
    weight: np.ndarray,
    damp: float = 1e-3,
) -> np.ndarray:
    """Non-negative weights w (one per column of `scores`) minimising the weighted squared
    within-source error of `residual - scores @ w` (+ damp |w|^2 per unit weight)."""
    r = _demeaned(residual, sources, weight)
    s = _demeaned(scores.reshape(len(residual), -1), sources, weight)
    gram = s.T @ (s * weight[:, None]) + damp * weight.sum() * np.eye(s.shape[1])
    w = np.linalg.solve(gram, s.T @ (weight * r))
    return np.clip(w, 0.0, None)
