"""Metric definitions on a hand-made outcome."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.simulate.cluster import Outcome
from orchestrator.simulate.metrics import (
    Targets,
    matched_latency,
    prediction_error,
    summarize,
)


def _outcome() -> Outcome:
    return Outcome(
        profile=np.array([0, 1, -1, 1], dtype=np.int16),
        ttft_s=np.array([0.1, 0.3, np.nan, 0.1]),
        e2e_s=np.array([1.1, 2.3, np.nan, 5.1]),
        tokens=np.array([11, 21, 0, 11]),
        truncated=np.array([False, False, False, True]),
        reject_reason=[None, None, "latency_slo_unmeetable", None],
        replica_cost=np.array([2.0, 4.0]),
        replica_hours=np.array([1.0, 0.5]),
    )


def _targets() -> Targets:
    inf = np.inf
    return Targets(
        ttft_s=np.array([0.2, 0.2, 0.2, inf]),
        tpot_s=np.array([0.2, 0.2, 0.2, 0.2]),
        e2e_s=np.array([inf, inf, inf, 4.0]),
        need_rank=np.array([0, 2, 0, 3]),
        tenants=np.array(["a", "a", "b", "b"]),
        output_tokens=np.array([10, 20, 30, 40]),
        predicted_p50=np.array([10, 10, 30, 20]),
        predicted_p90=np.array([20, 20, 40, 30]),
        success=np.array(
            [
                [0.8, 0.9, 0.95, 1.0],
                [0.2, 0.4, 0.6, 0.8],
                [0.5, 0.6, 0.7, 0.8],
                [np.nan] * 4,  # no prediction: left out of expected quality
            ]
        ),
    )


def test_summary():
    m = summarize(_outcome(), _targets(), ["small", "big"], np.array([0, 2]))
    # request 0 meets all; 1 misses TTFT; 2 rejected (a miss); 3 misses e2e
    assert m["slo_attainment"] == pytest.approx(0.25)
    assert m["slo_attainment_per_tenant"]["a"]["slo_attainment"] == pytest.approx(0.5)
    # quality: 0 (needs 0, tier 0) yes; 1 (needs 2, tier 2) yes; 2 rejected; 3 (needs 3) no
    assert m["quality"] == pytest.approx(0.5)
    assert m["cost_usd"] == 6.0
    assert m["output_tokens"] == 43
    assert m["cost_per_million_output_tokens"] == pytest.approx(6.0 / 43 * 1e6)
    assert m["rejected"] == 1 and m["rejected_by_reason"] == {"latency_slo_unmeetable": 1}
    assert m["tpot_ms"]["p50"] == pytest.approx(100.0)  # (1.1-0.1)/10, (2.3-0.3)/20, 5/10
    assert m["truncated"] == 1
    assert m["replica_hours"] == {"small": 1.0, "big": 0.5}
    # expected quality: request 0 on tier 0 (0.8), 1 on tier 2 (0.6), 2 refused (0); the
    # catalog's top tier is 2: always-strongest gets 0.95, 0.6, 0.7
    assert m["expected_quality"] == pytest.approx((0.8 + 0.6 + 0.0) / 3)
    assert m["expected_quality_strongest"] == pytest.approx((0.95 + 0.6 + 0.7) / 3)
    assert m["quality_share"] == pytest.approx(1.4 / 2.25)
    tenant_a = m["slo_attainment_per_tenant"]["a"]
    assert tenant_a["quality_share"] == pytest.approx(1.4 / 1.55)


def test_prediction_error():
    e = prediction_error(_targets())
    assert e["p90_coverage"] == pytest.approx(0.75)  # only the last (40 > 30) misses
    assert e["p50_median_relative_error"] == pytest.approx(0.25)  # median of 0, .5, 0, .5
    # ranks of p50 (1.5, 1.5, 4, 3) against (1, 2, 3, 4): 3.5 / sqrt(4.5 * 5)
    assert e["p50_spearman"] == pytest.approx(3.5 / (4.5 * 5) ** 0.5)


def test_saving_against_the_cheapest_baseline_at_our_quality():
    from orchestrator.simulate.metrics import saving_at_quality

    pols = {
        "ours": {"cost_usd": 10.0, "quality": 0.80},
        "oracle": {"cost_usd": 5.0, "quality": 0.99},  # never a baseline
        "static": {"cost_usd": 30.0, "quality": 1.0},
        "static-floor": {"cost_usd": 15.0, "quality": 0.795},  # within one point
        "routellm": {"cost_usd": 12.0, "quality": 0.70},  # cheaper, but worse quality
    }
    assert saving_at_quality(pols) == ("static-floor", 1.5)
    assert saving_at_quality({"ours": {"cost_usd": 1.0, "quality": 1.0}}) is None


def test_judged_attainment_leaves_out_policy_refusals():
    """Beside the share of all requests, the share the server's attainment judges: a 4xx
    refusal (a cost cap the policy sets) is left out, a 5xx refusal stays a miss."""
    out = _outcome()
    out.reject_reason = [None, None, "cost_cap_exceeded", None]
    out.reject_status = np.array([0, 0, 402, 0], dtype=np.int16)
    m = summarize(out, _targets(), ["small", "big"], np.array([0, 2]))
    assert m["slo_attainment"] == pytest.approx(0.25)  # unchanged: every request counts
    assert m["slo_judged"] == 3
    assert m["slo_attainment_judged"] == pytest.approx(1 / 3)
    assert m["slo_attainment_per_tenant"]["b"]["slo_attainment_judged"] == pytest.approx(0.0)
    out.reject_status = np.array([0, 0, 503, 0], dtype=np.int16)
    m = summarize(out, _targets(), ["small", "big"], np.array([0, 2]))
    assert m["slo_judged"] == 4 and m["slo_attainment_judged"] == pytest.approx(0.25)
    out.reject_reason = [None, None, "queue_timeout", None]  # a 429 for capacity: a miss
    out.reject_status = np.array([0, 0, 429, 0], dtype=np.int16)
    m = summarize(out, _targets(), ["small", "big"], np.array([0, 2]))
    assert m["slo_judged"] == 4 and m["slo_attainment_judged"] == pytest.approx(0.25)


def _served(e2e: list[float]) -> Outcome:
    """An outcome where NaN marks a refusal."""
    e2e_s = np.array(e2e)
    refused = np.isnan(e2e_s)
    return Outcome(
        profile=np.where(refused, -1, 0).astype(np.int16),
        ttft_s=e2e_s / 10,
        e2e_s=e2e_s,
        tokens=np.where(refused, 0, 10),
        truncated=np.zeros(len(e2e), dtype=bool),
        reject_reason=["queue_timeout" if r else None for r in refused],
    )


def test_matched_latency_compares_the_requests_every_policy_served():
    # the constant refuses the slow request 2 and so looks faster on its own served mean;
    # matched on requests 0 and 1 (what both served) the predictor is faster
    found = matched_latency(
        {
            "predictor": _served([1.0, 2.0, 9.0, np.nan]),
            "constant": _served([2.0, 4.0, np.nan, 1.0]),
        },
        penalty_s=20.0,
    )
    assert found["predictor"]["served_by_all"] == found["constant"]["served_by_all"] == 2
    assert found["predictor"]["e2e_mean_matched_ms"] == pytest.approx(1500.0)
    assert found["constant"]["e2e_mean_matched_ms"] == pytest.approx(3000.0)
    assert found["constant"]["ttft_mean_matched_ms"] == pytest.approx(300.0)
    # every request counted, a refusal at the penalty
    assert found["predictor"]["e2e_mean_refusal_penalty_ms"] == pytest.approx(8000.0)
    assert found["constant"]["e2e_mean_refusal_penalty_ms"] == pytest.approx(6750.0)


def test_matched_latency_refuses_outcomes_of_different_replays():
    with pytest.raises(ValueError, match="different replays"):
        matched_latency({"a": _served([1.0]), "b": _served([1.0, 2.0])}, penalty_s=1.0)
