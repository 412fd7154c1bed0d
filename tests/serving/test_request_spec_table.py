"""One reading of max_tokens, n and the reasoning wish: the request spec gives every stage
(bounds, prediction, routing, failover, the engine call) the same meaning, and a bad value is
one 400 naming the field as the client sent it, with a string code."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy import load_policy_text
from orchestrator.policy.schema_tenants import RequestBounds
from orchestrator.predict.request import parse_request
from orchestrator.replica_model import LiveState
from orchestrator.request import bounds, route_inputs
from orchestrator.request.errors import RequestError
from orchestrator.request.plan import PlanState, Predicted, Routed, plan
from orchestrator.request.spec import read_spec
from orchestrator.routing.types import TokenBudget
from orchestrator.routing.views import with_live
from orchestrator.serving import failover as fo
from orchestrator.serving.errors import from_exception
from tests.serving.conftest import (
    FAMILY,
    LOCAL,
    MESSAGES,
    POLICY_TEXT,
    make_executor,
    serve_body,
)

GPU = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
POLICY_CAP = 512  # POLICY_TEXT's max_tokens
NO_BUDGETS = "apiVersion: orchestrator/v1\nkind: Policy\ndefault_tenant: {name: default}\n"

# body fields -> (max_tokens, the field it came from, n, reasoning wish, effort)
VALID = [
    ({}, None, None, 1, None, None),
    ({"max_tokens": None}, None, None, 1, None, None),
    ({"max_tokens": 40}, 40, "max_tokens", 1, None, None),
    ({"max_tokens": 50, "max_completion_tokens": 20}, 20, "max_completion_tokens", 1, None, None),
    ({"max_completion_tokens": None, "max_tokens": 30}, 30, "max_tokens", 1, None, None),
    ({"n": 3, "max_tokens": 10}, 10, "max_tokens", 3, None, None),
    ({"reasoning_effort": "none"}, None, None, 1, False, "none"),
    ({"reasoning_effort": "minimal"}, None, None, 1, False, "minimal"),
    ({"reasoning_effort": "low"}, None, None, 1, True, "low"),
    ({"reasoning": {"effort": "high"}}, None, None, 1, True, "high"),
    (
        {"reasoning_effort": "high", "chat_template_kwargs": {"enable_thinking": False}},
        None,
        None,
        1,
        False,
        "high",
    ),
    ({"chat_template_kwargs": {"enable_thinking": True}}, None, None, 1, True, None),
]
INVALID = [
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_completion_tokens": 0, "max_tokens": 5}, "max_completion_tokens"),
    ({"max_tokens": -3}, "max_tokens"),
    ({"max_tokens": 2.5}, "max_tokens"),
    ({"n": 0}, "n"),
    ({"reasoning_effort": "max"}, "reasoning_effort"),
    ({"reasoning_effort": 3}, "reasoning_effort"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
]


def _body(extra: dict[str, Any]) -> dict[str, Any]:
    return {"model": FAMILY, "messages": MESSAGES, **extra}


def _routed(spec: Any) -> Routed:
    """The request core's plan for `spec` on the local catalog, idle."""
    policy = load_policy_text(POLICY_TEXT, "policy.yaml", LOCAL)
    views = route_inputs.priced_views(LOCAL, policy)
    live = {n: LiveState() for n in views}
    state = PlanState(
        policy=policy,
        catalog=LOCAL,
        views=with_live(views.values(), live),
        budget=route_inputs.BudgetState(None, None),
    )
    budget = TokenBudget(p50_output_tokens=8, p90_output_tokens=16)
    predicted = Predicted(candidates=list(LOCAL.profiles), budget=budget, prompt_tokens=11)
    outcome = plan(spec, policy.resolve_tenant(None), predicted, state)
    assert isinstance(outcome, Routed), outcome
    return outcome


@pytest.mark.parametrize(("extra", "max_tokens", "param", "n", "wish", "effort"), VALID)
def test_every_stage_reads_the_same_meaning(extra, max_tokens, param, n, wish, effort):
    body = _body(extra)
    spec = read_spec(body, "chat")
    assert (spec.max_tokens, spec.choices, spec.wants_reasoning) == (max_tokens, n, wish)
    # bounds: the cap x choices, naming the field the cap came from
    if max_tokens is not None:
        tight = RequestBounds(max_output_tokens=max_tokens * n - 1)
        refused = bounds.body_bound(spec, tight)
        assert refused is not None and refused.param == param
        assert bounds.body_bound(spec, RequestBounds(max_output_tokens=max_tokens * n)) is None
    # prediction: what the server hands the predictor and what it reads alone agree
    for parsed in (parse_request(body, spec.wishes), parse_request(body)):
        assert (parsed.max_tokens, parsed.n) == (max_tokens, n)
        assert (parsed.reasoning_requested, parsed.reasoning_effort) == (wish, effort)
    # routing
    request = route_inputs.route_request(spec, 11)
    assert (request.max_tokens, request.choices, request.wants_reasoning) == (max_tokens, n, wish)
    # failover: one choice only; a continuation gets what is left of the cap the plan sent
    routed = _routed(spec)
    expected_cap = min(max_tokens or POLICY_CAP, POLICY_CAP)
    assert routed.max_tokens == expected_cap
    assert fo.migratable(spec, body) is (n == 1)
    progress = fo.StreamProgress(prompt_token_ids=[1, 2], generated_token_ids=[5, 6, 7])
    cont = fo.continuation_body(
        body,
        progress,
        max_tokens=routed.max_tokens,
        target_profile="b",
        max_model_len=4096,
        request_id="r",
    )
    assert cont is not None and cont["max_tokens"] == expected_cap - 3


@pytest.mark.parametrize(("extra", "param"), INVALID)
def test_a_bad_value_is_one_400_naming_the_field_with_a_string_code(extra, param):
    with pytest.raises(RequestError) as err:
        read_spec(_body(extra), "chat")
    error = json.loads(from_exception(err.value).body)["error"]
    assert err.value.status == 400 and error["param"] == param
    assert isinstance(error["code"], str) and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(("extra", "param"), INVALID)
async def test_the_server_refuses_a_bad_value_before_predicting(ingress, extra, param):
    with pytest.raises(RequestError) as err:
        await serve_body(ingress, _body(extra), "chat")
    assert err.value.status == 400 and err.value.param == param
    assert isinstance(err.value.code, str)
    assert ingress.predictor.calls == [] and ingress.handle.requests == []


@pytest.mark.parametrize(("extra", "max_tokens", "param", "n", "wish", "effort"), VALID)
async def test_the_engine_gets_the_planned_cap(ingress, chat_completion, extra, max_tokens, param, n, wish, effort):  # fmt: skip
    ingress.handle.streams.append(chat_completion())
    response = await serve_body(ingress, _body(extra), "chat")
    assert response.status_code == 200
    sent = ingress.handle.requests[0]
    assert sent.max_tokens == min(max_tokens or POLICY_CAP, POLICY_CAP) and sent.n == n
    if "max_completion_tokens" in extra:
        assert sent.max_completion_tokens == sent.max_tokens


@pytest.mark.parametrize(
    ("effort", "thinking"), [("none", False), ("minimal", False), ("low", True), ("high", True)]
)
async def test_reasoning_effort_none_is_served_with_thinking_off(
    tmp_path, monkeypatch, chat_completion, effort, thinking
):
    """An `enable_thinking` profile (Qwen3): `none` / `minimal` switch thinking off, as the
    router's reasoning setting says; `low` / `high` switch it on."""
    ex = make_executor(tmp_path, monkeypatch, catalog=GPU, policy_text=NO_BUDGETS)
    ex.handle.streams.append(chat_completion())
    body = {"model": "qwen3-8b", "messages": MESSAGES, "reasoning_effort": effort}
    response = await serve_body(ex, body, "chat", {"x-request-id": "r-think"})
    assert response.status_code == 200
    sent = ex.handle.requests[0]
    assert sent.chat_template_kwargs == {"enable_thinking": thinking}
    decision = (await ex.decision_for({}, "r-think"))["reasoning"]
    assert decision["enabled"] is thinking
    ex.ledger.close()


def test_responses_effort_none_reaches_chat_as_thinking_off():
    """The Responses API's `reasoning.effort` is translated to chat's `reasoning_effort`."""
    from orchestrator.serving.responses_api import Exchange, ResponseStore

    exchange = Exchange.open(
        {"model": FAMILY, "input": "hi", "reasoning": {"effort": "none"}},
        "default",
        ResponseStore(),
    )
    assert read_spec(exchange.chat_body(), "chat").wants_reasoning is False
