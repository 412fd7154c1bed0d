"""The opening price in the replay: a trickle that an open frontier profile can serve opens
no second frontier profile (issue #29: a DeepSeek-R1 opened beside the Qwen3-235B)."""

from __future__ import annotations

from orchestrator.concepts import TIER_RANK
from orchestrator.policy import load_policy_text
from orchestrator.simulate import simulate
from tests.policy.policy_helpers import policy_text
from tests.simulate.conftest import GPU, make_requests

TARGET = policy_text("""
default_tenant:
  name: default
  quality_floor: {min_tier: medium}
  quality_target: {share_of_strongest: 0.95}
  latency: {ttft_p95_ms: 2000, tpot_p95_ms: 40, e2e_p95_ms: 60000}
  actions: {on_cost_cap: [downgrade, cap_tokens]}
autoscaling:
  headroom: 0.2
  scale_to_zero: true
""")


def test_one_frontier_pool_carries_a_frontier_trickle(predictor):
    policy = load_policy_text(TARGET, "policy.yaml", GPU)
    res = simulate(GPU, policy, make_requests(n=600, rate=2.0), policies=["ours"],
                   predictor=predictor)  # fmt: skip
    m = res.policies["ours"].metrics
    top = max(TIER_RANK.values())
    frontier = {p.name for p in GPU.profiles if TIER_RANK[p.quality.tier] == top}
    opened = {n for n, h in m["replica_hours"].items() if n in frontier and h > 0}
    served = {n for n, c in m["served_by_profile"].items() if n in frontier and c > 0}
    assert served, "the target sends hard requests to the frontier tier"
    assert len(opened) == 1, opened
