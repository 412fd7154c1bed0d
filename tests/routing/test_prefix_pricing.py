"""A prompt's prefix blocks a profile holds are priced (and timed) as cached on that profile."""

from __future__ import annotations

import pytest

from orchestrator.replica_model import LiveState
from orchestrator.request.prefix_index import PrefixIndex
from orchestrator.routing import RouteRequest, TenantRules, decide, with_live
from tests.routing.routing_helpers import EASY

QWEN = "qwen3-235b-fp8"


def test_prefix_index_counts_the_leading_run_it_holds():
    index = PrefixIndex()
    assert index.cached_share("a", (1, 2, 3, 4)) == 0.0
    index.hold("a", (1, 2, 3), capacity_blocks=10)
    assert index.cached_share("a", (1, 2, 3, 4)) == pytest.approx(0.75)
    assert index.cached_share("a", (9, 1, 2, 3)) == 0.0  # a prefix: stops at the first miss
    assert index.cached_share("b", (1, 2, 3, 4)) == 0.0  # per profile
    index.hold("a", (5, 6), capacity_blocks=3)  # LRU: 1 and 2 are evicted
    assert index.cached_share("a", (1, 2, 3)) == 0.0
    assert index.cached_share("a", (3, 5, 6)) == 1.0


def test_a_long_prompt_fits_the_cost_cap_where_its_prefix_is_cached(gpu_views):
    rules = TenantRules(quality_floor="frontier", reasoning_allowed=False, cost_cap_usd=0.003,
                        on_cost_cap=("reject",))  # fmt: skip
    req = RouteRequest(prompt_tokens=40_000)
    cold = decide(req, EASY, rules, gpu_views)
    assert cold.action == "reject" and cold.rejection.code == "cost_cap_exceeded"
    live = LiveState(replicas_running=1, cached_prompt_share=0.95)
    warm = decide(req, EASY, rules, with_live(gpu_views, {QWEN: live}))
    assert warm.action == "route" and warm.profile == QWEN
    est = {c.profile: c.estimate for c in cold.candidates if c.estimate}[QWEN]
    assert warm.estimate.cost_usd < est.cost_usd / 5
    assert warm.estimate.ttft_ms < est.ttft_ms
