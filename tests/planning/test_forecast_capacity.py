"""Forecast (damped-trend Holt) and per-replica capacity at the SLO."""

from __future__ import annotations

import pytest
from planning_helpers import catalog, policy, profile

from orchestrator.concepts import LatencySLO
from orchestrator.planning.capacity import planning_slo, replica_capacity
from orchestrator.planning.forecast import holt_forecast, holt_update, planning_demand
from orchestrator.planning.types import HoltState, PlannerKnobs

K = PlannerKnobs()


def feed(values, step=10.0, state=None):
    state = state or HoltState()
    for i, v in enumerate(values):
        state = holt_update(state, v, i * step, K)
    return state


def test_constant_load_is_tracked_without_trend():
    s = feed([100.0] * 30)
    assert s.level == pytest.approx(100.0) and s.slope == pytest.approx(0.0)
    assert holt_forecast(s, 120, K) == pytest.approx(100.0)


def test_ramp_is_extrapolated_but_damped():
    s = feed([10.0 * i * 10 for i in range(60)])  # +10 per second
    assert s.slope == pytest.approx(10.0, rel=0.15)
    ahead = holt_forecast(s, 60, K)
    assert s.level + 400 < ahead < s.level + 600  # ~ 60 s of trend, slightly damped
    far = holt_forecast(s, 3600, K)
    assert far < s.level + 10.0 * K.trend_damping_s * 1.1  # never more than ~tau of trend


def test_irregular_steps_and_a_restart_gap():
    s = feed([50.0] * 10)
    s = holt_update(s, 500.0, s.t_s + 3600, K)  # an hour later: the old level is forgotten
    assert s.level == pytest.approx(500.0, rel=0.01)
    assert holt_update(s, 0.0, s.t_s, K) == s  # the same instant twice changes nothing


def test_falling_forecast_never_plans_below_the_level():
    s = feed([1000.0 - 10 * i for i in range(40)])
    assert holt_forecast(s, 120, K) < s.level
    assert planning_demand(s, 120, K) == pytest.approx(s.level)


def test_capacity_without_slo_is_the_catalog_figure():
    prof = catalog(profile("a")).profile("a")
    cap = replica_capacity(prof, LatencySLO(), prompt_tokens=500)
    assert cap.output_tps == pytest.approx(1000.0) and cap.concurrency == 16
    assert cap.meets_slo and cap.bound_by == "max_concurrency"


def test_capacity_shrinks_with_a_tighter_tpot_slo():
    prof = catalog(profile("a")).profile("a")
    loose = replica_capacity(prof, LatencySLO(tpot_p95_ms=15.0), prompt_tokens=500)
    tight = replica_capacity(prof, LatencySLO(tpot_p95_ms=12.0), prompt_tokens=500)
    assert tight.output_tps < loose.output_tps < 1000.0
    assert tight.tpot_ms <= 12.0 and tight.bound_by == "tpot"
    hopeless = replica_capacity(prof, LatencySLO(tpot_p95_ms=5.0), prompt_tokens=500)
    assert not hopeless.meets_slo and hopeless.concurrency == 1


def test_ttft_slo_limits_long_prompts():
    prof = catalog(profile("a")).profile("a")
    cap = replica_capacity(prof, LatencySLO(ttft_p95_ms=700.0), prompt_tokens=8000)
    assert cap.bound_by == "ttft" and cap.ttft_ms <= 700.0 and cap.concurrency < 16


def test_planning_slo_is_the_tightest_of_the_tenants_that_may_use_the_profile():
    cat = catalog(profile("a"), profile("b"))
    pol = policy(
        cat,
        """
        defaults: {latency: {tpot_p95_ms: 80}}
        default_tenant:
          classes: {reasoning: {latency: {tpot_p95_ms: 30, ttft_p95_ms: 900}}}
          denied_profiles: [b]
        """,
    )
    assert planning_slo(pol, "a") == LatencySLO(tpot_p95_ms=30, ttft_p95_ms=900)
    assert planning_slo(pol, "b") == LatencySLO()
