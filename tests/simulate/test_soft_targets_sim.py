"""The simulator runs the product's soft targets: a free tier whose cost target is below its
typical request's price is served (no `cost_target_unmet`) unless its policy says reject; a
tight TTFT p95 target is not a reason to refuse unless the policy says so."""

from __future__ import annotations

import pytest

from orchestrator.policy import load_policy_text
from orchestrator.simulate import simulate

from .conftest import GPU, make_requests

FREE = """\
apiVersion: orchestrator/v1
kind: Policy
default_tenant:
  name: free
  quality_floor: {min_tier: medium}
  cost_target_usd: 0.0000001   # far below any request's price
  latency: {ttft_p95_ms: 2000, tpot_p95_ms: 60, e2e_p95_ms: 60000}
  actions: {on_cost_cap: [downgrade, cap_tokens, reject]%s}
autoscaling: {headroom: 0.2}
"""


def _run(actions: str, predictor):
    policy = load_policy_text(FREE % actions, "policy.yaml", GPU)
    reqs = make_requests(n=300, rate=3.0, seed=4)
    res = simulate(GPU, policy, reqs, predictor=predictor, policies=("ours",))
    return res.policies["ours"].metrics


@pytest.fixture(scope="module")
def soft(predictor):
    return _run("", predictor)


def test_soft_cost_target_refuses_nothing(soft):
    assert "cost_target_unmet" not in soft["rejected_by_reason"]
    assert soft["served"] == soft["requests"]


def test_the_policy_action_makes_it_refuse(predictor):
    enforced = _run(", on_cost_target: [reject]", predictor)
    assert enforced["rejected_by_reason"].get("cost_target_unmet", 0) > 100
