"""Dense features whose direction the training sources agree on.

A feature that lengthens answers in one source and shortens them in another (prompt length:
longer GSM8K problems get longer solutions, longer alpaca_eval instructions do not) teaches
the boosters a rule that a new source follows or breaks by chance. `disagreeing_features`
finds them on the training sources only: Spearman's rho of the feature with the request's
target inside each source, and a feature is out when one source has rho above `margin` and
another below -`margin`.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def disagreeing_features(
    vectors: np.ndarray, target: np.ndarray, sources: np.ndarray, margin: float = 0.05
) -> np.ndarray:
    """Boolean mask over the columns of `vectors` (one row per request): True where two
    sources' within-source rank correlations have opposite signs beyond `margin`."""
    out = np.zeros(vectors.shape[1], dtype=bool)
    names = sorted(set(sources))
    for j in range(vectors.shape[1]):
        rhos = []
        for s in names:
            sel = sources == s
            col = vectors[sel, j]
            if sel.sum() < 10 or np.ptp(col) == 0:
                continue
            rho = spearmanr(col, target[sel]).statistic
            if np.isfinite(rho):
                rhos.append(rho)
        out[j] = bool(rhos) and max(rhos) > margin and min(rhos) < -margin
    return out


def drop_disagreeing(
    x: np.ndarray,
    x_req: np.ndarray,
    n_dense: int,
    req_target: np.ndarray,
    folds: np.ndarray,
    req_source: np.ndarray,
) -> np.ndarray:
    """Booster rows `x` with the dense features (the first `n_dense` columns) that the
    training requests' sources (`folds >= 0`) disagree on set to 0: the trees never split
    on them, so the runtime ignores them too."""
    train = np.where(folds >= 0)[0]
    mask = disagreeing_features(x_req[train, :n_dense], req_target[train], req_source[train])
    out = x.copy()
    out[:, np.where(mask)[0]] = 0.0
    return out
