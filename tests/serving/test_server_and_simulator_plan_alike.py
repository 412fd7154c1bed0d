"""The server's planning path and the simulator's (`DecideRouter`) are one: fed the same
request, policy, budget spend and live load they give the same decision, refusals included
(overload, concurrency, budget, cost cap, SLO)."""

from __future__ import annotations

import ast
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy import load_policy_text
from orchestrator.request import route_inputs
from orchestrator.request.plan import plan
from orchestrator.simulate.cluster import Cluster
from orchestrator.simulate.policies import DecideRouter, Prepared
from orchestrator.simulate.replica import ReplicaSpec
from orchestrator.simulate.traffic import SimRequest
from tests.predictions import prediction
from tests.serving.conftest import (
    FAMILY,
    LOCAL,
    MESSAGES,
    TINY_REFERENCE,
    occupy,
    serve_body,
)
from tests.usage_rows import usage_row

NOW = datetime(2026, 3, 14, 15, 30, tzinfo=UTC)  # mid-hour, mid-day, mid-month
HEADER = "apiVersion: orchestrator/v1\nkind: Policy\ndefault_tenant:\n  name: default\n"
BUDGETS = "  budgets: {per_hour_usd: 1.0, per_day_usd: 5.0, per_month_usd: 500.0}\n"

# scenario -> (policy lines, in flight per profile, USD already spent this hour, tenant busy)
SCENARIOS: dict[str, tuple[str, int, float, bool]] = {
    "idle": (BUDGETS, 0, 0.0, False),
    "loaded": (BUDGETS, 9, 0.3, False),
    "overload": ("", 12, 0.0, False),
    "concurrency": ("  requests: {max_concurrent_requests: 1}\n", 0, 0.0, True),
    "budget": (BUDGETS, 0, 1.0, False),
    "budget caps": (BUDGETS, 0, 0.99999, False),
    "cost cap": (
        "  cost_cap_usd: 0.000000001\n  actions: {on_cost_cap: [reject]}\n",
        0,
        0.0,
        False,
    ),
    "slo soft": ("  latency: {ttft_p95_ms: 2000}\n" + TINY_REFERENCE + "\n", 10, 0.0, False),
    "slo": (
        "  latency: {ttft_p95_ms: 2000}\n  actions: {on_slo_unmeetable: [reject]}\n"
        + TINY_REFERENCE
        + "\n",
        10,
        0.0,
        False,
    ),
}


async def _server(
    ex: Any, policy: Any, in_flight: int, spent: float, busy: bool, answer: Any
) -> dict:
    ex.policy_source = SimpleNamespace(current=policy)
    ex.budget.clock = lambda: NOW
    for p in LOCAL.profiles:
        occupy(ex, p.name, in_flight)
    if spent:
        ex.ledger.settle(usage_row("earlier", spent, tenant="default", at=NOW))
    if busy:
        occupy(ex, "elsewhere", 1, tenant="default")
    ex.handle.streams.append(answer)
    body = {"model": FAMILY, "messages": MESSAGES}
    await serve_body(ex, body, "chat", {"x-request-id": "r-1"})
    found = await ex.decision_for({}, "r-1")
    return {k: v for k, v in found.items() if k not in ("request_id", "tenant")}


def _simulator(policy: Any, in_flight: int, spent: float, busy: bool) -> dict:
    budget = route_inputs.token_budget(prediction())
    body = {"model": FAMILY, "messages": MESSAGES}
    reqs = [SimRequest(rid=i, arrival_s=0.0, body=body, prompt_tokens=11, output_tokens=8)
            for i in range(2)]  # fmt: skip
    router = DecideRouter(LOCAL, policy, Prepared([budget, budget]), epoch=NOW)
    cluster = Cluster([ReplicaSpec.of(p) for p in LOCAL.profiles], [(1, 4)] * len(LOCAL.profiles))
    for pool, p in zip(cluster.pools, LOCAL.profiles, strict=True):
        batch = p.max_num_seqs or p.performance.max_concurrency  # as the server counts queued
        pool.ready = 1
        pool.in_flight = min(in_flight, batch)
        pool.pending = deque(range(max(0, in_flight - batch)))
    if spent:
        router.spend.add("default", spent, NOW, route_inputs.BUDGET_WINDOWS)
    if busy:  # one request of the tenant routed a moment ago and still running
        router.route(reqs[1], cluster, 0.0)
    outcome = plan(*router.plan_inputs(reqs[0], cluster, 0.0))
    return outcome.decision.model_dump(mode="json")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_same_inputs_same_decision(ingress, chat_completion, scenario):
    lines, in_flight, spent, busy = SCENARIOS[scenario]
    text = HEADER + lines
    policy = load_policy_text(text, "policy.yaml", LOCAL)
    server = await _server(ingress, policy, in_flight, spent, busy, chat_completion())
    simulated = _simulator(policy, in_flight, spent, busy)
    assert server == simulated
    if scenario not in ("idle", "loaded", "budget caps", "slo soft"):
        assert server["action"] == "reject"


def test_the_simulator_imports_nothing_from_serving():
    for path in (PROJECT_ROOT / "orchestrator" / "simulate").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                assert not name.startswith("orchestrator.serving"), f"{Path(path).name}: {name}"


@pytest.mark.parametrize("model", [FAMILY, "smollm2-cpu"])
async def test_a_closed_profile_is_planned_alike(ingress, chat_completion, model):
    """A profile scaled to zero that may open: the same live state (opening price, a whole
    start-up's wait) on both, so the same decision, whether it wins or loses."""
    closed = "smollm2-cpu"
    policy = load_policy_text(HEADER + BUDGETS, "policy.yaml", LOCAL)
    ingress.policy_source = SimpleNamespace(current=policy)
    ingress.budget.clock = lambda: NOW
    ingress.running[closed], ingress.ready[closed] = 0, False
    ingress.handle.streams.append(chat_completion())
    body = {"model": model, "messages": MESSAGES}
    await serve_body(ingress, body, "chat", {"x-request-id": "r-1"})
    found = await ingress.decision_for({}, "r-1")
    server = {k: v for k, v in found.items() if k not in ("request_id", "tenant")}

    budget = route_inputs.token_budget(prediction())
    req = SimRequest(rid=0, arrival_s=0.0, body=body, prompt_tokens=11, output_tokens=8)
    router = DecideRouter(LOCAL, policy, Prepared([budget]), epoch=NOW)
    cluster = Cluster([ReplicaSpec.of(p) for p in LOCAL.profiles], [(0, 4)] * len(LOCAL.profiles))
    for pool, p in zip(cluster.pools, LOCAL.profiles, strict=True):
        pool.ready = 0 if p.name == closed else 1
    simulated = plan(*router.plan_inputs(req, cluster, 0.0)).decision.model_dump(mode="json")
    assert server == simulated
    report = next(c for c in server["candidates"] if c["profile"] == closed)
    if model == closed:
        assert server["profile"] == closed
        assert any(s.startswith(f"open: {closed}") for s in server["steps"])
    else:  # an open profile of the same tier serves it: the opening is not worth it
        assert server["profile"] != closed and report["lost_because"][0] == "opening_price"
