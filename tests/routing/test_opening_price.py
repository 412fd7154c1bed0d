"""The price of opening a profile: a closed profile is not started for a request an open one
serves at the tier it needs, unless the demand it would get spreads the price thin."""

from __future__ import annotations

import pytest

from orchestrator import pricing
from orchestrator.replica_model import LiveState, timing
from orchestrator.routing import RouteRequest, TenantRules, decide, with_live
from orchestrator.signals.opening import OpeningDemand, declined_opening
from tests.routing.routing_helpers import EASY, HARD

REQ = RouteRequest(prompt_tokens=200)
SEVENTY = "llama70b-gptq-draft"


def _closed(views, **opening_usd):
    live = {n.replace("_", "-"): LiveState(replicas_running=0, opening_usd=usd)
            for n, usd in opening_usd.items()}  # fmt: skip
    return with_live(views, live)


def test_opening_cost_is_start_up_and_hold_over_the_demand():
    # $3.60/hour for 120 s start-up + 120 s hold = $0.24, all on one request of a trickle
    assert pricing.opening_cost_usd(3.6, 120, 120, 0.0) == pytest.approx(0.24)
    assert pricing.opening_cost_usd(3.6, 120, 120, 1 / 240) == pytest.approx(0.24)
    # 2 requests/s over the 240 s: 480 requests share it
    assert pricing.opening_cost_usd(3.6, 120, 120, 2.0) == pytest.approx(0.24 / 480)
    assert pricing.opening_cost_usd(0.0, 120, 120, 0.0) == 0.0


def test_an_open_profile_serves_what_a_closed_one_would_be_opened_for(gpu_views):
    assert decide(REQ, HARD, TenantRules(), gpu_views).profile == SEVENTY  # open: cheapest
    views = _closed(gpu_views, llama70b_gptq_draft=0.26)
    d = decide(REQ, HARD, TenantRules(), views)
    assert d.action == "route" and d.profile != SEVENTY
    lost = {c.profile: c.lost_because for c in d.candidates}
    assert lost[SEVENTY][0] == "opening_price"
    assert any(s.startswith(f"open: {SEVENTY}") for s in d.steps)
    assert declined_opening(d) == SEVENTY


def test_demand_that_spreads_the_price_thin_opens_it(gpu_views):
    views = _closed(gpu_views, llama70b_gptq_draft=1e-7)
    d = decide(REQ, HARD, TenantRules(), views)
    assert d.profile == SEVENTY and declined_opening(d) is None


def test_a_closed_profile_opens_when_no_open_one_has_the_tier(gpu_views):
    rules = TenantRules(quality_floor="frontier", reasoning_allowed=False)  # qwen3-235b only
    views = _closed(gpu_views, qwen3_235b_fp8=1.17)
    d = decide(REQ, EASY, rules, views)
    assert d.action == "route" and d.profile == "qwen3-235b-fp8"


def test_of_two_closed_profiles_the_cheaper_opening_wins(gpu_views):
    rules = TenantRules(quality_floor="frontier")
    assert decide(REQ, HARD, rules, gpu_views).profile == "qwen3-235b-fp8"  # both open
    views = _closed(gpu_views, qwen3_235b_fp8=1.17)
    assert decide(REQ, HARD, rules, views).profile == "deepseek-r1-nvfp4-mtp"  # the open one
    views = _closed(gpu_views, qwen3_235b_fp8=1.17, deepseek_r1_nvfp4_mtp=0.02)
    assert decide(REQ, HARD, rules, views).profile == "deepseek-r1-nvfp4-mtp"


def test_a_starting_replica_waits_less_than_a_cold_start(gpu_views):
    perf = gpu_views[0].performance
    cold = timing(perf, LiveState(replicas_running=0), 100)
    starting = timing(perf, LiveState(replicas_running=0, start_wait_ms=5_000), 100)
    assert cold.queue_wait_ms == perf.cold_start_ms
    assert starting.queue_wait_ms == 5_000


def test_opening_demand_counts_declines_in_its_window(gpu_views):
    d = decide(REQ, HARD, TenantRules(), _closed(gpu_views, llama70b_gptq_draft=0.26))
    meter = OpeningDemand(window_s=100.0)
    for t in range(10):
        meter.record(d, float(t))
    assert meter.rps(SEVENTY, 10.0) == pytest.approx(0.1)
    assert meter.rps(SEVENTY, 150.0) == 0.0
    assert meter.rps("gpt-oss-20b-mxfp4", 10.0) == 0.0
