"""Two running pools of one tier, each with replica time to spare: the token prices do not
tell them apart (their replicas are paid whatever they serve), so the one whose replica time
costs less serves and the dearer one drains (`decide._packed`)."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.replica_model import LiveState
from orchestrator.routing import RouteRequest, TenantRules, TokenBudget, decide, with_live
from orchestrator.routing.decide import CONSOLIDATE_FILL

QWEN, R1 = "qwen3-235b-fp8", "deepseek-r1-nvfp4-mtp"
# no reasoning predicted: R1 (always reasons) is then the cheaper per token of the two
PLAIN = TokenBudget(
    p50_output_tokens=114,
    p90_output_tokens=200,
    reasoning_probability=0.0,
    reasoning_tokens=0,
    query_class="standard",
)


@pytest.fixture
def frontier(gpu_views):
    return [v for v in gpu_views if v.name in (QWEN, R1)]


def _running(views, **in_flight):
    live = {v.name: LiveState(replicas_running=1, requests_in_flight=in_flight[v.name[:4]])
            for v in views}  # fmt: skip
    return with_live(views, live)


def _rate(view) -> float:
    return view.replica_usd_per_hour


def test_spare_pools_of_a_tier_pack_onto_the_cheaper_replica_time(frontier):
    by = {v.name: v for v in frontier}
    assert _rate(by[QWEN]) < _rate(by[R1])  # Qwen3's replica time is the cheaper
    d = decide(
        RouteRequest(prompt_tokens=200), PLAIN, TenantRules(), _running(frontier, qwen=4, deep=4)
    )
    costs = {c.profile: c.estimate.cost_usd for c in d.candidates}
    assert costs[R1] < costs[QWEN]  # R1 is the cheaper per token here ...
    assert d.profile == QWEN  # ... but both are paid for: the dearer one drains


def test_a_pool_past_the_fill_is_priced_by_its_tokens_again(frontier):
    slots = frontier[0].performance.max_concurrency
    full = int(CONSOLIDATE_FILL * slots)  # with this request, over the fill
    d = decide(RouteRequest(prompt_tokens=200), PLAIN, TenantRules(),
               _running(frontier, qwen=full, deep=4))  # fmt: skip
    assert d.profile == R1


def test_idle_pools_are_ranked_by_their_token_prices(frontier):
    d = decide(RouteRequest(prompt_tokens=200), PLAIN, TenantRules(),
               _running(frontier, qwen=0, deep=0))  # fmt: skip
    assert d.profile == R1  # nothing to pack: the cheaper per token


def test_a_load_the_cheaper_pool_could_not_carry_is_not_packed(frontier):
    slots = frontier[0].performance.max_concurrency
    half = int(CONSOLIDATE_FILL * slots) // 2 + 2  # each under the fill, together over it
    d = decide(RouteRequest(prompt_tokens=200), PLAIN, TenantRules(),
               _running(frontier, qwen=half, deep=half))  # fmt: skip
    assert d.profile == R1


def test_packing_ranks_by_the_replicas_hourly_price_not_a_policys_token_price(frontier):
    """A policy may list its own token prices: Qwen3's output at 20x R1's makes its price x
    throughput the dearer, yet its replica still costs less an hour, so R1 drains."""
    by = {v.name: v for v in frontier}
    listed = dataclasses.replace(
        by[QWEN].prices, output_usd_per_token=20 * by[R1].prices.output_usd_per_token
    )
    views = [v.model_copy(update={"prices": listed}) if v.name == QWEN else v for v in frontier]
    tokens_x_speed = {
        v.name: v.prices.output_usd_per_token * v.performance.output_tokens_per_s for v in views
    }
    assert tokens_x_speed[QWEN] > tokens_x_speed[R1]
    assert _rate(by[QWEN]) < _rate(by[R1])
    d = decide(
        RouteRequest(prompt_tokens=200), PLAIN, TenantRules(), _running(views, qwen=4, deep=4)
    )
    assert d.profile == QWEN
