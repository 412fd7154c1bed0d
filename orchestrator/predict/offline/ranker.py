"""A ranking objective for the p50 booster: learn the order of lengths inside each source.

Kendall tau counts pairs; a quantile loss counts distance to the median. `rank_booster`
trains LightGBM's listwise cross-entropy ranker (`rank_xendcg`) on queries of rows drawn from
one source at a time (so a pair never crosses sources and a source's level never matters),
with each row's within-source length decile as its relevance, then maps the score to log
length with a weighted least-squares line and folds that line into the trees' leaves: the
result is an ordinary booster whose output is a log length (the artifact and the runtime
are unchanged).
"""

from __future__ import annotations

import re
from typing import Any

import lightgbm as lgb
import numpy as np

QUERY_ROWS = 64
LEVELS = 10
_LEAF = re.compile(r"^leaf_value=(.*)$")


def _queries(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row order (each group's rows shuffled, groups in turn) and the query sizes."""
    rng = np.random.default_rng(seed)
    order: list[np.ndarray] = []
    sizes: list[int] = []
    for g in sorted(set(groups)):
        rows = rng.permutation(np.where(groups == g)[0])
        for start in range(0, len(rows), QUERY_ROWS):
            chunk = rows[start : start + QUERY_ROWS]
            if len(chunk) >= 2:
                order.append(chunk)
                sizes.append(len(chunk))
    return np.concatenate(order), np.asarray(sizes)


def _levels(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each row's length decile inside its group (0 shortest .. LEVELS-1 longest)."""
    out = np.zeros(len(y), dtype=np.int64)
    for g in set(groups):
        sel = groups == g
        ranks = np.argsort(np.argsort(y[sel], kind="stable"), kind="stable")
        out[sel] = (ranks * LEVELS) // max(1, sel.sum())
    return out


def fold_line(booster: lgb.Booster, intercept: float, slope: float) -> lgb.Booster:
    """The booster whose output is `intercept + slope * booster(x)` (leaf values rewritten)."""
    # tree_sizes (bytes per tree) would no longer match: without it the trees are read in turn
    lines = [ln for ln in booster.model_to_string().split("\n") if not ln.startswith("tree_sizes=")]
    first = True
    for i, line in enumerate(lines):
        m = _LEAF.match(line)
        if m is None:
            continue
        values = np.asarray(m.group(1).split(" "), dtype=np.float64) * slope
        if first:
            values += intercept
            first = False
        lines[i] = "leaf_value=" + " ".join(repr(float(v)) for v in values)
    return lgb.Booster(model_str="\n".join(lines))


def rank_booster(
    params: dict[str, Any],
    rounds: int,
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    groups: np.ndarray,
) -> lgb.Booster:
    """A ranker (LightGBM `params`, objective set here) on within-group deciles of `y`,
    mapped to `y`'s scale by a weighted line."""
    order, sizes = _queries(groups, int(params.get("seed", 0)))
    labels = _levels(y, groups)
    params = {**params, "objective": "rank_xendcg"}
    params.pop("bagging_freq", None)  # bagging would split the queries
    params.pop("bagging_fraction", None)
    data = lgb.Dataset(x[order], labels[order], group=sizes, free_raw_data=True)
    booster = lgb.train(params, data, num_boost_round=rounds)
    score = booster.predict(x, num_threads=1)
    design = np.column_stack([np.ones(len(score)), score])
    sw = np.sqrt(weight)
    a, b = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)[0]
    return fold_line(booster, float(a), float(b))
