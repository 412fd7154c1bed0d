"""The core fit's LightGBM boosters (quantile, squared error, within-source ranker) and the
weighted quantile the conformal step uses."""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from orchestrator.predict.features import FEATURE_NAMES
from orchestrator.predict.offline.bagging import source_bagged
from orchestrator.predict.offline.config import TrainConfig
from orchestrator.predict.offline.ranker import rank_booster
from orchestrator.predict.offline.table import TRAFFIC_SOURCE


def lgb_params(cfg: TrainConfig, **extra: Any) -> dict[str, Any]:
    params = {
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.num_leaves,
        "min_data_in_leaf": cfg.min_data_in_leaf,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": cfg.seed,
        "num_threads": cfg.threads,
        "deterministic": True,
        "force_row_wise": True,
        "verbose": -1,
    }
    if cfg.linear_tree:
        params["linear_tree"] = True
    params.update(extra)
    return params


# direction of the p50 in each explicit length-request feature (`monotone_requests`)
MONOTONE_REQUESTS = {
    "log_requested_tokens": 1,
    "req_words": 1,
    "req_sentences": 1,
    "req_paragraphs": 1,
    "req_items": 1,
    "cue_long": 1,
    "cue_brief": -1,
}


def monotone_constraints(width: int) -> list[int]:
    """One LightGBM constraint per booster input (dense features first, ridges last)."""
    out = [0] * width
    for i, name in enumerate(FEATURE_NAMES):
        out[i] = MONOTONE_REQUESTS.get(name, 0)
    return out


def quantile_booster(
    cfg: TrainConfig,
    x: np.ndarray,
    y: np.ndarray,
    alpha: float,
    weight: np.ndarray | None,
    init: np.ndarray | None = None,
) -> lgb.Booster:
    if alpha == 0.5 and cfg.monotone_requests:
        params = lgb_params(
            cfg, objective="regression", monotone_constraints=monotone_constraints(x.shape[1])
        )
    elif alpha == 0.5 and cfg.p50_objective == "regression":
        params = lgb_params(cfg, objective="regression")
    else:
        params = lgb_params(cfg, objective="quantile", alpha=alpha)
    data = lgb.Dataset(x, y, weight=weight, init_score=init, free_raw_data=True)
    return lgb.train(params, data, num_boost_round=cfg.rounds)


def median_booster(
    cfg: TrainConfig,
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    sources: np.ndarray,
    init: np.ndarray | None = None,
) -> lgb.Booster:
    """The p50 booster: alpha-0.5 quantile, squared error or a within-source ranker
    (`init`: a fixed per-row offset the trees learn beside; their output excludes it)."""
    if cfg.p50_objective == "rank":
        return rank_booster(lgb_params(cfg), cfg.rounds, x, y, weight, sources)
    if cfg.p50_source_bag:
        bagged = source_bagged(
            lambda rows: quantile_booster(
                cfg, x[rows], y[rows], 0.5, weight[rows], None if init is None else init[rows]
            ),
            sources,
            frozenset({TRAFFIC_SOURCE}),
            leave=cfg.p50_bag_leave,
            full=cfg.p50_bag_full,
            largest=cfg.p50_bag_largest,
        )
        if bagged is not None:
            return bagged
    return quantile_booster(cfg, x, y, 0.5, weight, init)


def weighted_quantile(values: np.ndarray, q: float, weight: np.ndarray | None = None) -> float:
    """The q-quantile of `values` under non-negative weights (the smallest v with F(v) >= q)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return 0.0
    if weight is None:
        return float(np.quantile(values, q))
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(np.asarray(weight, dtype=np.float64)[order])
    if cum[-1] <= 0:
        return float(np.quantile(values, q))
    k = int(np.searchsorted(cum, q * cum[-1], side="left"))
    return float(values[order][min(k, len(values) - 1)])
