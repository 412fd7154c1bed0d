"""Metric definitions."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.predict.offline.baselines import bucket_of
from orchestrator.predict.offline.metrics import summarize

EDGES = (10, 100, 300, 1000)


def test_perfect_ranking_and_coverage():
    actual = np.array([5, 50, 200, 600, 2000])
    m = summarize(actual, actual, actual * 2, EDGES, np.array([0.001, 0.002]))
    assert m["kendall_tau"] == pytest.approx(1.0)
    assert m["spearman_rho"] == pytest.approx(1.0)
    assert m["mae_log"] == 0.0
    assert m["p50_coverage"] == 1.0 and m["p90_coverage"] == 1.0
    assert m["bucket_accuracy"] == 1.0
    assert m["latency_p50_ms"] == pytest.approx(1.5)


def test_constant_prediction_has_zero_rank_correlation():
    actual = np.array([5, 50, 200, 600])
    m = summarize(actual, np.full(4, 100), np.full(4, 300), EDGES)
    assert m["kendall_tau"] == 0.0 and m["spearman_rho"] == 0.0
    assert m["p50_coverage"] == 0.5 and m["p90_coverage"] == 0.75


def test_buckets_are_right_closed():
    assert list(bucket_of(np.array([0, 10, 11, 100, 1000, 1001]), EDGES)) == [0, 0, 1, 1, 3, 4]
