"""Every refusal, admission's (policy bounds, the tenant's concurrency, overload) and the
router's (budget, cost cap, SLO, nothing healthy), comes through one channel: it is an answer
(never an exception), it is in the decision log, and `GET /v1/orchestrator/decisions/{id}`
explains it with the same code as the error the client got."""

from __future__ import annotations

from typing import Any

import pytest

from tests.serving.conftest import (
    FAMILY,
    LOCAL,
    MESSAGES,
    POLICY_TEXT,
    TINY_REFERENCE,
    busy,
    error_of,
    occupy,
    serve_body,
    spent,
    use_policy,
)


def _tenant_busy(ex: Any) -> None:
    occupy(ex, "elsewhere", 2, tenant="default")


def _nothing_ready(ex: Any) -> None:
    for p in LOCAL.profiles:  # every deployment failed (what the ingress's refresh loop sets)
        ex.ready[p.name] = False
        ex.failed[p.name] = True


# kind -> (policy lines added to POLICY_TEXT, body fields, setup, status, code, param)
REFUSALS: dict[str, tuple[str, dict[str, Any], Any, int, str, str | None]] = {
    "bound n": ("  requests: {max_n: 1}\n", {"n": 2}, None, 400, "over_max_n", "n"),
    "bound output": (
        "  requests: {max_output_tokens: 10}\n",
        {"max_completion_tokens": 11},
        None,
        400,
        "over_max_output_tokens",
        "max_completion_tokens",
    ),
    "bound prompt": (
        "  requests: {max_prompt_tokens: 5}\n",
        {},
        None,
        400,
        "over_max_prompt_tokens",
        "messages",
    ),
    "concurrency": (
        "  requests: {max_concurrent_requests: 2}\n",
        {},
        _tenant_busy,
        429,
        "over_max_concurrent_requests",
        None,
    ),
    "overload": ("", {}, busy(12), 429, "server_overloaded", None),
    "budget": ("", {}, spent(1.0), 429, "budget_exhausted", None),
    "cost cap": (
        "  cost_cap_usd: 0.000000001\n  actions: {on_cost_cap: [reject]}\n",
        {},
        None,
        402,
        "cost_cap_exceeded",
        None,
    ),
    "slo": (
        "  latency: {ttft_p95_ms: 2000}\n  actions: {on_slo_unmeetable: [reject]}\n"
        + TINY_REFERENCE
        + "\n",
        {},
        busy(10),
        503,
        "latency_slo_unmeetable",
        None,
    ),
    "nothing healthy": ("", {}, _nothing_ready, 503, "no_healthy_profile", None),
}


@pytest.mark.parametrize("kind", list(REFUSALS))
async def test_every_refusal_is_recorded_and_explained(ingress, kind):
    lines, extra, setup, status, code, param = REFUSALS[kind]
    text = (
        POLICY_TEXT.replace("  cost_cap_usd: 0.05\n", "")
        if "cost_cap_usd" in lines
        else POLICY_TEXT
    )
    use_policy(ingress, text + lines)
    if setup is not None:
        setup(ingress)
    body = {"model": FAMILY, "messages": MESSAGES, **extra}
    response = await serve_body(ingress, body, "chat", {"x-request-id": f"r-{kind}"})
    error = error_of(response)
    assert response.status_code == status, error
    assert (error["code"], error["param"]) == (code, param)
    if status in (429, 503):  # retrying later may help
        assert int(response.headers["Retry-After"]) >= 1
    explained = await ingress.decision_for({}, f"r-{kind}")
    assert explained["action"] == "reject" and explained["profile"] is None
    rejection = explained["rejection"]
    assert (rejection["status"], rejection["code"], rejection["param"]) == (status, code, param)
    assert rejection["message"] and rejection["message"] in error["message"]
    assert ingress.handle.requests == [] and ingress.ledger.count() <= 1  # `earlier` only
