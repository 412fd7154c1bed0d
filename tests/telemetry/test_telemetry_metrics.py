"""Metric names and values exactly as Prometheus scrapes them from `render_prometheus()`."""

from __future__ import annotations

import math
import re
import time

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.paths import PROJECT_ROOT
from orchestrator.telemetry.metrics import (
    INSTANCE_LABEL,
    METRIC_NAMES,
    OrchestratorMetrics,
    prediction_ratio,
    slo_outcome,
)

RULE_FILE = PROJECT_ROOT / "helm" / "orchestrator" / "templates" / "prometheusrule.yaml"


def scrape(metrics: OrchestratorMetrics) -> dict[tuple[str, frozenset], float]:
    """{(sample name, labels without the instance label): value} from the text exposition."""
    body, _ = metrics.render_prometheus()
    out: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k != INSTANCE_LABEL}
            out[(s.name, frozenset(labels.items()))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def families(metrics: OrchestratorMetrics) -> dict[str, str]:
    body, _ = metrics.render_prometheus()
    return {
        # the text parser drops the _total suffix of counter families; put it back
        (f.name + "_total" if f.type == "counter" else f.name): f.type
        for f in text_string_to_metric_families(body.decode())
        if f.name.startswith("orchestrator_")
    }


def test_exported_names_and_types_are_exactly_the_documented_ones(sample_metrics) -> None:
    assert families(sample_metrics) == METRIC_NAMES
    for required in (
        "orchestrator_cost_usd_total",
        "orchestrator_budget_limit_usd",
        "orchestrator_budget_remaining_usd",
        "orchestrator_slo_requests_total",
    ):
        assert required in METRIC_NAMES


def test_prometheus_rule_uses_only_exported_metrics(sample_metrics) -> None:
    used = set(re.findall(r"\b(orchestrator_[a-z0-9_]+)\{", RULE_FILE.read_text()))
    assert used >= {"orchestrator_cost_usd_total", "orchestrator_slo_requests_total"}
    assert used <= set(families(sample_metrics))


def test_every_series_carries_the_instance_label(sample_metrics) -> None:
    body, content_type = sample_metrics.render_prometheus()
    assert content_type.startswith("text/plain; version=0.0.4")
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            assert s.labels.get(INSTANCE_LABEL) == "test-0", s
            assert not any(k.startswith("otel_scope") for k in s.labels), s


def test_cost_tokens_and_requests(sample_metrics) -> None:
    s = scrape(sample_metrics)
    cost = "orchestrator_cost_usd_total"
    assert value(s, cost, tenant="acme", profile="smollm2-cpu") == pytest.approx(0.05)
    assert value(s, cost, tenant="acme", profile="smollm2-cpu-ngram") == pytest.approx(0.0025)
    assert value(s, cost, tenant="beta", profile="smollm2-cpu") == pytest.approx(0.25)
    assert not any(k[0] == cost and ("profile", "none") in k[1] for k in s)  # zero cost: no series

    tok = "orchestrator_tokens_total"
    base = {"tenant": "acme", "profile": "smollm2-cpu"}
    assert value(s, tok, kind="input", **base) == 150
    assert value(s, tok, kind="cached", **base) == 20
    assert value(s, tok, kind="output", **base) == 240
    assert value(s, tok, kind="reasoning", **base) == 10

    req = "orchestrator_requests_total"
    assert value(s, req, endpoint="chat", status_code="200", **base) == 2
    assert (
        value(s, req, tenant="beta", profile="smollm2-cpu", endpoint="chat", status_code="503") == 1
    )
    assert value(s, req, tenant="beta", profile="none", endpoint="chat", status_code="402") == 1


def test_routing_decisions(sample_metrics) -> None:
    s = scrape(sample_metrics)
    name = "orchestrator_routing_decisions_total"
    route = {"action": "route", "reason": "cheapest_meeting_slo"}
    assert value(s, name, profile="smollm2-cpu", **route) == 4
    assert value(s, name, profile="smollm2-cpu-ngram", **route) == 1
    assert value(s, name, profile="none", action="reject", reason="budget_exhausted") == 1


def test_slo_attainment_counts(sample_metrics) -> None:
    s = scrape(sample_metrics)
    name = "orchestrator_slo_requests_total"
    for slo in ("ttft", "tpot", "e2e"):
        # acme: two requests within every SLO, one over every SLO
        assert value(s, name, tenant="acme", slo=slo, outcome="met") == 2
        assert value(s, name, tenant="acme", slo=slo, outcome="missed") == 1
        # beta: one success within SLO, one 503 (missed), one 402 (not counted)
        assert value(s, name, tenant="beta", slo=slo, outcome="met") == 1
        assert value(s, name, tenant="beta", slo=slo, outcome="missed") == 1


def test_slo_attainment_share_per_tenant(sample_metrics) -> None:
    s = scrape(sample_metrics)
    # acme: 2 of 3 within every target; beta: the success within, the 503 not (402 not judged)
    assert value(s, "orchestrator_slo_attainment", tenant="acme") == pytest.approx(2 / 3)
    assert value(s, "orchestrator_slo_attainment", tenant="beta") == pytest.approx(1 / 2)
    now = time.monotonic()
    assert sample_metrics.attainment.of("acme", now).requests == 3


def test_prediction_accuracy(sample_metrics) -> None:
    s = scrape(sample_metrics)
    ratio = "orchestrator_prediction_actual_to_p50_ratio"
    cpu = {"profile": "smollm2-cpu"}
    # only successes are scored: 40 vs 30, 200 vs 40, 15 vs 15
    assert value(s, ratio + "_count", **cpu) == 3
    assert value(s, ratio + "_sum", **cpu) == pytest.approx(41 / 31 + 201 / 41 + 1.0)
    assert value(s, ratio + "_bucket", le="0.8409", **cpu) == 0
    assert value(s, ratio + "_bucket", le="1.0", **cpu) == 1  # the exact one
    assert value(s, ratio + "_bucket", le="1.4142", **cpu) == 2
    assert value(s, ratio + "_bucket", le="4.0", **cpu) == 2
    assert value(s, ratio + "_bucket", le="8.0", **cpu) == 3
    ngram = {"profile": "smollm2-cpu-ngram"}  # 5 vs 10
    assert value(s, ratio + "_bucket", le="0.5", **ngram) == 0
    assert value(s, ratio + "_bucket", le="0.7071", **ngram) == 1

    p90 = "orchestrator_prediction_p90_total"
    assert value(s, p90, outcome="covered", **cpu) == 2
    assert value(s, p90, outcome="exceeded", **cpu) == 1
    assert value(s, p90, outcome="covered", profile="smollm2-cpu-ngram") == 1


def test_latency_histograms_in_seconds(sample_metrics) -> None:
    s = scrape(sample_metrics)
    acme = {"tenant": "acme", "profile": "smollm2-cpu"}
    ttft = "orchestrator_time_to_first_token_seconds"
    assert value(s, ttft + "_count", **acme) == 2
    assert value(s, ttft + "_sum", **acme) == pytest.approx(0.5)
    assert value(s, ttft + "_bucket", le="0.25", **acme) == 1
    assert value(s, "orchestrator_time_per_output_token_seconds_sum", **acme) == pytest.approx(0.03)
    e2e = "orchestrator_request_duration_seconds"
    assert value(s, e2e + "_count", **acme) == 2
    # errors have an e2e latency but no TTFT
    beta = {"tenant": "beta", "profile": "smollm2-cpu"}
    assert value(s, e2e + "_count", **beta) == 2
    assert value(s, ttft + "_count", **beta) == 1


def test_gauges_hold_the_last_value(sample_metrics) -> None:
    sample_metrics.set_budget("acme", "day", 10.0, 9.5)
    sample_metrics.set_budget("beta", "day", 1.0, -0.2)  # overspent: remaining clamps at 0
    sample_metrics.set_replicas("smollm2-cpu", 3, 2)
    s = scrape(sample_metrics)
    assert value(s, "orchestrator_budget_limit_usd", tenant="acme", window="day") == 10.0
    assert value(s, "orchestrator_budget_remaining_usd", tenant="acme", window="day") == 9.5
    assert value(s, "orchestrator_budget_remaining_usd", tenant="acme", window="month") == 150.0
    assert value(s, "orchestrator_budget_remaining_usd", tenant="beta", window="day") == 0.0
    assert value(s, "orchestrator_spend_rate_usd_per_hour", tenant="acme") == 0.4
    assert value(s, "orchestrator_replicas_target", profile="smollm2-cpu") == 3
    assert value(s, "orchestrator_replicas_current", profile="smollm2-cpu") == 2


def test_instances_are_isolated_from_each_other_and_the_global_registry() -> None:
    a, b = OrchestratorMetrics(instance_id="a"), OrchestratorMetrics(instance_id="b")
    try:
        a.set_spend_rate("t", 1.0)
        assert ("orchestrator_spend_rate_usd_per_hour", frozenset({("tenant", "t")})) in scrape(a)
        assert not any(k[0].startswith("orchestrator_") for k in scrape(b))
        global_names = {f.name for f in REGISTRY.collect()}
        assert not any(n.startswith("orchestrator_") for n in global_names)
    finally:
        a.shutdown()
        b.shutdown()


def test_openmetrics_is_served_when_asked_for(sample_metrics) -> None:
    body, content_type = sample_metrics.render_prometheus(
        "application/openmetrics-text; version=1.0.0"
    )
    assert content_type.startswith("application/openmetrics-text")
    text = body.decode()
    assert text.rstrip().endswith("# EOF")
    assert 'orchestrator_cost_usd_total{profile="smollm2-cpu",' in text


@pytest.mark.parametrize(
    ("actual", "p50", "expected_log2"),
    [(0, 0, 0.0), (1, 0, 1.0), (0, 1, -1.0), (63, 31, 1.0), (31, 63, -1.0)],
)
def test_prediction_ratio(actual: int, p50: float, expected_log2: float) -> None:
    assert math.log2(prediction_ratio(actual, p50)) == pytest.approx(expected_log2)


def test_prediction_ratio_rejects_negative_counts() -> None:
    with pytest.raises(ValueError):
        prediction_ratio(-1, 3)


@pytest.mark.parametrize(
    ("status", "measured", "target", "expected"),
    [
        (200, 0.5, None, None),  # no target: not counted
        (200, 0.5, 0.5, "met"),  # at the target is met
        (200, 0.6, 0.5, "missed"),
        (200, None, 0.5, None),  # never measured
        (503, None, 0.5, "missed"),  # server failure misses every SLO
        (500, 0.1, 0.5, "missed"),
        (429, 0.1, 0.5, None),  # policy/client errors are not SLO events
        (400, None, 0.5, None),
    ],
)
def test_slo_outcome(status: int, measured, target, expected) -> None:
    assert slo_outcome(status, measured, target) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("server_overloaded", "missed"),  # shed for capacity: the server's miss
        ("queue_full", "missed"),
        ("queue_timeout", "missed"),
        ("profile_lost", "missed"),
        ("rate_limit_exceeded", None),  # the policy's rate limit: not an SLO event
        (None, None),
    ],
)
def test_slo_outcome_counts_capacity_refusals_as_misses(code: str | None, expected) -> None:
    assert slo_outcome(429, None, 0.5, code) == expected


def test_attainment_counts_a_request_shed_for_capacity() -> None:
    """A 429 for capacity lowers the tenant's attainment; a policy 4xx leaves it alone."""
    metrics = OrchestratorMetrics(instance_id="t")
    common = dict(
        profile=None, endpoint="chat", decision_action="reject", prompt_tokens=0,
        cached_tokens=0, output_tokens=0, reasoning_tokens=0, cost_usd=0.0,
        predicted_p50=None, predicted_p90=None, ttft_s=None, tpot_s=None, e2e_s=0.01,
        slo_ttft_s=1.0, slo_tpot_s=None, slo_e2e_s=None,
    )  # fmt: skip
    metrics.record_request(tenant="a", status_code=200, **{**common, "ttft_s": 0.2,
                           "decision_action": "route", "decision_reason_code": "route"})  # fmt: skip
    metrics.record_request(tenant="a", status_code=402, decision_reason_code="cost_cap_exceeded",
                           **common)  # fmt: skip
    assert metrics.attainment.of("a", time.monotonic()).share == 1.0
    metrics.record_request(tenant="a", status_code=429, decision_reason_code="queue_timeout",
                           **common)  # fmt: skip
    assert metrics.attainment.of("a", time.monotonic()).share == 0.5
