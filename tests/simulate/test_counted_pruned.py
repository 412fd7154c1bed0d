"""The replay's router forgets the requests held to a share target once the cluster has
served or refused them (`DecideRouter._counted`), as it prunes a tenant's in-flight list;
what it routes is unchanged."""

from __future__ import annotations

from orchestrator.policy import load_policy_text
from orchestrator.simulate import policies as pol
from orchestrator.simulate import simulate

from .conftest import POLICY_TEXT, make_requests

ACTIONS = "  actions: {on_cost_cap: [downgrade, cap_tokens]}\n"
SHARE = POLICY_TEXT.replace(ACTIONS, ACTIONS + "  quality_target: {share_of_strongest: 0.9}\n")


def _run(catalog, predictor, monkeypatch, prune_at: int):
    policy = load_policy_text(SHARE, "policy.yaml", catalog)
    routers = []

    class Seen(pol.DecideRouter):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            routers.append(self)

    monkeypatch.setattr(pol, "DecideRouter", Seen)
    monkeypatch.setattr(pol, "PRUNE_AT", prune_at)
    reqs = make_requests(n=600, rate=4.0, seed=11)
    res = simulate(catalog, policy, reqs, predictor=predictor, policies=("ours",))
    return res.policies["ours"], routers[0]


def test_served_requests_leave_the_count_and_routing_is_unchanged(catalog, predictor, monkeypatch):
    pruned, router = _run(catalog, predictor, monkeypatch, prune_at=64)
    kept, whole = _run(catalog, predictor, monkeypatch, prune_at=10**9)
    assert whole.counted > 300  # never pruned: every counted request stays
    assert router.counted < 128  # at most twice what was in flight at the last pruning
    assert list(pruned.outcome.profile) == list(kept.outcome.profile)
    assert pruned.metrics == kept.metrics
