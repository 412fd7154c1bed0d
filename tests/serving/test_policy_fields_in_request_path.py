"""Each per-tenant policy field, written in a policy file, changes what the request path does.

Policy text -> `RequestExecutor` (real policy loader, router, ledger; fake predictor and
engine) -> the response, the decision or the engine request. One case per field; the schema
walk (`tests/policy/test_policy_fields_used.py`) requires every field to name its case.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.pricing import token_prices
from orchestrator.serving.errors import OrchestratorHTTPError
from tests.serving.conftest import (
    FAMILY,
    LOCAL,
    MESSAGES,
    TINY_REFERENCE,
    blue_completion,
    busy,
    spent,
    use_policy,
)
from tests.serving.conftest import serve_body as _serve

HEADER = """\
apiVersion: orchestrator/v1
kind: Policy
default_tenant:
  name: default
"""


async def _run(ex: Any, policy_lines: str, engine_stream, setup=None, **body: Any):
    text = HEADER + "".join(f"  {line}\n" for line in policy_lines.splitlines())
    if "latency" in policy_lines:  # the load-time check uses the reference requests
        text += TINY_REFERENCE + "\n"
    use_policy(ex, text)
    if setup is not None:
        setup(ex)
    ex.handle.streams.append(engine_stream([blue_completion()]))
    try:
        response = await _serve(ex, {"model": FAMILY, "messages": MESSAGES, **body}, "chat")
    except OrchestratorHTTPError as exc:
        return exc.status, exc.code, None
    payload = json.loads(response.body)
    code = payload.get("error", {}).get("code") if response.status_code >= 400 else None
    return response.status_code, code, response


def _profile(resp) -> str:
    return resp.headers["x-orchestrator-profile"]


def _sent(ex) -> Any:
    return ex.handle.requests[-1]


PRICES = token_prices(LOCAL.profile("smollm2-cpu"))  # both local profiles price the same
PROMPT_COST = 11 * PRICES.input_usd_per_token  # the fake predictor's 11 prompt tokens


def _affords(tokens: int) -> float:
    """USD that pays the prompt and `tokens` generated tokens."""
    return PROMPT_COST + tokens * PRICES.output_usd_per_token


HOUR_BUDGET = 0.1  # the least the load-time check accepts is the $0.08/h of min replicas

# field -> (policy lines, request body fields, setup, check(status, code, response, executor)).
# Values pass the load-time checks (SLO met idle for the class's reference request, budgets
# above the cost of the minimum replicas) and still bind this request.
CASES: dict[str, tuple[str, dict[str, Any], Any, Callable[..., bool]]] = {
    "cost_target_usd": (  # soft: served, the miss recorded in the decision
        "cost_target_usd: 0.000000001\nactions: {on_cost_cap: [reject]}",
        {},
        None,
        lambda s, c, r, ex: s == 200 and "cost_target" in r.headers["x-orchestrator-decision"],
    ),
    "actions.on_cost_target": (
        "cost_target_usd: 0.000000001\nactions: {on_cost_target: [reject]}",
        {},
        None,
        lambda s, c, r, ex: (s, c) == (402, "cost_target_unmet"),
    ),
    "actions.on_slo_unmeetable": (  # without it the same request is served (soft p95)
        "latency: {ttft_p95_ms: 2000}\nactions: {on_slo_unmeetable: [reject]}",
        {},
        busy(10),
        lambda s, c, r, ex: (s, c) == (503, "latency_slo_unmeetable"),
    ),
    "latency.ttft_p95_ms soft": (  # a p95 target: served on the closest profile, miss recorded
        "latency: {ttft_p95_ms: 2000}",
        {},
        busy(10),
        lambda s, c, r, ex: s == 200 and "slo_ttft" in r.headers["x-orchestrator-decision"],
    ),
    "cost_cap_usd": (
        "cost_cap_usd: 0.000000001\nactions: {on_cost_cap: [reject]}",
        {},
        None,
        lambda s, c, r, ex: (s, c) == (402, "cost_cap_exceeded"),
    ),
    "latency.ttft_p95_ms": (  # 61 ms idle for the (1-token) reference request; ~8.5 s queued here
        "latency: {ttft_p95_ms: 2000}\nactions: {on_slo_unmeetable: [reject]}",
        {},
        busy(10),
        lambda s, c, r, ex: (s, c) == (503, "latency_slo_unmeetable"),
    ),
    "latency.tpot_p95_ms": (  # 50-59 ms alone; 89 ms at full batch
        "latency: {tpot_p95_ms: 70}\nactions: {on_slo_unmeetable: [reject]}",
        {},
        busy(10),
        lambda s, c, r, ex: (s, c) == (503, "latency_slo_unmeetable"),
    ),
    "latency.e2e_p95_ms": (  # 61 ms for a 1-token reference; ~0.8 s for 16 tokens
        "latency: {e2e_p95_ms: 200}\nactions: {on_slo_unmeetable: [reject]}",
        {},
        None,
        lambda s, c, r, ex: (s, c) == (503, "latency_slo_unmeetable"),
    ),
    "actions.on_cost_cap": (  # a cap that pays 10 tokens; capping allowed: served, capped
        f"cost_cap_usd: {_affords(10)!r}\n"
        "actions: {on_cost_cap: [cap_tokens, reject], cap_tokens_floor: 1}",
        {"max_tokens": 200},
        None,
        lambda s, c, r, ex: s == 200 and _sent(ex).max_tokens == 10,
    ),
    "actions.on_budget_exhausted": (  # 10 tokens of budget left: capped instead of a 429
        f"budgets: {{per_hour_usd: {HOUR_BUDGET}}}\n"
        "actions: {on_budget_exhausted: [cap_tokens, reject], cap_tokens_floor: 1}",
        {"max_tokens": 200},
        spent(HOUR_BUDGET - _affords(10)),
        lambda s, c, r, ex: s == 200 and _sent(ex).max_tokens == 10,
    ),
    "actions.cap_tokens_floor": (  # the same, but the floor is above what the budget affords
        f"budgets: {{per_hour_usd: {HOUR_BUDGET}}}\n"
        "actions: {on_budget_exhausted: [cap_tokens, reject], cap_tokens_floor: 12}",
        {"max_tokens": 200},
        spent(HOUR_BUDGET - _affords(10)),
        lambda s, c, r, ex: (s, c) == (429, "budget_exhausted"),
    ),
    "max_tokens": (
        "max_tokens: 5",
        {"max_tokens": 100},
        None,
        lambda s, c, r, ex: _sent(ex).max_tokens == 5,
    ),
    "allowed_profiles": (
        "allowed_profiles: [smollm2-cpu-ngram]",
        {},
        None,
        lambda s, c, r, ex: _profile(r) == "smollm2-cpu-ngram",
    ),
    "denied_profiles": (
        "denied_profiles: [smollm2-cpu-ngram]",
        {},
        None,
        lambda s, c, r, ex: _profile(r) == "smollm2-cpu",
    ),
    "budgets.per_hour_usd": (
        f"budgets: {{per_hour_usd: {HOUR_BUDGET}}}",
        {},
        spent(2 * HOUR_BUDGET),
        lambda s, c, r, ex: (s, c) == (429, "budget_exhausted"),
    ),
    "budgets.per_day_usd": (
        "budgets: {per_day_usd: 2.0}",
        {},
        spent(2.5),
        lambda s, c, r, ex: (s, c) == (429, "budget_exhausted"),
    ),
    "budgets.per_month_usd": (
        "budgets: {per_month_usd: 60.0}",
        {},
        spent(61.0),
        lambda s, c, r, ex: (s, c) == (429, "budget_exhausted"),
    ),
    "classes": (  # the predicted class is `standard`: its override applies
        "max_tokens: 50\nclasses: {standard: {max_tokens: 7}, long_form: {max_tokens: 9}}",
        {},
        None,
        lambda s, c, r, ex: _sent(ex).max_tokens == 7,
    ),
}


@pytest.mark.parametrize("field", sorted(CASES))
async def test_policy_field_changes_the_request_path(ingress, engine_stream, field):
    lines, body, setup, check = CASES[field]
    status, code, response = await _run(ingress, lines, engine_stream, setup, **body)
    assert check(status, code, response, ingress), (field, status, code)


async def test_control_without_the_fields_the_request_is_served_uncapped(ingress, engine_stream):
    """The positive control: the bare policy serves the same request, max_tokens as asked."""
    status, code, response = await _run(ingress, "", engine_stream, None, max_tokens=200)
    assert status == 200 and _sent(ingress).max_tokens == 200


@pytest.mark.parametrize("migrate", [True, False])
async def test_migrate_streams_false_asks_no_token_ids(ingress, engine_stream, chunk, migrate):
    """A stream may migrate only with the engine's token ids: asked for unless the tenant's
    `failover.migrate_streams` is false."""
    lines = "" if migrate else "failover: {migrate_streams: false}"
    text = HEADER + (f"  {lines}\n" if lines else "")
    use_policy(ingress, text)
    ingress.handle.streams.append(engine_stream([chunk(content="Blue", completion_tokens=1)]))
    body = {"model": FAMILY, "messages": MESSAGES, "stream": True}
    response = await _serve(ingress, body, "chat")
    assert response.status_code == 200
    assert bool(getattr(_sent(ingress), "return_token_ids", False)) is migrate
    await response.body_iterator.aclose()
