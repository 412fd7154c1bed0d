"""`decide`: every branch, on the real GPU catalog (quality tiers) and the local one (load)."""

from __future__ import annotations

import math

import pytest

from orchestrator.concepts import LatencySLO
from orchestrator.replica_model import LiveState
from orchestrator.routing import (
    Decision,
    RouteRequest,
    TenantRules,
    TokenBudget,
    decide,
    with_live,
)
from tests.routing.routing_helpers import EASY, HARD

OPEN = TenantRules()
ENFORCED_TARGET = TenantRules(on_cost_target=("downgrade", "cap_tokens", "reject"))


def _req(**kw) -> RouteRequest:
    kw.setdefault("prompt_tokens", 200)
    return RouteRequest(**kw)


def _by_name(decision: Decision):
    return {c.profile: c for c in decision.candidates}


def _view(views, name):
    return next(v for v in views if v.name == name)


# ---------------------------------------------------------------- quality tiers (GPU catalog)


def test_easy_query_goes_to_cheapest_plain_profile(gpu_views):
    d = decide(_req(), EASY, OPEN, gpu_views)
    assert d.action == "route"
    assert d.profile == "llama8b-fp8-ngram"  # medium tier, lowest price without reasoning
    assert d.reasoning is not None and not d.reasoning.enabled
    costs = {c.profile: c.estimate.cost_usd for c in d.candidates}
    assert costs["llama8b-fp8-ngram"] == min(costs.values())
    assert _by_name(d)["qwen3-235b-fp8"].lost_because == ("not_best",)


def test_hard_reasoning_query_goes_to_strong_reasoning_profile(gpu_views):
    # the whole catalog: a large model answering without 3000 reasoning tokens costs least
    assert decide(_req(), HARD, OPEN, gpu_views).profile == "llama70b-gptq-draft"
    reasoners = tuple(v.name for v in gpu_views if v.name != "llama70b-gptq-draft")
    d = decide(_req(), HARD, TenantRules(allowed_profiles=reasoners), gpu_views)
    assert d.profile == "gpt-oss-20b-mxfp4"  # large tier that reasons, cheapest such
    assert d.reasoning.enabled and d.reasoning.effort == "high"
    assert d.reasoning.request_params == {"reasoning_effort": "high"}
    cands = _by_name(d)
    assert cands["llama8b-fp8-ngram"].lost_because == ("below_class_quality",)
    assert cands["llama8b-bf16-eagle3"].lost_because == ("below_class_quality",)
    # medium tier that can reason, and frontier without reasoning, both qualify but cost more
    assert cands["qwen3-8b-dflash"].lost_because == ("not_best",)
    assert cands["qwen3-235b-fp8"].lost_because == ("not_best",)


def test_tenant_floor_is_never_undercut(gpu_views):
    rules = TenantRules(quality_floor="frontier")
    for budget in (EASY, HARD):
        d = decide(_req(), budget, rules, gpu_views)
        assert d.profile == "qwen3-235b-fp8"
        lost = {c.profile: c.lost_because for c in d.candidates}
        assert lost["llama8b-fp8-ngram"] == ("below_quality_floor",)


def _cold(views, *names):
    return with_live(views, {n: LiveState(replicas_running=0) for n in names})


def test_a_cold_class_tier_gives_way_to_warm_capacity_when_a_start_up_misses_the_ttft(gpu_views):
    # the large tiers without reasoning (llama70b, qwen3-235b) have no replica: a start-up
    # (minutes) would miss a 60 s TTFT target, so the strongest warm profiles qualify
    cold = ("llama70b-gptq-draft", "qwen3-235b-fp8", "deepseek-r1-nvfp4-mtp")
    views = _cold(gpu_views, *cold)
    rules = TenantRules(reasoning_allowed=False, slo=LatencySLO(ttft_p95_ms=60_000))
    d = decide(_req(), HARD, rules, views)
    assert d.profile not in cold and d.profile == "llama8b-fp8-ngram"
    assert any("cold" in s for s in d.steps)
    # with a target a start-up meets, or a warm large profile, the class keeps its tier
    loose = TenantRules(reasoning_allowed=False, slo=LatencySLO(ttft_p95_ms=3_600_000))
    assert decide(_req(), HARD, loose, views).profile == "llama70b-gptq-draft"
    warm = _cold(gpu_views, "qwen3-235b-fp8")
    assert decide(_req(), HARD, rules, warm).profile == "llama70b-gptq-draft"


def test_reasoning_class_without_reasoning_needs_large_tier(gpu_views):
    # tenant forbids reasoning: gpt-oss cannot switch it off, qwen3-8b counts as plain medium
    rules = TenantRules(reasoning_allowed=False)
    d = decide(_req(), HARD, rules, gpu_views)
    assert d.profile == "llama70b-gptq-draft"  # the cheapest large tier without reasoning
    cands = _by_name(d)
    assert cands["qwen3-235b-fp8"].lost_because == ("not_best",)
    assert cands["gpt-oss-20b-mxfp4"].lost_because == ("reasoning_not_allowed",)
    assert cands["qwen3-8b-dflash"].lost_because == ("below_class_quality",)
    assert not d.reasoning.enabled


# ---------------------------------------------------------------- filters


def test_family_and_profile_name_select_profiles(gpu_views):
    d = decide(_req(model="llama-3.1-8b-instruct"), EASY, OPEN, gpu_views)
    assert d.profile == "llama8b-fp8-ngram"
    assert _by_name(d)["gpt-oss-20b-mxfp4"].lost_because == ("family_mismatch",)
    d = decide(_req(model="llama8b-bf16-eagle3"), EASY, OPEN, gpu_views)
    assert d.profile == "llama8b-bf16-eagle3"
    assert _by_name(d)["llama8b-fp8-ngram"].lost_because == ("family_mismatch",)


def test_unknown_model_is_404(gpu_views):
    d = decide(_req(model="gpt-9"), EASY, OPEN, gpu_views)
    assert d.action == "reject" and d.profile is None
    assert d.rejection.status == 404 and d.rejection.code == "model_not_found"
    assert all(c.lost_because == ("family_mismatch",) for c in d.candidates)


def test_allowed_profiles_restrict_the_choice(gpu_views):
    rules = TenantRules(allowed_profiles=("llama8b-bf16-eagle3", "qwen3-235b-fp8"))
    d = decide(_req(), EASY, rules, gpu_views)
    assert d.profile == "llama8b-bf16-eagle3"
    assert _by_name(d)["llama8b-fp8-ngram"].lost_because == ("not_allowed",)
    d = decide(_req(model="gpt-oss-20b"), EASY, rules, gpu_views)
    assert d.rejection.status == 404


def test_context_too_long_filters_and_rejects(gpu_views):
    d = decide(_req(prompt_tokens=40_000), EASY, OPEN, gpu_views)
    cands = _by_name(d)
    assert cands["llama8b-fp8-ngram"].lost_because == ("context_too_long",)
    assert d.profile == "gpt-oss-20b-mxfp4"  # 65k context; qwen3-235b (131k) costs more
    d = decide(_req(prompt_tokens=200_000), EASY, OPEN, gpu_views)
    assert d.action == "reject"
    assert d.rejection.status == 400 and d.rejection.code == "context_length_exceeded"


def test_prompt_that_leaves_too_little_room_is_capped(local_views):
    # 2048-token context, prompt 1900: the predicted 300 tokens do not fit, 148 do
    d = decide(_req(prompt_tokens=1900), EASY, OPEN, local_views)
    assert d.action == "cap_tokens"
    assert d.max_tokens == 2048 - 1900
    assert "context_short_for_output" in _by_name(d)[d.profile].detail
    d = decide(_req(prompt_tokens=1900), EASY, TenantRules(on_cost_cap=("reject",)), local_views)
    assert d.rejection.status == 400 and d.rejection.code == "context_length_exceeded"


def test_unhealthy_profiles_are_skipped_then_503(local_views):
    sick = LiveState(healthy=False)
    views = with_live(local_views, {"smollm2-cpu-ngram": sick})
    d = decide(_req(), EASY, OPEN, views)
    assert d.profile == "smollm2-cpu"
    assert _by_name(d)["smollm2-cpu-ngram"].lost_because == ("unhealthy",)
    views = with_live(local_views, {v.name: sick for v in local_views})
    d = decide(_req(), EASY, OPEN, views)
    assert d.rejection.status == 503 and d.rejection.code == "no_healthy_profile"


def test_no_profiles_at_all_is_503():
    d = decide(_req(), EASY, OPEN, [])
    assert d.action == "reject" and d.rejection.status == 503


# ---------------------------------------------------------------- budget


def test_spent_budget_is_429_with_retry_after(gpu_views):
    rules = TenantRules(remaining_budget_usd=0.0, budget_retry_after_s=1234)
    d = decide(_req(), EASY, rules, gpu_views)
    assert d.action == "reject"
    assert d.rejection.status == 429 and d.rejection.retry_after_s == 1234
    assert "spent" in d.rejection.message
    assert len(d.candidates) == len(gpu_views)


def test_remaining_budget_bounds_max_tokens(gpu_views):
    cheap = _view(gpu_views, "llama8b-fp8-ngram")
    in_cost = 200 * cheap.prices.input_usd_per_token
    remaining = (
        in_cost + 1000 * cheap.prices.output_usd_per_token
    )  # affords 1000 tokens, > p90 of 300
    d = decide(
        _req(model="llama8b-fp8-ngram"),
        EASY,
        TenantRules(remaining_budget_usd=remaining),
        gpu_views,
    )
    assert d.action == "route" and d.max_tokens == 1000
    assert in_cost + d.max_tokens * cheap.prices.output_usd_per_token <= remaining + 1e-15


def test_budget_smaller_than_any_answer_is_429(gpu_views):
    rules = TenantRules(remaining_budget_usd=1e-9, budget_retry_after_s=60)
    d = decide(_req(), EASY, rules, gpu_views)
    assert d.rejection.status == 429 and d.rejection.retry_after_s == 60


# ---------------------------------------------------------------- cost target actions


def test_downgrade_when_strong_profiles_break_the_cost_target(gpu_views):
    gpt = _view(gpu_views, "gpt-oss-20b-mxfp4")
    llama = _view(gpu_views, "llama8b-fp8-ngram")
    # enough for 1500 answer tokens on llama, not for gpt-oss' 3000 reasoning tokens on top
    target = 200 * llama.prices.input_usd_per_token + 1600 * llama.prices.output_usd_per_token
    assert target < 200 * gpt.prices.input_usd_per_token + 4500 * gpt.prices.output_usd_per_token
    d = decide(_req(cost_target_usd=target), HARD, ENFORCED_TARGET, gpu_views)
    assert d.action == "downgrade"
    assert d.profile == "llama8b-fp8-ngram"
    assert d.estimate.cost_usd_p90 <= target
    assert d.steps[1] == "route: no candidate fits"


def test_cap_tokens_to_what_the_target_affords(gpu_views):
    llama = _view(gpu_views, "llama8b-fp8-ngram")
    in_cost = 200 * llama.prices.input_usd_per_token
    target = in_cost + 100 * llama.prices.output_usd_per_token  # 100 tokens; EASY p90 is 300
    rules = TenantRules(on_cost_target=("cap_tokens", "reject"))
    d = decide(_req(model="llama8b-fp8-ngram", cost_target_usd=target), EASY, rules, gpu_views)
    assert d.action == "cap_tokens"
    assert d.max_tokens == 100
    assert d.estimate.cost_usd_p90 <= target * (1 + 1e-9)


def test_cap_prefers_least_truncation(gpu_views):
    # with one cost target for all, the cheaper-per-token profile affords more tokens
    target = 2e-5
    rules = TenantRules(on_cost_target=("cap_tokens",))
    d = decide(_req(model="llama-3.1-8b-instruct", cost_target_usd=target), EASY, rules, gpu_views)
    assert d.action == "cap_tokens"
    caps = {c.profile: c.estimate.max_tokens for c in d.candidates if c.estimate}
    assert d.profile == max(caps, key=caps.get) == "llama8b-fp8-ngram"


def test_reject_first_when_policy_says_so(gpu_views):
    rules = TenantRules(on_cost_target=("reject",))
    d = decide(_req(cost_target_usd=1e-6), EASY, rules, gpu_views)
    assert d.action == "reject"
    assert d.rejection.status == 402 and d.rejection.code == "cost_target_unmet"
    assert "actions.on_cost_target: reject" in d.rejection.message
    assert d.steps[-1] == "reject: cost_target_unmet"


def test_actions_follow_policy_order(gpu_views):
    llama = _view(gpu_views, "llama8b-fp8-ngram")
    target = 200 * llama.prices.input_usd_per_token + 1600 * llama.prices.output_usd_per_token
    capped = decide(
        _req(cost_target_usd=target),
        HARD,
        TenantRules(on_cost_target=("cap_tokens", "downgrade")),
        gpu_views,
    )
    downgraded = decide(
        _req(cost_target_usd=target),
        HARD,
        TenantRules(on_cost_target=("downgrade", "cap_tokens")),
        gpu_views,
    )
    # keeping the quality the class needs: gpt-oss' and qwen3-8b's 3000 reasoning tokens leave
    # no answer within the target, so the large model without reasoning answers, truncated
    assert capped.action == "cap_tokens" and capped.profile == "llama70b-gptq-draft"
    assert capped.max_tokens < 1500
    assert _by_name(capped)["gpt-oss-20b-mxfp4"].lost_because == ("cap_below_minimum",)
    assert downgraded.action == "downgrade" and downgraded.profile == "llama8b-fp8-ngram"


def test_hard_cost_cap_overrides_caller_target(gpu_views):
    rules = TenantRules(cost_cap_usd=2e-5)
    d = decide(_req(cost_target_usd=1.0), EASY, rules, gpu_views)
    assert d.cost_target_usd == 2e-5  # caller's target capped by the tenant's cap
    assert d.action == "cap_tokens"
    assert d.estimate.cost_usd_p90 <= 2e-5 * (1 + 1e-9)


def test_cost_cap_below_minimum_is_402_even_without_reject(gpu_views):
    rules = TenantRules(cost_cap_usd=1e-9, on_cost_cap=("downgrade",))
    d = decide(_req(), EASY, rules, gpu_views)
    assert d.action == "reject"
    assert d.rejection.status == 402 and d.rejection.code == "cost_cap_exceeded"
    assert "would not bring it under" in d.rejection.message  # the prompt alone is over


def test_a_cap_that_max_tokens_can_meet_does_not_say_it_cannot(gpu_views):
    """Over the cap only through the answer's length, with `reject` alone: the 402 names the
    cap and the cost, not the prompt."""
    rules = TenantRules(cost_cap_usd=2e-4, on_cost_cap=("reject",))
    d = decide(_req(model="llama8b-fp8-ngram"), HARD, rules, gpu_views)
    assert d.rejection.status == 402 and d.rejection.code == "cost_cap_exceeded"
    assert d.rejection.message.startswith("cost cap $0.0002 is below ~$")
    assert "would not bring it under" not in d.rejection.message


def test_max_tokens_is_min_of_caller_policy_and_target(gpu_views):
    llama = _view(gpu_views, "llama8b-fp8-ngram")
    in_cost = 200 * llama.prices.input_usd_per_token
    target = in_cost + 5000 * llama.prices.output_usd_per_token
    req = _req(model="llama8b-fp8-ngram", max_tokens=4000, cost_target_usd=target)
    assert decide(req, EASY, OPEN, gpu_views).max_tokens == 4000
    assert decide(req, EASY, TenantRules(max_tokens_cap=3000), gpu_views).max_tokens == 3000
    req = _req(model="llama8b-fp8-ngram", max_tokens=9000, cost_target_usd=target)
    assert decide(req, EASY, OPEN, gpu_views).max_tokens == 5000
    assert decide(_req(model="llama8b-fp8-ngram"), EASY, OPEN, gpu_views).max_tokens == 32768 - 200


def test_cached_prompt_share_lowers_input_cost(gpu_views):
    cold = decide(_req(prompt_tokens=20_000), EASY, OPEN, gpu_views).estimate.cost_usd
    warm = decide(_req(prompt_tokens=20_000, cached_prompt_share=0.9), EASY, OPEN, gpu_views)
    assert warm.estimate.cost_usd < cold


# ---------------------------------------------------------------- latency SLO


def test_tpot_slo_buys_the_faster_profile(gpu_views):
    rules = TenantRules(slo=LatencySLO(tpot_p95_ms=8.0), allowed_profiles=None)
    d = decide(_req(model="llama-3.1-8b-instruct"), EASY, rules, gpu_views)
    assert d.profile == "llama8b-bf16-eagle3"  # 210 tok/s with EAGLE-3 vs 95 with n-gram
    assert _by_name(d)["llama8b-fp8-ngram"].lost_because == ("slo_tpot",)
    assert d.estimate.tpot_ms <= 8.0


def test_unmeetable_slo_rejects_with_503_when_the_policy_says_so(gpu_views):
    rules = TenantRules(slo=LatencySLO(ttft_p95_ms=1.0), on_slo_unmeetable=("reject",))
    d = decide(_req(), EASY, rules, gpu_views)
    assert d.action == "reject"
    assert d.rejection.status == 503 and d.rejection.code == "latency_slo_unmeetable"
    assert "actions.on_slo_unmeetable: reject" in d.rejection.message
    assert all("slo_ttft" in c.lost_because for c in d.candidates)


def test_e2e_slo_is_met_by_capping(gpu_views):
    llama = _view(gpu_views, "llama8b-fp8-ngram")
    # ~10.5 ms per token: 300 p90 tokens take ~3.2 s; give 1 s
    d = decide(_req(model="llama8b-fp8-ngram", latency_slo_ms=1000), EASY, OPEN, gpu_views)
    assert d.action == "cap_tokens"
    assert d.estimate.latency_ms_p90 <= 1000
    assert 50 < d.max_tokens < 300
    assert d.slo.e2e_p95_ms == 1000
    assert llama.name == d.profile


def test_best_effort_when_actions_run_out(gpu_views):
    rules = TenantRules(slo=LatencySLO(ttft_p95_ms=1.0), on_slo_unmeetable=("downgrade",))
    d = decide(_req(), EASY, rules, gpu_views)
    assert d.action == "route"
    assert d.reason.startswith("best effort")
    assert d.profile is not None


# ---------------------------------------------------------------- live load (local catalog)


def test_idle_local_profiles_prefer_speculative(local_views):
    d = decide(_req(), EASY, OPEN, local_views)
    # same price per token; n-gram speculation is faster per token alone
    assert d.profile == "smollm2-cpu-ngram"
    assert _by_name(d)["smollm2-cpu"].lost_because == ("not_best",)


def test_burst_moves_traffic_to_the_other_profile(local_views):
    busy = LiveState(replicas_running=1, requests_in_flight=8, requests_queued=6)
    views = with_live(local_views, {"smollm2-cpu-ngram": busy})
    d = decide(_req(), EASY, OPEN, views)
    assert d.profile == "smollm2-cpu"
    ngram = _by_name(d)["smollm2-cpu-ngram"].estimate
    assert ngram.queue_wait_ms > 0 and ngram.latency_ms > d.estimate.latency_ms


def test_long_output_prefers_faster_tokens_under_slo(local_views):
    long_form = TokenBudget(p50_output_tokens=600, p90_output_tokens=900, query_class="long_form")
    d = decide(_req(latency_slo_ms=50_000), long_form, OPEN, local_views)
    assert d.profile == "smollm2-cpu-ngram"
    # 900 tokens at 17 tok/s take ~53 s; with n-gram speculation (20 tok/s) ~45 s
    assert _by_name(d)["smollm2-cpu"].lost_because == ("slo_e2e",)
    assert d.action == "route"


def test_scaled_to_zero_profile_pays_cold_start(local_views):
    views = with_live(local_views, {"smollm2-cpu-ngram": LiveState(replicas_running=0)})
    d = decide(_req(), EASY, OPEN, views)
    assert d.profile == "smollm2-cpu"
    cold = _by_name(d)["smollm2-cpu-ngram"].estimate
    assert cold.queue_wait_ms >= views[1].performance.cold_start_ms


# ---------------------------------------------------------------- reasoning


def test_reasoning_on_off_by_class_for_qwen3(gpu_views):
    easy = decide(_req(model="qwen3-8b"), EASY, OPEN, gpu_views)
    assert easy.reasoning.chat_template_kwargs == {"enable_thinking": False}
    assert easy.reasoning.expected_tokens == 0
    hard = decide(_req(model="qwen3-8b"), HARD, OPEN, gpu_views)
    assert hard.reasoning.enabled
    assert hard.reasoning.chat_template_kwargs == {"enable_thinking": True}
    assert hard.estimate.reasoning_tokens == 3000


def test_caller_and_tenant_override_reasoning(gpu_views):
    off = decide(_req(model="qwen3-8b", wants_reasoning=False), HARD, OPEN, gpu_views)
    assert not off.reasoning.enabled
    on = decide(_req(model="qwen3-8b", wants_reasoning=True), EASY, OPEN, gpu_views)
    assert on.reasoning.enabled
    denied = decide(
        _req(model="qwen3-8b", wants_reasoning=True),
        EASY,
        TenantRules(reasoning_allowed=False),
        gpu_views,
    )
    assert not denied.reasoning.enabled


def test_reasoning_token_cap_bounds_estimates(gpu_views):
    rules = TenantRules(max_reasoning_tokens=500)
    d = decide(_req(model="gpt-oss-20b"), HARD, rules, gpu_views)
    assert d.reasoning.token_cap == 500
    assert d.estimate.reasoning_tokens == 500
    assert d.estimate.output_tokens == 600 + 500


def test_effort_steps_down_when_budget_is_low(gpu_views):
    gpt = _view(gpu_views, "gpt-oss-20b-mxfp4")
    # high effort (3000 tokens) would cost more than 2% of this budget; low (750) would not
    remaining = 750 * gpt.prices.output_usd_per_token / 0.02 * 1.01
    assert 3000 * gpt.prices.output_usd_per_token > 0.02 * remaining
    d = decide(
        _req(model="gpt-oss-20b"), HARD, TenantRules(remaining_budget_usd=remaining), gpu_views
    )
    assert d.reasoning.effort == "low"
    assert "stepped down" in d.reasoning.note
    qwen = decide(
        _req(model="qwen3-8b"), HARD, TenantRules(remaining_budget_usd=remaining), gpu_views
    )
    assert not qwen.reasoning.enabled


def test_effort_only_model_cannot_switch_off(gpu_views):
    d = decide(_req(model="gpt-oss-20b"), EASY, OPEN, gpu_views)
    assert d.reasoning.enabled and d.reasoning.effort == "low"
    assert d.estimate.reasoning_tokens == round(200 * 0.25)


def test_medium_probability_gives_medium_effort(gpu_views):
    maybe = EASY.model_copy(update={"reasoning_probability": 0.6})
    d = decide(_req(model="gpt-oss-20b"), maybe, OPEN, gpu_views)
    assert d.reasoning.effort == "medium"


# ---------------------------------------------------------------- the Decision itself


@pytest.mark.parametrize("budget", [EASY, HARD])
def test_decision_round_trips_as_json_and_lists_every_profile(gpu_views, budget):
    d = decide(_req(cost_target_usd=1e-5), budget, OPEN, gpu_views)
    again = Decision.model_validate_json(d.model_dump_json())
    assert again == d
    assert [c.profile for c in d.candidates] == [v.name for v in gpu_views]
    assert sum(c.chosen for c in d.candidates) == (0 if d.profile is None else 1)
    assert d.reason.isascii() and len(d.reason) < 120


def test_estimate_arithmetic_matches_prices(gpu_views):
    d = decide(
        _req(model="llama8b-fp8-ngram", prompt_tokens=1000, cached_prompt_share=0.5),
        EASY,
        OPEN,
        gpu_views,
    )
    v = _view(gpu_views, "llama8b-fp8-ngram")
    expected = (
        500 * v.prices.input_usd_per_token
        + 500 * v.prices.cached_input_usd_per_token
        + 120 * v.prices.output_usd_per_token
    )
    assert math.isclose(d.estimate.cost_usd, expected, rel_tol=1e-12)
    e = d.estimate
    assert math.isclose(e.latency_ms, e.ttft_ms + 119 * e.tpot_ms, rel_tol=1e-3)


def test_reject_status_comes_from_the_profile_that_got_furthest(gpu_views):
    # llama profiles are not allowed; the allowed ones cannot hold the prompt -> 400, not 404
    rules = TenantRules(allowed_profiles=("qwen3-8b-dflash", "gpt-oss-20b-mxfp4"))
    d = decide(_req(prompt_tokens=100_000), EASY, rules, gpu_views)
    assert d.rejection.status == 400 and d.rejection.code == "context_length_exceeded"
    lost = {c.profile: c.lost_because for c in d.candidates}
    assert lost["llama8b-fp8-ngram"] == ("not_allowed",)
    assert lost["gpt-oss-20b-mxfp4"] == ("context_too_long",)


def test_no_actions_routes_best_effort_within_hard_limits(gpu_views):
    llama = _view(gpu_views, "llama8b-fp8-ngram")
    cap = 200 * llama.prices.input_usd_per_token + 100 * llama.prices.output_usd_per_token
    rules = TenantRules(cost_cap_usd=cap, on_cost_cap=())
    d = decide(_req(model="llama8b-fp8-ngram"), EASY, rules, gpu_views)
    assert d.action == "route" and d.reason.startswith("best effort")
    assert d.max_tokens == 100  # the hard cap still bounds the answer


def test_reasoning_class_with_only_small_profiles_routes_to_the_strongest_not_503():
    """A class's tier wish never refuses a request when the tenant's choice has nothing
    stronger: the strongest available profile serves it (the local catalog is all `small`)."""
    from orchestrator.catalog import load_catalog
    from orchestrator.paths import PROJECT_ROOT
    from orchestrator.routing.decide import decide
    from orchestrator.routing.types import RouteRequest, TenantRules, TokenBudget
    from orchestrator.routing.views import catalog_views

    views = catalog_views(load_catalog(PROJECT_ROOT / "deployments" / "local.yaml"))
    decision = decide(
        RouteRequest(model="auto", prompt_tokens=30),
        TokenBudget(
            p50_output_tokens=200,
            p90_output_tokens=600,
            reasoning_probability=0.9,
            query_class="reasoning",
        ),
        TenantRules(on_cost_cap=("cap_tokens", "reject")),
        views,
    )
    assert decision.profile is not None, decision.reason
    assert any("strongest qualify" in s for s in decision.steps)


# ---------------------------------------------------------------- tool calling (a hard filter)


def test_tools_go_only_to_profiles_with_a_tool_parser(gpu_views):
    views = [v.model_copy(update={"tool_calling": v.name == "qwen3-235b-fp8"}) for v in gpu_views]
    d = decide(_req(needs_tool_parser=True), EASY, OPEN, views)
    assert d.profile == "qwen3-235b-fp8"  # the dearest, but the only one that can
    assert _by_name(d)["llama8b-fp8-ngram"].lost_because == ("tools_unsupported",)
    assert decide(_req(), EASY, OPEN, views).profile == "llama8b-fp8-ngram"


def test_tools_without_any_tool_parser_is_a_400_naming_the_profile_setting(local_views):
    views = [v.model_copy(update={"tool_calling": False}) for v in local_views]
    d = decide(_req(needs_tool_parser=True), EASY, OPEN, views)
    assert d.action == "reject" and d.profile is None
    assert d.rejection.status == 400
    assert d.rejection.code == "tool_calling_unsupported"
    assert "tool_call_parser" in d.rejection.message


def test_tool_capable_but_unhealthy_profile_is_a_503_not_a_400(local_views):
    views = [
        v.model_copy(update={"tool_calling": True, "live": LiveState(healthy=False)})
        for v in local_views
    ]
    d = decide(_req(needs_tool_parser=True), EASY, OPEN, views)
    assert d.rejection.status == 503


# ---------------------------------------------------------------- budget actions and floor


def _budget_for(view, tokens: int) -> float:
    return 200 * view.prices.input_usd_per_token + tokens * view.prices.output_usd_per_token


def test_budget_short_for_the_answer_follows_on_budget_exhausted(gpu_views):
    gpt = _view(gpu_views, "gpt-oss-20b-mxfp4")
    req = _req(model="gpt-oss-20b-mxfp4")

    def run(actions):
        rules = TenantRules(
            remaining_budget_usd=_budget_for(gpt, 1000), on_budget_exhausted=actions
        )
        return decide(req, HARD, rules, gpu_views)

    rejected = run(("reject",))  # the default: on_cost_cap's cap_tokens is not used
    assert rejected.action == "reject" and rejected.rejection.status == 429
    assert "on_budget_exhausted: reject" in rejected.steps
    capped = run(("cap_tokens", "reject"))
    assert capped.action == "cap_tokens" and capped.max_tokens == 1000
    assert "on_budget_exhausted: cap_tokens" in capped.steps
    tried = run(("downgrade", "reject"))  # downgrade tried first, cannot make it fit
    assert tried.steps.index("on_budget_exhausted: downgrade") < tried.steps.index(
        "on_budget_exhausted: reject"
    )
    assert tried.rejection.status == 429


def test_cap_tokens_floor_bounds_capping(gpu_views):
    llama = _view(gpu_views, "llama8b-fp8-ngram")
    req = _req(model="llama8b-fp8-ngram")
    for floor, affordable, routed in ((16, 100, True), (150, 100, False), (90, 100, True)):
        rules = TenantRules(
            remaining_budget_usd=_budget_for(llama, affordable),
            on_budget_exhausted=("cap_tokens", "reject"),
            cap_tokens_floor=floor,
        )
        d = decide(req, EASY, rules, gpu_views)
        if routed:
            assert d.action == "cap_tokens" and d.max_tokens == affordable >= floor
        else:
            assert d.action == "reject" and d.rejection.status == 429


def test_cap_tokens_floor_is_the_context_minimum(local_views):
    view = local_views[0]
    prompt = view.max_model_len - 20
    d = decide(
        _req(model=view.name, prompt_tokens=prompt),
        EASY,
        TenantRules(cap_tokens_floor=21),
        local_views,
    )
    assert d.action == "reject" and d.rejection.code == "context_length_exceeded"
    d = decide(
        _req(model=view.name, prompt_tokens=prompt),
        EASY,
        TenantRules(cap_tokens_floor=20),
        local_views,
    )
    assert _by_name(d)[view.name].lost_because != ("context_too_long",)


def test_embedded_catalog_routes_tools_to_its_profile_with_a_parser(local_views):
    d = decide(_req(needs_tool_parser=True), EASY, OPEN, local_views)
    assert d.profile == "smollm2-cpu"
    pinned = decide(
        _req(model="smollm2-cpu-ngram", needs_tool_parser=True), EASY, OPEN, local_views
    )
    assert pinned.rejection is not None and pinned.rejection.status == 400
