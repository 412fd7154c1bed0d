"""Source-bagged p50 booster: the mean of boosters each fitted without one training source.

Out of source, what carries is what the training sources agree on. Each bag leaves one
training source out, so a within-source contrast that only one source teaches (alpaca_eval's
short answers to pasted "Input:" texts, GSM8K's length slope) moves one bag of K, not the
mean. The K boosters are merged into one LightGBM model (every tree kept, leaf values x 1/K:
its output is their mean), so the artifact and the runtime are unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import combinations

import lightgbm as lgb
import numpy as np

_LEAF = re.compile(r"^leaf_value=(.*)$")
_TREE = re.compile(r"^Tree=\d+$")
MIN_SOURCES = 3  # with fewer, a bag would hold one source: the plain booster instead


def _split(model: str) -> tuple[list[str], list[list[str]], list[str]]:
    """A model string's header lines, its trees (lines each) and what follows them."""
    lines = model.split("\n")
    first = next(i for i, ln in enumerate(lines) if _TREE.match(ln))
    end = lines.index("end of trees")
    trees: list[list[str]] = []
    for ln in lines[first:end]:
        if _TREE.match(ln):
            trees.append([])
        trees[-1].append(ln)
    return lines[:first], trees, lines[end:]


def _feature_infos(headers: list[list[str]]) -> str:
    """Per feature, the first part's range that is not "none" (a feature constant in one bag)."""
    rows = [next(ln for ln in h if ln.startswith("feature_infos=")) for h in headers]
    parts = [row.split("=", 1)[1].split(" ") for row in rows]
    merged = [next((p[i] for p in parts if p[i] != "none"), "none") for i in range(len(parts[0]))]
    return "feature_infos=" + " ".join(merged)


def merge_weighted(boosters: list[lgb.Booster], weights: list[float]) -> lgb.Booster:
    """One booster whose output is sum_k weights[k] x boosters[k]'s output (same inputs, one
    output; every tree kept, its leaf values scaled by its part's weight)."""
    if len(boosters) == 1 and weights[0] == 1.0:
        return boosters[0]
    split = [_split(b.model_to_string()) for b in boosters]
    header = [
        _feature_infos([s[0] for s in split]) if ln.startswith("feature_infos=") else ln
        for ln in split[0][0]
        if not ln.startswith("tree_sizes=")  # bytes per tree: no longer true; read in turn
    ]
    body: list[str] = []
    n = 0
    for (_, trees, _), scale in zip(split, weights, strict=True):
        for tree in trees:
            for ln in tree:
                m = _LEAF.match(ln)
                if _TREE.match(ln):
                    ln = f"Tree={n}"
                    n += 1
                elif m is not None:
                    values = np.asarray(m.group(1).split(" "), dtype=np.float64) * scale
                    ln = "leaf_value=" + " ".join(repr(float(v)) for v in values)
                body.append(ln)
    return lgb.Booster(model_str="\n".join(header + body + split[0][2]))


def merge_mean(boosters: list[lgb.Booster]) -> lgb.Booster:
    """One booster whose output is the mean of `boosters`' outputs (same inputs, one output)."""
    return merge_weighted(boosters, [1.0 / len(boosters)] * len(boosters))


def source_bagged(
    fit: Callable[[np.ndarray], lgb.Booster],
    sources: np.ndarray,
    keep: frozenset[str],
    leave: int = 1,
    full: float = 0.0,
    largest: bool = False,
) -> lgb.Booster | None:
    """The merged mean of `fit(rows)` over bags that each leave `leave` training sources out
    (every combination; sources in `keep`, e.g. a deployment's own traffic, are never left
    out); with `full` > 0 the fit on every row joins with that weight (the bags share the
    rest). `largest`: one bag only, without the source with the most rows. None when fewer
    than `MIN_SOURCES` sources can be left out."""
    names = sorted(set(sources) - keep)
    if len(names) < MIN_SOURCES or not 1 <= leave < len(names):
        return None
    if largest:
        outs = [(max(names, key=lambda n: int(np.sum(sources == n))),)]
    else:
        outs = list(combinations(names, leave))
    parts = [fit(~np.isin(sources, list(out))) for out in outs]
    weights = [(1.0 - full) / len(parts)] * len(parts)
    if full > 0.0:
        parts.append(fit(np.ones(len(sources), dtype=bool)))
        weights.append(full)
    return merge_weighted(parts, weights)
