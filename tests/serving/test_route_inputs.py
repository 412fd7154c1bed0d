"""Adapters feeding the router: caller targets, budgets, tenant rules, prices, accounting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from orchestrator.ledger import UsageLedger
from orchestrator.policy import load_policy_text
from orchestrator.replica_model import LiveState
from orchestrator.request import route_inputs
from orchestrator.request.spec import caller_targets, needs_tool_parser, read_spec
from orchestrator.routing.decide import decide
from orchestrator.routing.types import TokenBudget
from orchestrator.serving.accounting import (
    Accountant,
    EngineUsage,
    RequestTrace,
    actual_cost_usd,
    usage_record,
)
from orchestrator.serving.errors import OrchestratorHTTPError
from tests.serving.conftest import LOCAL

POLICY_TEXT = """\
apiVersion: orchestrator/v1
kind: Policy
default_tenant:
  name: default
  cost_target_usd: 0.001
  cost_cap_usd: 0.01
  max_tokens: 512
  latency: {e2e_p95_ms: 60000}
  budgets: {per_hour_usd: 1.0, per_day_usd: 5.0}
"""


@pytest.fixture(scope="module")
def policy():
    return load_policy_text(POLICY_TEXT, "policy.yaml", LOCAL)


def test_caller_targets_headers_win_over_body():
    t = caller_targets(
        {"x-cost-target-usd": "0.002"}, {"cost_target_usd": 1, "latency_slo_ms": 900}
    )
    assert t.cost_target_usd == 0.002 and t.latency_slo_ms == 900


@pytest.mark.parametrize(
    ("headers", "ext", "param"),
    [
        ({"x-cost-target-usd": "cheap"}, None, "X-Cost-Target-USD"),
        ({"x-latency-slo-ms": "0"}, None, "X-Latency-SLO-Ms"),
        ({"x-cost-target-usd": "-1"}, None, "X-Cost-Target-USD"),
        ({}, {"latency_slo_ms": "soon"}, "orchestrator.latency_slo_ms"),
        ({}, {"budget": 3}, "orchestrator"),
        ({}, "fast", "orchestrator"),
    ],
)
def test_bad_caller_targets_are_400(headers, ext, param):
    with pytest.raises(OrchestratorHTTPError) as err:
        caller_targets(headers, ext)
    assert err.value.status == 400 and err.value.param == param


def test_reasoning_choice_and_max_tokens_reach_the_router_from_the_spec():
    def routed(body: dict) -> object:
        return route_inputs.route_request(read_spec(body, "chat"), 10)

    assert routed({"chat_template_kwargs": {"enable_thinking": False}}).wants_reasoning is False
    assert routed({"reasoning_effort": "high"}).wants_reasoning is True
    assert routed({}).wants_reasoning is None
    assert routed({"max_completion_tokens": 7, "max_tokens": 9}).max_tokens == 7


def test_budget_state_takes_tightest_window_and_in_flight():
    budgets = SimpleNamespace(per_hour_usd=1.0, per_day_usd=5.0, per_month_usd=None)
    state = route_inputs.budget_state(budgets, {"hour": (0.4, 100), "day": (4.8, 5000)}, 0.05)
    assert state.remaining_usd == pytest.approx(0.15) and state.retry_after_s == 5000
    assert (
        route_inputs.budget_state(
            SimpleNamespace(per_hour_usd=None, per_day_usd=None, per_month_usd=None), {}, 0
        ).remaining_usd
        is None
    )


def test_priced_views_use_policy_prices(policy):
    views = route_inputs.priced_views(LOCAL, policy)
    for p in LOCAL.profiles:
        assert views[p.name].prices.output_usd_per_token == pytest.approx(
            policy.prices[p.name].output_usd_per_token
        )


def test_rules_and_decision_route_to_a_local_profile(policy):
    tenant = policy.resolve_tenant(None)
    budget = route_inputs.BudgetState(1.0, 100)
    rules = route_inputs.tenant_rules(
        tenant, "standard", budget, tenant.eligible_profiles("standard")
    )
    assert rules.max_tokens_cap == 512 and rules.cost_cap_usd == 0.01
    views = route_inputs.priced_views(LOCAL, policy)
    live = {n: LiveState() for n in views}
    from orchestrator.routing.views import with_live

    req = route_inputs.route_request(read_spec({"model": "smollm2-135m-instruct"}, "chat"), 40)
    budget_tokens = TokenBudget(p50_output_tokens=50, p90_output_tokens=200)
    decision = decide(req, budget_tokens, rules, with_live(views.values(), live))
    assert decision.profile in {"smollm2-cpu", "smollm2-cpu-ngram"}
    assert decision.max_tokens is not None and decision.max_tokens <= 512
    # an unhealthy profile is never chosen
    live["smollm2-cpu"] = LiveState(healthy=False)
    live["smollm2-cpu-ngram"] = LiveState()
    decision = decide(req, budget_tokens, rules, with_live(views.values(), live))
    assert decision.profile == "smollm2-cpu-ngram"
    # a spent budget is a 429 with Retry-After at the window end
    spent = route_inputs.tenant_rules(
        tenant, "standard", route_inputs.BudgetState(0.0, 321), tenant.eligible_profiles("standard")
    )
    decision = decide(req, budget_tokens, spent, with_live(views.values(), live))
    assert decision.profile is None and decision.rejection.status == 429
    assert decision.rejection.retry_after_s == 321


def test_engine_usage_parsing_and_cost(policy):
    usage = EngineUsage.from_openai(
        {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 40},
            "completion_tokens_details": {"reasoning_tokens": 5},
        }
    )
    assert usage == EngineUsage(100, 40, 20, 5)
    prices = policy.prices["smollm2-cpu"]
    expected = (
        60 * prices.input_usd_per_token
        + 40 * prices.cached_input_usd_per_token
        + 20 * prices.output_usd_per_token
    )
    assert actual_cost_usd(prices, usage) == pytest.approx(expected)
    assert EngineUsage.from_openai(None) == EngineUsage()


async def test_accountant_writes_one_row_per_request_and_calibrates(tmp_path):
    ledger = UsageLedger(tmp_path / "usage.sqlite3")
    observed = []

    class FakeCalibration:  # records what the predictor was told
        def observe(self, profile, prediction, output_tokens, reasoning_tokens, max_tokens):
            observed.append((profile, output_tokens))

    accountant = Accountant(ledger, FakeCalibration())
    trace = RequestTrace("req-1", "default", "smollm2-cpu", predicted_p50=10, predicted_p90=30)
    trace.started_at = datetime.now(UTC) - timedelta(seconds=1)
    trace.mark_first_token()
    record = usage_record(trace, EngineUsage(12, 0, 8, 0), 0.0001)
    await accountant.record(record, "smollm2-cpu", object())
    await accountant.record(record, "smollm2-cpu", object())  # a retry: still one row
    assert ledger.count() == 1
    row = ledger.get("req-1")
    assert row.output_tokens == 8 and row.cost_usd == pytest.approx(0.0001)
    assert row.latency_ms >= 1000 and row.ttft_ms is not None
    await accountant.learned()
    assert observed[0] == ("smollm2-cpu", 8)


@pytest.mark.parametrize(
    ("body", "needs"),
    [
        ({}, False),
        ({"tools": []}, False),
        ({"tools": [{"type": "function"}]}, True),  # vLLM's default tool_choice is auto
        ({"tools": [{"type": "function"}], "tool_choice": "auto"}, True),
        ({"tools": [{"type": "function"}], "tool_choice": "none"}, False),
        ({"tools": [{"type": "function"}], "tool_choice": "required"}, True),
        (
            {"tools": [{"type": "function"}], "tool_choice": {"type": "function", "function": {}}},
            True,
        ),
    ],
)
def test_every_tool_choice_but_none_needs_a_tool_parser(body, needs):
    assert needs_tool_parser(body) is needs
    assert route_inputs.route_request(read_spec(body, "chat"), 10).needs_tool_parser is needs
