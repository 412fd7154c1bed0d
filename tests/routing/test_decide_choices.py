"""`n` choices are priced as n sequences (issue 15): estimates, cost caps and the token budget."""

from __future__ import annotations

import pytest

from orchestrator.request import route_inputs
from orchestrator.request.spec import read_spec
from orchestrator.routing import RouteRequest, TenantRules, TokenBudget, decide
from tests.predictions import prediction

PER_CHOICE = TokenBudget(p50_output_tokens=100, p90_output_tokens=200, query_class="standard")


def _decide(views, choices: int, **rules):
    req = RouteRequest(model="smollm2-cpu", prompt_tokens=50, choices=choices)
    return decide(req, PER_CHOICE, TenantRules(**rules), views)


def test_estimate_prices_every_choice(local_views):
    one, four = _decide(local_views, 1), _decide(local_views, 4)
    prices = next(v for v in local_views if v.name == "smollm2-cpu").prices
    prompt_cost = prices.cost_usd(50, 0)
    assert one.max_tokens == four.max_tokens  # max_tokens is per choice
    out_one = one.estimate.cost_usd - prompt_cost
    out_four = four.estimate.cost_usd - prompt_cost
    assert out_four == pytest.approx(4 * out_one) and out_one > 0


def test_cost_cap_bounds_the_tokens_of_all_choices_together(local_views):
    prices = next(v for v in local_views if v.name == "smollm2-cpu").prices
    cap = prices.cost_usd(50, 400)  # pays 400 output tokens in all
    rules = {"cost_cap_usd": cap, "on_cost_cap": ("cap_tokens", "reject")}
    one, four = _decide(local_views, 1, **rules), _decide(local_views, 4, **rules)
    assert one.profile and four.profile
    assert four.max_tokens <= 100 < one.max_tokens  # 400 // 4 per choice
    assert four.estimate.cost_usd_p90 <= cap * (1 + 1e-9)


def test_token_budget_is_per_choice_and_route_request_carries_n():
    budget = route_inputs.token_budget(prediction(p50_tokens=400, p90_tokens=801, n=4))
    assert (budget.p50_output_tokens, budget.p90_output_tokens) == (100, 201)
    req = route_inputs.route_request(read_spec({"n": 4}, "chat"), 10)
    assert req.choices == 4
