"""Per-source target transforms for the core fit: what of each source's lengths is learned.

The core fit removes each training source's mean log length (its answering models' style, its
task mix). A source's spread differs too (o3-mini's answers to hard prompts range wider than
GSM8K's worked solutions), and a source with a wide spread dominates a squared or quantile
loss. `rescale_sources` puts every source at the mean spread ("std") or keeps only the order
of its requests ("rank": weighted normal scores), so the ranking inside each source is what
the boosters learn. Pure functions of arrays.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

SCALE_MODES = ("none", "std", "rank")


def _weighted_std(values: np.ndarray, weight: np.ndarray) -> float:
    mean = float(np.average(values, weights=weight))
    return float(np.sqrt(np.average((values - mean) ** 2, weights=weight)))


def normal_scores(values: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Each value's weighted mid-rank mapped through the standard normal quantile (ties share
    their mid-rank)."""
    order = np.argsort(values, kind="stable")
    w = np.asarray(weight, dtype=np.float64)[order]
    cum = np.cumsum(w)
    mid = (cum - 0.5 * w) / cum[-1]
    sorted_vals = values[order]
    # ties: one score per distinct value (the mean mid-rank of its rows)
    uniq, first = np.unique(sorted_vals, return_index=True)
    sums = np.add.reduceat(mid * w, first)
    mass = np.add.reduceat(w, first)
    scores_sorted = norm.ppf(
        np.clip((sums / mass)[np.searchsorted(uniq, sorted_vals)], 1e-4, 1 - 1e-4)
    )
    out = np.empty(len(values))
    out[order] = scores_sorted
    return out


def rescale_sources(
    yt: np.ndarray,
    sources: np.ndarray,
    train_rows: np.ndarray,
    weight: np.ndarray,
    mode: str,
) -> tuple[np.ndarray, dict[str, float]]:
    """Targets with each training source's spread set to the mean spread around its mean
    (`mode` "std") or replaced by normal scores at that spread ("rank"); rows outside
    training keep their value. Returns the targets and each source's original spread."""
    if mode not in SCALE_MODES:
        raise ValueError(f"source_scale must be one of {SCALE_MODES}, got {mode!r}")
    out = np.array(yt, dtype=np.float64)
    names = sorted(set(sources[train_rows]))
    spreads = {
        s: _weighted_std(yt[train_rows & (sources == s)], weight[train_rows & (sources == s)])
        for s in names
    }
    if mode == "none" or not names:
        return out, spreads
    pooled = float(np.mean(list(spreads.values())))
    for s in names:
        sel = train_rows & (sources == s)
        centre = float(np.average(yt[sel], weights=weight[sel]))
        if mode == "std":
            out[sel] = centre + (yt[sel] - centre) * pooled / max(spreads[s], 1e-9)
        else:
            out[sel] = centre + pooled * normal_scores(yt[sel], weight[sel])
    return out, spreads
