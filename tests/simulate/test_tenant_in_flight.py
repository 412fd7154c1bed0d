"""The replay counts a tenant's requests in flight (`requests.max_concurrent_requests`) as
the server's load book does: routed and not yet served or refused, whatever end the router
priced. Counted by the priced end, a request that finished early stayed "in flight" until
then: Azure x10 cold refused 565 more chat/internal/enterprise requests
`over_max_concurrent_requests` (session 17)."""

from __future__ import annotations

from orchestrator.policy import load_policy_text
from orchestrator.request.bounds import CONCURRENCY_CODE
from orchestrator.simulate import simulate
from tests.policy.policy_helpers import policy_text

from .conftest import make_requests

ONE_AT_A_TIME = policy_text("""
default_tenant:
  name: default
  quality_floor: {min_tier: medium}
  latency: {ttft_p95_ms: 2000, tpot_p95_ms: 40, e2e_p95_ms: 60000}
  actions: {on_cost_cap: [downgrade, cap_tokens]}
  requests: {max_concurrent_requests: 1}
autoscaling: {headroom: 0.2, scale_to_zero: true}
""")


def test_a_request_finished_early_no_longer_counts_against_the_bound(catalog, predictor):
    policy = load_policy_text(ONE_AT_A_TIME, "policy.yaml", catalog)
    reqs = make_requests(n=40, rate=1.0, seed=5)
    for i, r in enumerate(reqs):
        r.arrival_s = 4.0 * i  # one at a time, 4 s apart ...
        r.prompt_tokens = 200
        r.output_tokens = 8  # ... each done in well under a second, whatever it was priced at
    res = simulate(catalog, policy, reqs, predictor=predictor, policies=("ours",))
    reasons = list(res.policies["ours"].outcome.reject_reason)
    assert reasons.count(CONCURRENCY_CODE) == 0
