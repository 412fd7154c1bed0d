"""Every refusal, admission's (policy bounds, the tenant's concurrency, overload) and the
router's (budget, cost cap, SLO, nothing healthy), comes through one channel: it is an answer
(never an exception), it is in the decision log, and `GET /v1/orchestrator/decisions/{id}`
explains it with the same code as the error the client got."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.ledger import UsageRecord
from orchestrator.policy import load_policy_text
from tests.serving.conftest import (
    FAMILY,
    LOCAL,
    MESSAGES,
    POLICY_TEXT,
    error_of,
    occupy,
    serve_body,
)
from tests.serving.test_policy_fields_in_request_path import TINY_REFERENCE


def _policy(ex: Any, text: str) -> None:
    ex.policy_source = SimpleNamespace(current=load_policy_text(text, "policy.yaml", LOCAL))


def _busy(in_flight: int) -> Callable[[Any], None]:
    def setup(ex: Any) -> None:
        for p in LOCAL.profiles:
            occupy(ex, p.name, in_flight)

    return setup


def _spent(usd: float) -> Callable[[Any], None]:
    def setup(ex: Any) -> None:
        now = datetime.now(UTC)
        ex.ledger.settle(
            UsageRecord(
                request_id="earlier",
                tenant="default",
                profile="smollm2-cpu",
                prompt_tokens=1,
                cached_tokens=0,
                output_tokens=1,
                reasoning_tokens=0,
                cost_usd=usd,
                latency_ms=1.0,
                status="ok",
                started_at=now,
                finished_at=now,
            )  # fmt: skip
        )

    return setup


def _tenant_busy(ex: Any) -> None:
    occupy(ex, "elsewhere", 2, tenant="default")


def _nothing_ready(ex: Any) -> None:
    for p in LOCAL.profiles:
        ex.ready[p.name] = False


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
    "overload": ("", {}, _busy(12), 429, "server_overloaded", None),
    "budget": ("", {}, _spent(1.0), 429, "budget_exhausted", None),
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
        _busy(10),
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
    _policy(ingress, text + lines)
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
