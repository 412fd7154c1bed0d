"""Quality targets: per-request expected success and per-tenant share of the strongest tier."""

from __future__ import annotations

from orchestrator.concepts import TIER_RANK
from orchestrator.routing import RouteRequest, TenantRules, TokenBudget, decide
from orchestrator.routing.quality import (
    QualityAccount,
    QualityAccounts,
    expected_success,
    qualifying_tiers,
)

EASY = {"small": 0.9, "medium": 0.95, "large": 0.96, "frontier": 0.97}
HARD = {"small": 0.2, "medium": 0.4, "large": 0.6, "frontier": 0.85}


def _budget(tier_success: dict[str, float] | None) -> TokenBudget:
    return TokenBudget(p50_output_tokens=120, p90_output_tokens=300, tier_success=tier_success)


def _tier(decision, views) -> str:
    return next(v.quality_tier for v in views if v.name == decision.profile)


def test_min_success_keeps_tiers_at_or_above_the_probability():
    v = qualifying_tiers(("small", "medium", "large", "frontier"), HARD, 0.55, None)
    assert v.tiers == {"large", "frontier"}
    assert "need 0.55" in v.note


def test_share_of_strongest_is_relative_to_the_strongest_usable_tier():
    v = qualifying_tiers(("small", "medium", "large"), HARD, None, 0.9)
    assert v.tiers == {"large"}  # 0.9 x large's 0.60: frontier is not usable here
    assert qualifying_tiers(("small", "medium", "large"), EASY, None, 0.9).tiers == {
        "small",
        "medium",
        "large",
    }


def test_unreachable_target_lets_the_strongest_qualify():
    v = qualifying_tiers(("small", "medium"), HARD, 0.9, None)
    assert v.tiers == {"medium"}
    assert "strongest qualify" in v.note


def test_no_prediction_or_no_target_keeps_every_tier():
    assert qualifying_tiers(("small", "large"), None, 0.9, 0.9).tiers == {"small", "large"}
    assert qualifying_tiers(("small", "large"), HARD, None, None).tiers == {"small", "large"}


def test_a_tier_missing_from_the_map_takes_the_nearest_weaker_one():
    assert expected_success("large", {"small": 0.3, "medium": 0.5}) == 0.5
    assert expected_success("small", {"medium": 0.5, "frontier": 0.8}) == 0.5


def test_hard_request_goes_to_a_stronger_tier_than_an_easy_one(gpu_views):
    rules = TenantRules(min_success=0.8)
    req = RouteRequest(prompt_tokens=200)
    easy = decide(req, _budget(EASY), rules, gpu_views)
    hard = decide(req, _budget(HARD), rules, gpu_views)
    assert easy.action == hard.action == "route"
    plain = decide(req, _budget(None), TenantRules(), gpu_views)
    assert easy.profile == plain.profile  # an easy request pays nothing for the target
    assert _tier(hard, gpu_views) == "frontier"
    assert TIER_RANK[_tier(hard, gpu_views)] > TIER_RANK[_tier(easy, gpu_views)]
    assert hard.tier_success == HARD
    assert any(s.startswith("quality: need 0.80") for s in hard.steps)
    lost = {c.profile: c.lost_because for c in hard.candidates}
    assert any("below_quality_target" in why for why in lost.values())


def test_without_a_target_the_tier_success_is_recorded_but_not_used(gpu_views):
    req = RouteRequest(prompt_tokens=200)
    plain = decide(req, _budget(None), TenantRules(), gpu_views)
    hard = decide(req, _budget(HARD), TenantRules(), gpu_views)
    assert hard.profile == plain.profile
    assert hard.tier_success == HARD and plain.tier_success is None


def test_downgrade_drops_the_quality_target_but_not_the_floor(gpu_views):
    req = RouteRequest(prompt_tokens=200)
    cheapest = decide(req, _budget(None), TenantRules(), gpu_views)
    cap = cheapest.estimate.cost_usd_p90 * 1.01  # only the cheapest profiles fit under it
    rules = TenantRules(min_success=0.8, cost_cap_usd=cap, on_cost_cap=("downgrade", "reject"))
    d = decide(req, _budget(HARD), rules, gpu_views)
    assert d.action == "downgrade"
    assert _tier(d, gpu_views) != "frontier"
    assert "below_quality_target" not in next(
        c.lost_because for c in d.candidates if c.profile == d.profile
    )


def test_policy_quality_target_reaches_the_router(tmp_path, gpu_views):
    """Policy text -> the tenant's effective limits -> TenantRules -> the routed tier; a
    per-class block overrides the tenant's target field by field."""
    from orchestrator.catalog import load_catalog
    from orchestrator.paths import PROJECT_ROOT
    from orchestrator.policy import load_policy
    from orchestrator.request import route_inputs

    text = (
        "apiVersion: orchestrator/v1\nkind: Policy\n"
        "default_tenant:\n"
        "  quality_target: {min_success: 0.8, share_of_strongest: 0.5}\n"
        "  classes:\n"
        "    long_form:\n"
        "      quality_target: {min_success: 0.3}\n"
    )
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    policy = load_policy(path, load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml"))
    tenant = policy.default_tenant
    names = [v.name for v in gpu_views]
    budget = route_inputs.BudgetState(None, None)
    std = route_inputs.tenant_rules(tenant, "standard", budget, names)
    assert (std.min_success, std.share_of_strongest) == (0.8, 0.5)
    long = route_inputs.tenant_rules(tenant, "long_form", budget, names)
    assert (long.min_success, long.share_of_strongest) == (0.3, 0.5)
    req = RouteRequest(prompt_tokens=200)
    strict = decide(req, _budget(HARD), std, gpu_views)
    loose = decide(req, _budget(HARD), long, gpu_views)
    assert _tier(strict, gpu_views) == "frontier"
    assert TIER_RANK[_tier(loose, gpu_views)] < TIER_RANK["frontier"]


def test_a_binding_quality_target_outranks_the_cost_target_but_not_the_cap(gpu_views):
    req = RouteRequest(prompt_tokens=200)
    cheapest = decide(req, _budget(None), TenantRules(), gpu_views)
    aim = cheapest.estimate.cost_usd_p90 * 1.01  # only the cheapest profiles are under it
    d = decide(req, _budget(HARD), TenantRules(min_success=0.8, cost_target_usd=aim), gpu_views)
    assert d.action == "route" and _tier(d, gpu_views) == "frontier"
    capped = TenantRules(min_success=0.8, cost_cap_usd=aim, on_cost_cap=("reject",))
    assert decide(req, _budget(HARD), capped, gpu_views).action == "reject"


def test_a_banked_surplus_lowers_the_share_need_of_one_request():
    tiers = ("small", "medium", "large")
    assert qualifying_tiers(tiers, HARD, None, 0.9).tiers == {"large"}  # need 0.54
    # one request spends a third of the surplus: 0.15 of 0.45, need 0.39
    v = qualifying_tiers(tiers, HARD, None, 0.9, slack=0.45)
    assert v.tiers == {"medium", "large"}
    assert "0.15 of the banked 0.45" in v.note
    assert qualifying_tiers(tiers, HARD, None, 0.9, slack=0.15).tiers == {"large"}
    # a debt (negative slack) asks more than the share: the strongest qualify
    assert qualifying_tiers(tiers, HARD, None, 0.9, slack=-0.2).tiers == {"large"}
    # min_success still holds per request whatever the surplus
    assert qualifying_tiers(tiers, HARD, 0.5, 0.9, slack=0.5).tiers == {"large"}


def test_routing_on_the_account_keeps_the_tenant_share_over_its_traffic():
    """Every request routed to the cheapest tier meeting `share x strongest - slack`: the
    running (undecayed) share of always-strongest never falls below the target, and fewer
    requests need the strong tier than when the share binds on each request."""
    import random

    rng = random.Random(3)
    share, account = 0.9, QualityAccount()
    served = strongest = 0.0
    strong_calls = per_request_strong = 0
    for _ in range(3000):
        weak = rng.uniform(0.1, 0.95)
        ts = {"medium": weak, "frontier": min(1.0, weak + rng.uniform(0.0, 0.4))}
        ok = qualifying_tiers(("medium", "frontier"), ts, None, share, account.slack(share))
        tier = min(ok.tiers, key=TIER_RANK.__getitem__)
        strong_calls += tier == "frontier"
        per_request_strong += ts["medium"] < share * ts["frontier"]
        account.record(ts[tier], ts["frontier"])
        served += ts[tier]
        strongest += ts["frontier"]
        assert served >= share * strongest - 1e-9
        assert account.slack(share) >= -1e-9
    assert strong_calls < 0.7 * per_request_strong


def test_accounts_count_a_refusal_and_a_hand_back_as_nothing_answered(gpu_views):
    """The account measures as the simulator does (a refused or handed-back request answers
    nothing: 0), and charges that shortfall to capacity: the routing book (`sums`, `slack`)
    does not change, so no later request is upgraded to repay an overload."""
    accounts = QualityAccounts()
    rules = TenantRules(tenant="t", share_of_strongest=0.9)
    req = RouteRequest(prompt_tokens=50)
    d = decide(req, _budget(EASY), rules, gpu_views)
    assert accounts.record("t", d) == expected_success(_tier(d, gpu_views), EASY)
    served = expected_success(_tier(d, gpu_views), EASY)
    assert served < EASY["frontier"]  # the easy request went below the strongest tier
    assert accounts.of("t").sums == (served, EASY["frontier"])
    assert accounts.of("t").delivered == served / EASY["frontier"]
    assert accounts.of("other").sums == (0.0, 0.0)
    slack = accounts.of("t").slack(0.9)
    spent = rules.model_copy(update={"remaining_budget_usd": 0.0})
    refused = decide(req, _budget(EASY), spent, gpu_views)
    assert refused.action == "reject"
    assert accounts.record("t", refused) == 0.0  # no answer: 0 served against the strongest
    account = accounts.of("t")
    assert account.served < served + 1e-12 and account.strongest > 1.9 * EASY["frontier"]
    assert account.delivered < 0.55
    assert abs(account.slack(0.9) - slack) < 1e-9  # the routing book moved by nothing
    before = account.slack(0.9)
    accounts.handed_back("t", d)  # routed, then handed back by the ingress queue
    assert account.served < 1e-9 and account.delivered < 1e-9
    assert abs(account.slack(0.9) - before) < 1e-12  # charged to capacity, not repaid
    sums = account.sums
    accounts.record("t", decide(req, _budget(None), rules, gpu_views))  # no prediction
    assert account.sums == sums  # nothing to count


def test_a_surplus_fades_but_a_debt_is_kept():
    account = QualityAccount()
    account.record(0.9, 0.9, 0.9)  # surplus 0.09
    account.record(0.9, 0.9, 0.9)
    assert 0.09 < account.slack(0.9) < 0.18  # the first surplus faded a little
    account.record(0.1, 0.9, 0.9)  # a downgrade: debt
    debt = account.slack(0.9)
    assert debt < 0
    account.record(0.0, 0.0, 0.9)  # a request that moves nothing: the debt stays whole
    assert account.slack(0.9) == debt


def test_the_decision_carries_the_share_target_it_was_held_to(gpu_views):
    req = RouteRequest(prompt_tokens=50)
    held = decide(req, _budget(EASY), TenantRules(share_of_strongest=0.8), gpu_views)
    assert held.share_of_strongest == 0.8
    assert decide(req, _budget(EASY), TenantRules(), gpu_views).share_of_strongest is None
