"""Accuracy metrics of a length predictor. Pure functions of arrays."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import kendalltau, spearmanr

from orchestrator.predict.offline.baselines import bucket_of


def _finite(value: float) -> float:
    return 0.0 if value is None or math.isnan(value) else float(value)


def summarize(
    actual: np.ndarray,
    p50: np.ndarray,
    p90: np.ndarray,
    edges: tuple[int, ...],
    latencies_s: np.ndarray | None = None,
) -> dict[str, float]:
    """Kendall tau-b and Spearman rho of p50 vs actual tokens, MAE of log1p tokens, p50 / p90
    coverage (share of actuals at or below), 5-bucket accuracy, latency p50 / p99 in ms.
    A constant predictor has tau = rho = 0 (ties), not NaN."""
    actual = np.asarray(actual, dtype=np.float64)
    p50 = np.asarray(p50, dtype=np.float64)
    p90 = np.asarray(p90, dtype=np.float64)
    const = len(np.unique(p50)) < 2
    out = {
        "n": float(len(actual)),
        "kendall_tau": 0.0 if const else _finite(kendalltau(p50, actual).statistic),
        "spearman_rho": 0.0 if const else _finite(spearmanr(p50, actual).statistic),
        "mae_log": float(np.mean(np.abs(np.log1p(p50) - np.log1p(actual)))),
        "p50_coverage": float(np.mean(actual <= p50)),
        "p90_coverage": float(np.mean(actual <= p90)),
        "bucket_accuracy": float(np.mean(bucket_of(p50, edges) == bucket_of(actual, edges))),
    }
    if latencies_s is not None and len(latencies_s):
        lat = np.asarray(latencies_s) * 1e3
        out["latency_p50_ms"] = float(np.percentile(lat, 50))
        out["latency_p99_ms"] = float(np.percentile(lat, 99))
    return out
