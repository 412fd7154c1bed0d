"""Where an upgrade goes: the least expected cost per unit of expected success gained, among
the tiers that keep the tenant's quality account on target (routing/quality.py)."""

from __future__ import annotations

import random

from orchestrator.concepts import TIER_RANK
from orchestrator.routing import RouteRequest, TenantRules, TokenBudget, decide
from orchestrator.routing.quality import QualityAccount, cheapest_upgrade, qualifying_tiers

TIERS = ("medium", "large", "frontier")
# a batch-like tenant: no reasoning model, one profile per tier
BATCH = ("llama8b-fp8-ngram", "llama70b-gptq-draft", "qwen3-235b-fp8")


def _upgrade(success, price, share, slack, min_success=None):
    verdict = qualifying_tiers(success, success, min_success, share, slack)
    return verdict, cheapest_upgrade(verdict, success, price, min_success, share, slack)


def test_a_tier_below_the_request_need_serves_when_the_account_stays_on_target():
    success = {"medium": 0.5, "large": 0.7, "frontier": 0.9}
    price = {"medium": 1.0, "large": 2.0, "frontier": 6.0}
    verdict, up = _upgrade(success, price, 0.9, slack=0.3)
    assert verdict.tiers == {"frontier"}  # need 0.81 - 0.1: the pacing rule asks for frontier
    assert up is not None and up.tiers == {"large", "frontier"}  # $5/unit against $12.5/unit
    assert "upgrade: large" in up.note
    # without the surplus, large would leave the account below target: frontier only
    assert _upgrade(success, price, 0.9, slack=0.0)[1].tiers == {"frontier"}


def test_a_dearer_tier_wins_when_it_gains_much_more_per_dollar():
    success = {"medium": 0.5, "large": 0.55, "frontier": 0.95}
    price = {"medium": 1.0, "large": 1.5, "frontier": 2.0}
    verdict, up = _upgrade(success, price, 0.9, slack=1.0)
    assert verdict.tiers == {"large", "frontier"}  # the cheapest qualifying one was large
    assert up is not None and up.tiers == {"frontier"}  # $2.2/unit against $10/unit


def test_nothing_to_choose_keeps_the_verdict():
    success = {"medium": 0.86, "large": 0.9, "frontier": 0.95}
    price = {"medium": 1.0, "large": 2.0, "frontier": 6.0}
    assert _upgrade(success, price, 0.9, slack=0.0)[1] is None  # the cheapest qualifies
    hard = {"medium": 0.2, "large": 0.5, "frontier": 0.9}
    # a per-request target banks nothing: its cheapest qualifying tier stays the choice
    assert _upgrade(hard, price, None, slack=0.0, min_success=0.4)[1] is None
    # min_success holds per request: large (0.5) stays out below 0.6 whatever the surplus
    _, up = _upgrade(hard, price, 0.5, slack=5.0, min_success=0.6)
    assert up is None or up.tiers == {"frontier"}


def test_a_stream_stays_on_target_and_costs_less_than_the_cheapest_qualifying_tier():
    """Random requests over three tiers: routing by the upgrade rule never lets the running
    (undecayed) share fall below target, and pays less than taking the cheapest tier that
    meets each request's need."""
    price = {"medium": 1.0, "large": 2.5, "frontier": 9.0}
    cost = {}
    for rule in ("upgrade", "cheapest"):
        rng = random.Random(7)
        share, account, served, strongest, spent = 0.9, QualityAccount(), 0.0, 0.0, 0.0
        for _ in range(3000):
            m = rng.uniform(0.2, 0.9)
            ts = {"medium": m, "large": min(1.0, m + rng.uniform(0, 0.3))}
            ts["frontier"] = min(1.0, ts["large"] + rng.uniform(0, 0.15))
            verdict, up = _upgrade(ts, price, share, account.slack(share))
            if rule == "upgrade" and up is not None:
                verdict = up
            tier = min(verdict.tiers, key=price.__getitem__)
            spent += price[tier]
            account.record(ts[tier], ts["frontier"])
            served += ts[tier]
            strongest += ts["frontier"]
            assert served >= share * strongest - 1e-9
        cost[rule] = spent
    assert cost["upgrade"] < 0.95 * cost["cheapest"]


def test_decide_upgrades_to_the_cheaper_tier_the_account_can_afford(gpu_views):
    ts = {"small": 0.3, "medium": 0.5, "large": 0.7, "frontier": 0.9}
    budget = TokenBudget(p50_output_tokens=120, p90_output_tokens=300, tier_success=ts)
    req = RouteRequest(prompt_tokens=200)
    tier = {v.name: v.quality_tier for v in gpu_views}
    rules = TenantRules(allowed_profiles=BATCH, share_of_strongest=0.9, reasoning_allowed=False)
    banked = decide(req, budget, rules.model_copy(update={"quality_slack": 0.3}), gpu_views)
    assert tier[banked.profile] == "large"
    assert any("upgrade: large" in s for s in banked.steps)
    # no surplus: large would leave the tenant below target, so the request goes to frontier
    even = decide(req, budget, rules, gpu_views)
    assert tier[even.profile] == "frontier"
    assert TIER_RANK[tier[even.profile]] > TIER_RANK[tier[banked.profile]]
