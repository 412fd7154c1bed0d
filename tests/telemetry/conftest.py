"""Shared fixtures: a metrics instance fed with representative requests, and a simulated
ingress request path that opens the request -> predict -> route -> engine spans."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from opentelemetry.trace import Tracer

from orchestrator.paths import PROJECT_ROOT
from orchestrator.telemetry import tracing
from orchestrator.telemetry.metrics import OrchestratorMetrics
from tests.ports import free_port

# (tenant, profile, status, prompt, cached, output, reasoning, cost, p50, p90, ttft, tpot, e2e)
SAMPLE_REQUESTS: list[tuple[Any, ...]] = [
    ("acme", "smollm2-cpu", 200, 100, 20, 40, 0, 0.0125, 30, 60, 0.2, 0.01, 0.8),
    ("acme", "smollm2-cpu", 200, 50, 0, 200, 10, 0.0375, 40, 80, 0.3, 0.02, 4.5),
    ("acme", "smollm2-cpu-ngram", 200, 10, 0, 5, 0, 0.0025, 10, 20, 0.1, 0.005, 0.2),
    ("beta", "smollm2-cpu", 200, 30, 0, 15, 0, 0.25, 15, 30, 0.15, 0.01, 0.5),
    ("beta", "smollm2-cpu", 503, 30, 0, 0, 0, 0.0, 15, 30, None, None, 0.05),
    ("beta", None, 402, 0, 0, 0, 0, 0.0, None, None, None, None, 0.01),
]
SLO = {"ttft": 0.25, "tpot": 0.015, "e2e": 1.0}


def record_sample(
    metrics: OrchestratorMetrics, rows: list[tuple[Any, ...]] = SAMPLE_REQUESTS
) -> None:
    for tenant, profile, status, prompt, cached, out, reas, cost, p50, p90, ttft, tpot, e2e in rows:
        metrics.record_request(
            tenant=tenant,
            profile=profile,
            endpoint="chat",
            status_code=status,
            decision_action="reject" if status == 402 else "route",
            decision_reason_code="budget_exhausted" if status == 402 else "cheapest_meeting_slo",
            prompt_tokens=prompt,
            cached_tokens=cached,
            output_tokens=out,
            reasoning_tokens=reas,
            cost_usd=cost,
            predicted_p50=p50,
            predicted_p90=p90,
            ttft_s=ttft,
            tpot_s=tpot,
            e2e_s=e2e,
            slo_ttft_s=SLO["ttft"],
            slo_tpot_s=SLO["tpot"],
            slo_e2e_s=SLO["e2e"],
        )
    metrics.set_budget("acme", "day", 10.0, 9.95)
    metrics.set_budget("acme", "month", 200.0, 150.0)
    metrics.set_budget("beta", "day", 1.0, 0.75)
    metrics.set_spend_rate("acme", 0.4)
    metrics.set_spend_rate("beta", 0.05)
    metrics.set_replicas("smollm2-cpu", 2, 1)
    metrics.set_replicas("smollm2-cpu-ngram", 1, 1)
    metrics.set_controller(0.08, False, {"smollm2-135m": 0.25})


@pytest.fixture
def sample_metrics() -> Iterator[OrchestratorMetrics]:
    metrics = OrchestratorMetrics(instance_id="test-0")
    record_sample(metrics)
    yield metrics
    metrics.shutdown()


@pytest.fixture(scope="session")
def record_sample_requests() -> Callable[..., None]:
    return record_sample


def simulate_request(
    headers: Mapping[str, str], tracer: Tracer, *, fail_engine: bool = False
) -> str:
    """What the ingress does for one request; returns the request span's trace id."""
    with tracing.request_span(headers, "POST /v1/chat/completions", tracer=tracer) as root:
        tracing.record_request_info(root, tenant="acme", request_id="req-1", endpoint="chat")
        with tracing.predict_span(tracer=tracer) as span:
            tracing.record_prediction(
                span, p50_tokens=30, p90_tokens=60, prompt_tokens=100, query_class="standard"
            )
        with tracing.route_span(tracer=tracer) as span:
            tracing.record_route(
                span,
                profile="smollm2-cpu",
                action="route",
                reason="cheapest_meeting_slo",
                candidates=2,
                estimated_cost_usd=0.0125,
            )
        tracing.record_route(
            root,
            profile="smollm2-cpu",
            action="route",
            reason="cheapest_meeting_slo",
            candidates=2,
            estimated_cost_usd=0.0125,
        )
        if fail_engine:
            with tracing.engine_span(tracer=tracer):
                raise RuntimeError("engine died")
        # the engine span is started and ended explicitly, as for a streamed answer
        engine = tracing.start_child_span(tracing.SPAN_ENGINE, parent=root, tracer=tracer)
        tracing.record_engine_result(
            engine, ttft_s=0.2, output_tokens=40, actual_cost_usd=0.011, prompt_tokens=100
        )
        engine.end()
        tracing.record_engine_result(root, ttft_s=0.2, output_tokens=40, actual_cost_usd=0.011)
        tracing.record_http_status(root, 200)
        return tracing.trace_id_hex(root) or ""


@pytest.fixture(scope="session")
def simulated_request() -> Callable[..., str]:
    return simulate_request


@pytest.fixture(scope="session")
def port_factory() -> Callable[[], int]:
    return free_port


DASHBOARD = PROJECT_ROOT / "helm" / "orchestrator" / "dashboards" / "orchestrator.json"


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL expr) for every target of every panel, rows' children included."""
    out: list[tuple[str, str]] = []
    for panel in board["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            out += [(p["title"], t["expr"]) for t in p.get("targets", [])]
    return out


@pytest.fixture(scope="session")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="session")
def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return panel_queries(dashboard)
