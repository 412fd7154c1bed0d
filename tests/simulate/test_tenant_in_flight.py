"""The replay counts a tenant's requests in flight (`requests.max_concurrent_requests`) as
the server's load book does: routed and not yet served or refused, whatever end the router
priced. Counted by the priced end, a request that finished early stayed "in flight" until
then: Azure x10 cold refused 565 more chat/internal/enterprise requests
`over_max_concurrent_requests` (session 17)."""

from __future__ import annotations

from orchestrator.policy import load_policy_text
from orchestrator.request.bounds import CONCURRENCY_CODE
from orchestrator.simulate import simulate

from .conftest import POLICY_TEXT, make_requests

# the suite's policy with its tenant held to one request in flight
ACTIONS = "  actions: {on_cost_cap: [downgrade, cap_tokens]}\n"
ONE_AT_A_TIME = POLICY_TEXT.replace(ACTIONS, ACTIONS + "  requests: {max_concurrent_requests: 1}\n")


def test_a_request_finished_early_no_longer_counts_against_the_bound(catalog, predictor):
    policy = load_policy_text(ONE_AT_A_TIME, "policy.yaml", catalog)
    assert policy.default_tenant.bounds.max_concurrent_requests == 1
    reqs = make_requests(n=40, rate=1.0, seed=5)
    for i, r in enumerate(reqs):
        r.arrival_s = 4.0 * i  # one at a time, 4 s apart ...
        r.prompt_tokens = 200
        r.output_tokens = 8  # ... each done in well under a second, whatever it was priced at
    res = simulate(catalog, policy, reqs, predictor=predictor, policies=("ours",))
    reasons = list(res.policies["ours"].outcome.reject_reason)
    assert reasons.count(CONCURRENCY_CODE) == 0
