"""Soft targets: a p95 latency target and the cost target rank candidates, refuse nothing,
unless the tenant's policy lists an action for them (`on_slo_unmeetable`, `on_cost_target`)."""

from __future__ import annotations

from orchestrator.concepts import LatencySLO
from orchestrator.replica_model import LiveState
from orchestrator.routing import RouteRequest, TenantRules, decide, with_live
from tests.routing.routing_helpers import EASY, HARD, LLAMA, SATURATED


def test_a_ttft_no_profile_can_meet_is_served_on_the_cheapest(gpu_views):
    d = decide(RouteRequest(prompt_tokens=200), EASY, TenantRules(slo=LatencySLO(ttft_p95_ms=1.0)),
               gpu_views)  # fmt: skip
    assert d.action == "route" and d.rejection is None
    assert d.misses == ("slo_ttft",)
    costs = {c.profile: c.estimate.cost_usd for c in d.candidates if c.estimate}
    assert costs[d.profile] == min(costs.values())  # a miss anyway: nothing spent on it
    assert any(s.startswith("slo: slo_ttft") for s in d.steps)
    assert "misses slo_ttft (soft)" in d.reason


def test_a_long_prompt_over_the_ttft_target_is_served(gpu_views):
    rules = TenantRules(slo=LatencySLO(ttft_p95_ms=50.0))
    d = decide(RouteRequest(prompt_tokens=20_000, model="llama-3.1-8b-instruct"), EASY, rules,
               gpu_views)  # fmt: skip
    assert d.profile is not None and "slo_ttft" in d.misses


def test_the_profile_meeting_the_slo_wins_over_a_cheaper_saturated_one(gpu_views):
    views = with_live(gpu_views, {"llama8b-fp8-ngram": SATURATED})
    rules = TenantRules(slo=LatencySLO(ttft_p95_ms=2000, tpot_p95_ms=40))
    d = decide(LLAMA, EASY, rules, views)
    assert d.profile == "llama8b-bf16-eagle3" and d.misses == ()
    idle = decide(LLAMA, EASY, rules, gpu_views)
    assert idle.profile == "llama8b-fp8-ngram"  # cheaper when it can meet the target


def test_under_load_the_smallest_overshoot_of_those_meeting_it_idle_wins(gpu_views):
    busy = LiveState(replicas_running=1, requests_in_flight=64, requests_queued=40)
    views = with_live(gpu_views, {"llama8b-fp8-ngram": SATURATED, "llama8b-bf16-eagle3": busy})
    rules = TenantRules(slo=LatencySLO(ttft_p95_ms=300))
    d = decide(LLAMA, EASY, rules, views)
    ttft = {c.profile: c.estimate.ttft_ms for c in d.candidates if c.estimate}
    assert d.misses == ("slo_ttft",) and min(ttft.values()) > 300
    assert d.profile == min(ttft, key=ttft.get) == "llama8b-bf16-eagle3"


def test_explicit_reject_action_refuses_with_503_naming_it(gpu_views):
    views = with_live(gpu_views, {"llama8b-fp8-ngram": SATURATED, "llama8b-bf16-eagle3": SATURATED})
    rules = TenantRules(slo=LatencySLO(ttft_p95_ms=2000), on_slo_unmeetable=("reject",))
    d = decide(LLAMA, EASY, rules, views)
    assert d.rejection.status == 503 and d.rejection.code == "latency_slo_unmeetable"
    assert "actions.on_slo_unmeetable: reject" in d.rejection.message
    served = decide(LLAMA, EASY, rules.model_copy(update={"on_slo_unmeetable": ()}), views)
    assert served.profile is not None and served.misses


def test_cost_target_below_every_price_serves_the_cheapest_and_records_the_miss(gpu_views):
    d = decide(RouteRequest(prompt_tokens=200), EASY, TenantRules(cost_target_usd=1e-9),
               gpu_views)  # fmt: skip
    costs = {c.profile: c.estimate.cost_usd for c in d.candidates if c.estimate}
    assert d.action == "route" and costs[d.profile] == min(costs.values())
    assert d.misses == ("cost_target",)
    assert d.max_tokens > EASY.p90_output_tokens  # a soft target never truncates
    assert any(s.startswith("cost target:") for s in d.steps)


def test_soft_cost_target_downgrades_to_a_cheaper_profile_never_refuses(gpu_views):
    d = decide(RouteRequest(prompt_tokens=200), HARD, TenantRules(cost_target_usd=1e-9),
               gpu_views)  # fmt: skip
    assert d.action == "downgrade" and d.misses == ("cost_target",)  # closer, still over
    assert d.max_tokens > HARD.p90_output_tokens  # never capped for a soft target
    keep = TenantRules(cost_target_usd=1e-9, on_cost_cap=("cap_tokens", "reject"))
    d = decide(RouteRequest(prompt_tokens=200), HARD, keep, gpu_views)
    assert d.action == "route" and d.misses == ("cost_target",)
    assert {c.profile: c.tier for c in d.candidates}[d.profile] in ("large", "frontier")


def test_a_callers_own_target_binds_as_before(gpu_views):
    rules = TenantRules(on_cost_cap=("cap_tokens", "reject"))
    d = decide(RouteRequest(prompt_tokens=200, cost_target_usd=1e-9), EASY, rules, gpu_views)
    assert d.rejection.code == "cost_target_unmet"


def test_cost_cap_still_refuses(gpu_views):
    rules = TenantRules(cost_cap_usd=1e-9, on_cost_cap=("reject",))
    d = decide(RouteRequest(prompt_tokens=200), EASY, rules, gpu_views)
    assert d.rejection.status == 402 and d.rejection.code == "cost_cap_exceeded"


def test_explicit_cost_target_reject(gpu_views):
    rules = TenantRules(on_cost_target=("reject",))
    d = decide(RouteRequest(prompt_tokens=200, cost_target_usd=1e-9), EASY, rules, gpu_views)
    assert d.rejection.code == "cost_target_unmet"
    assert "actions.on_cost_target: reject" in d.rejection.message


def test_soft_target_downgrades_when_the_tenant_allows_it(gpu_views):
    llama = next(v for v in gpu_views if v.name == "llama8b-fp8-ngram")
    # enough for 1500 answer tokens on llama, not for the large profiles' reasoning on top
    target = 200 * llama.prices.input_usd_per_token + 1600 * llama.prices.output_usd_per_token
    d = decide(RouteRequest(prompt_tokens=200), HARD, TenantRules(cost_target_usd=target),
               gpu_views)  # fmt: skip
    assert d.action == "downgrade" and d.profile == "llama8b-fp8-ngram" and d.misses == ()
    # without `downgrade` among its actions, the class's tier is kept and the miss recorded
    keep = TenantRules(cost_target_usd=target, on_cost_cap=("cap_tokens", "reject"))
    d = decide(RouteRequest(prompt_tokens=200), HARD, keep, gpu_views)
    assert d.action == "route" and d.misses == ("cost_target",)
    assert {c.profile: c.tier for c in d.candidates}[d.profile] in ("large", "frontier")
