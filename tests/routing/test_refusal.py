"""`routing.refusal`: which refusals are demand for capacity, and for which profile."""

from __future__ import annotations

import pytest

from orchestrator.concepts import LatencySLO
from orchestrator.replica_model import LiveState
from orchestrator.routing import TenantRules, decide, with_live
from orchestrator.routing.refusal import intended_profile, overload_shares
from tests.routing.routing_helpers import EASY, LLAMA, SATURATED

SLO = TenantRules(
    slo=LatencySLO(ttft_p95_ms=2000, tpot_p95_ms=40),
    on_cost_cap=("reject",),
    on_slo_unmeetable=("reject",),
)


def live(views, **states: LiveState):
    return with_live(views, {k.replace("_", "-"): v for k, v in states.items()})


def test_saturated_family_is_the_cheapest_profile_it_would_have_used(gpu_views):
    views = live(gpu_views, llama8b_fp8_ngram=SATURATED, llama8b_bf16_eagle3=SATURATED)
    d = decide(LLAMA, EASY, SLO, views)
    assert d.rejection.code == "latency_slo_unmeetable"
    meant = intended_profile(d, views, 200)
    assert meant.profile == "llama8b-fp8-ngram"  # cheaper per token than the H100 one
    assert meant.output_tokens == next(
        c.estimate.output_tokens for c in d.candidates if c.profile == meant.profile
    )


def test_only_the_profile_that_meets_the_slo_when_idle_counts(gpu_views):
    # TPOT 8 ms: the n-gram L40S profile misses it even alone (95 tok/s); EAGLE-3 meets it idle
    rules = TenantRules(
        slo=LatencySLO(tpot_p95_ms=8.0), on_cost_cap=("reject",), on_slo_unmeetable=("reject",)
    )
    views = live(gpu_views, llama8b_bf16_eagle3=SATURATED)
    d = decide(LLAMA, EASY, rules, views)
    assert d.rejection.code == "latency_slo_unmeetable"
    assert intended_profile(d, views, 200).profile == "llama8b-bf16-eagle3"
    # an SLO no replica meets even idle is not demand for capacity
    hopeless = TenantRules(
        slo=LatencySLO(ttft_p95_ms=1.0), on_cost_cap=("reject",), on_slo_unmeetable=("reject",)
    )
    d = decide(LLAMA, EASY, hopeless, gpu_views)
    assert d.rejection.code == "latency_slo_unmeetable"
    assert intended_profile(d, gpu_views, 200) is None


def test_policy_refusals_are_not_capacity(gpu_views):
    views = live(gpu_views, llama8b_fp8_ngram=SATURATED, llama8b_bf16_eagle3=SATURATED)
    broke = TenantRules(remaining_budget_usd=0.0)
    d = decide(LLAMA, EASY, broke, views)
    assert d.rejection.code == "budget_exhausted" and intended_profile(d, views, 200) is None
    capped = SLO.model_copy(update={"cost_cap_usd": 1e-9})
    d = decide(LLAMA, EASY, capped, views)
    assert d.rejection.status != 503 and intended_profile(d, views, 200) is None


def test_no_running_replica_is_demand_for_the_cheapest(gpu_views):
    down = LiveState(replicas_running=0, healthy=False)
    views = live(gpu_views, llama8b_fp8_ngram=down, llama8b_bf16_eagle3=down)
    d = decide(LLAMA, EASY, SLO, views)
    assert d.rejection.code == "no_healthy_profile"
    assert intended_profile(d, views, 200).profile == "llama8b-fp8-ngram"
    routed = decide(LLAMA, EASY, SLO, gpu_views)
    assert routed.profile is not None and intended_profile(routed, gpu_views, 200) is None


def test_overload_shares_follow_request_slots(gpu_views):
    views = live(
        gpu_views,
        llama8b_fp8_ngram=LiveState(replicas_running=3),
        llama8b_bf16_eagle3=LiveState(replicas_running=1),
        gpt_oss_20b_mxfp4=LiveState(replicas_running=0),
    )
    eligible = {"llama8b-fp8-ngram", "llama8b-bf16-eagle3", "gpt-oss-20b-mxfp4"}
    shares = overload_shares(views, eligible)
    slots = {v.name: v.performance.max_concurrency for v in views}
    ngram, eagle = 3 * slots["llama8b-fp8-ngram"], slots["llama8b-bf16-eagle3"]
    assert set(shares) == {"llama8b-fp8-ngram", "llama8b-bf16-eagle3"}
    assert shares["llama8b-fp8-ngram"] == pytest.approx(ngram / (ngram + eagle))
    assert sum(shares.values()) == pytest.approx(1.0)
    assert overload_shares(views, set()) == {}
