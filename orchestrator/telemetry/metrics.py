"""Request, cost, budget, SLO and capacity metrics: OpenTelemetry API, Prometheus exposition.

One `OrchestratorMetrics` per ingress process. It owns a private SDK `MeterProvider` whose only
reader is a `PrometheusMetricReader` bound to a private `CollectorRegistry`, so it never collides
with Ray's or vLLM's metrics in the process-global prometheus_client registry, and several
instances (tests) can live side by side.

Exported names are pinned in `METRIC_NAMES` (a test checks them against the real exposition):
OpenTelemetry instrument names carry the unit where Prometheus wants it (`_usd`, `_seconds`)
and use UCUM annotation units (`{USD}`, `{token}`) that the exporter does not append again;
counters get `_total` from the exporter. Every series carries `service_instance_id` (the
resource attribute `service.instance.id`) so replicas scraped through one Service stay apart.

Token convention (the router's): `output_tokens` is the visible answer, `reasoning_tokens` the
thinking tokens, so output + reasoning = the engine's completion tokens; `predicted_p50/p90`
predict `output_tokens`.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from orchestrator.attainment import AttainmentTracker, judged
from orchestrator.telemetry.summed_counter import SummedCounter
from orchestrator.telemetry.summed_histogram import SummedHistogram

SERVICE_NAME = "orchestrator"
INSTANCE_LABEL = "service_instance_id"
NO_PROFILE = "none"  # label value for requests answered before a profile was chosen

# Prometheus names (what PromQL sees) -> kind; histograms also export _bucket/_sum/_count.
REQUESTS = "orchestrator_requests_total"
TOKENS = "orchestrator_tokens_total"
COST = "orchestrator_cost_usd_total"
PREDICTION_RATIO = "orchestrator_prediction_actual_to_p50_ratio"
PREDICTION_P90 = "orchestrator_prediction_p90_total"
DECISIONS = "orchestrator_routing_decisions_total"
TTFT = "orchestrator_time_to_first_token_seconds"
TPOT = "orchestrator_time_per_output_token_seconds"
E2E = "orchestrator_request_duration_seconds"
SLO_REQUESTS = "orchestrator_slo_requests_total"
SLO_ATTAINMENT = "orchestrator_slo_attainment"
BUDGET_LIMIT = "orchestrator_budget_limit_usd"
BUDGET_REMAINING = "orchestrator_budget_remaining_usd"
SPEND_RATE = "orchestrator_spend_rate_usd_per_hour"
REPLICAS_TARGET = "orchestrator_replicas_target"
REPLICAS_CURRENT = "orchestrator_replicas_current"
REPLICA_COST = "orchestrator_replica_cost_usd_per_hour"
CEILING_BINDING = "orchestrator_spend_ceiling_binding"
BATCH_JOBS = "orchestrator_batch_jobs"
BATCH_LINES = "orchestrator_batch_lines"
BATCH_FINISH = "orchestrator_batch_predicted_finish_seconds"
UNPLACED = "orchestrator_demand_unplaced_share"

METRIC_NAMES: dict[str, str] = {
    SLO_ATTAINMENT: "gauge",
    REQUESTS: "counter",
    TOKENS: "counter",
    COST: "counter",
    PREDICTION_RATIO: "histogram",
    PREDICTION_P90: "counter",
    DECISIONS: "counter",
    TTFT: "histogram",
    TPOT: "histogram",
    E2E: "histogram",
    SLO_REQUESTS: "counter",
    BUDGET_LIMIT: "gauge",
    BUDGET_REMAINING: "gauge",
    SPEND_RATE: "gauge",
    REPLICAS_TARGET: "gauge",
    REPLICA_COST: "gauge",
    UNPLACED: "gauge",
    CEILING_BINDING: "gauge",
    REPLICAS_CURRENT: "gauge",
}

TTFT_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TPOT_BUCKETS_S = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2)
E2E_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0)
# (actual+1)/(p50+1) on log2-spaced edges 2^k, k in -4..3 (OpenTelemetry histograms take no
# negative values, so the ratio is recorded and PromQL takes log2 of its quantiles).
RATIO_BUCKETS = tuple(
    round(2.0**k, 4) for k in (-4, -3, -2, -1.5, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 1.5, 2, 3)
)


@dataclass(frozen=True)
class InstrumentSpec:
    """One OpenTelemetry instrument: its name (Prometheus adds `_total` to counters), UCUM
    unit, help text and, for a histogram, its bucket edges."""

    kind: Literal["counter", "histogram", "gauge"]
    name: str
    unit: str
    description: str
    buckets: tuple[float, ...] | None = None

    def create(self, meter: Meter, registry: CollectorRegistry, labels: Mapping[str, str]) -> Any:
        """The instrument: a counter (summed in the process, read at collection:
        `SummedCounter`) or a (synchronous) gauge on `meter`, or a histogram summed in the
        process and collected by `registry` with `labels` on every series
        (`SummedHistogram`: what the SDK's histogram exposes, for less per record)."""
        if self.kind == "counter":
            return SummedCounter(meter, self.name, unit=self.unit, description=self.description)
        if self.kind == "gauge":
            return meter.create_gauge(self.name, unit=self.unit, description=self.description)
        histogram = SummedHistogram(
            self.name, self.unit, self.description, self.buckets or (), labels=labels
        )
        registry.register(histogram)
        return histogram


# Every instrument of `OrchestratorMetrics`, by the key its methods use.
INSTRUMENTS: dict[str, InstrumentSpec] = {
    "requests": InstrumentSpec(
        "counter", "orchestrator_requests", "{request}", "Requests answered"
    ),
    "tokens": InstrumentSpec(
        "counter",
        "orchestrator_tokens",
        "{token}",
        "Tokens by kind: input (incl. cached), cached, output, reasoning",
    ),
    "cost": InstrumentSpec(
        "counter", "orchestrator_cost_usd", "{USD}", "Actual cost of served requests"
    ),
    "pred_ratio": InstrumentSpec(
        "histogram",
        PREDICTION_RATIO,
        "1",
        "(actual+1)/(predicted p50+1) of output tokens",
        RATIO_BUCKETS,
    ),
    "pred_p90": InstrumentSpec(
        "counter",
        "orchestrator_prediction_p90",
        "{request}",
        "Requests whose output tokens were within (covered) or above the p90",
    ),
    "decisions": InstrumentSpec(
        "counter",
        "orchestrator_routing_decisions",
        "{decision}",
        "Routing decisions by chosen profile, action and reason code",
    ),
    "ttft": InstrumentSpec(
        "histogram", "orchestrator_time_to_first_token", "s", "Time to first token", TTFT_BUCKETS_S
    ),
    "tpot": InstrumentSpec(
        "histogram",
        "orchestrator_time_per_output_token",
        "s",
        "Mean time per output token after the first",
        TPOT_BUCKETS_S,
    ),
    "e2e": InstrumentSpec(
        "histogram",
        "orchestrator_request_duration",
        "s",
        "End-to-end request latency at the ingress",
        E2E_BUCKETS_S,
    ),
    "slo": InstrumentSpec(
        "counter",
        "orchestrator_slo_requests",
        "{request}",
        "Requests per tenant SLO (ttft, tpot, e2e) that met or missed it",
    ),
    "attainment": InstrumentSpec(
        "gauge",
        SLO_ATTAINMENT,
        "1",
        "Share of the tenant's requests within all their latency targets over the last "
        "5 minutes (a p95 target is met while this stays >= 0.95)",
    ),
    "budget_limit": InstrumentSpec("gauge", BUDGET_LIMIT, "{USD}", "Tenant budget per window"),
    "budget_remaining": InstrumentSpec(
        "gauge", BUDGET_REMAINING, "{USD}", "Tenant budget left in the current window"
    ),
    "spend_rate": InstrumentSpec("gauge", SPEND_RATE, "{USD}/h", "Tenant spend rate"),
    "replicas_target": InstrumentSpec(
        "gauge", REPLICAS_TARGET, "{replica}", "Replicas the planner wants per profile"
    ),
    "replicas_current": InstrumentSpec(
        "gauge", REPLICAS_CURRENT, "{replica}", "Running replicas per profile"
    ),
    "replica_cost": InstrumentSpec(
        "gauge", REPLICA_COST, "{USD}/h", "Replica cost at the controller's targets"
    ),
    "ceiling_binding": InstrumentSpec(
        "gauge",
        CEILING_BINDING,
        "1",
        "1 while autoscaling.max_cost_per_hour_usd holds replicas back",
    ),
    "batch_jobs": InstrumentSpec(
        "gauge", BATCH_JOBS, "{job}", "Batch jobs by state (every tenant)"
    ),
    "batch_lines": InstrumentSpec(
        "gauge", BATCH_LINES, "{line}", "Lines of unfinished batch jobs by state"
    ),
    "batch_finish": InstrumentSpec(
        "gauge",
        BATCH_FINISH,
        "s",
        "Seconds until the last unfinished batch job is predicted to finish",
    ),
    "queue_wait": InstrumentSpec(
        "histogram",
        "orchestrator_queue_wait",
        "s",
        "Time a request waited in the ingress queue for a batch slot, per tenant and priority "
        "class (0 when a slot was free)",
        TTFT_BUCKETS_S,
    ),
    "queue_refused": InstrumentSpec(
        "counter",
        "orchestrator_queue_refused",
        "{request}",
        "Requests refused by the ingress queue (429): queue_full, queue_shrunk, queue_timeout, "
        "profile_lost",
    ),
    "queue_length": InstrumentSpec(
        "gauge",
        "orchestrator_queue_length",
        "{request}",
        "Requests waiting in the ingress queue per profile, tenant and class",
    ),
    "unplaced": InstrumentSpec(
        "gauge",
        UNPLACED,
        "1",
        "Share of a model family's forecast load the controller's plan cannot place "
        "(accelerators, max_replicas or the $/hour ceiling)",
    ),
}


def prediction_ratio(actual_tokens: int, predicted_p50: float) -> float:
    """(actual + 1) / (p50 + 1): 1 is exact, 2 twice as long as predicted, 0.5 half; always
    > 0 and finite (the +1 keeps empty answers and zero predictions defined). Its log2 is the
    signed error, symmetric in over- and under-prediction."""
    if actual_tokens < 0 or predicted_p50 < 0:
        raise ValueError("token counts must be >= 0")
    return (actual_tokens + 1) / (predicted_p50 + 1)


def slo_outcome(
    status_code: int, measured_s: float | None, target_s: float | None, code: str | None = None
) -> str | None:
    """'met', 'missed' or None (not counted) for one SLO of one request.

    Counted only when the SLO has a target and the request is judged (`attainment.judged`):
    a server-side failure (5xx) or a refusal for capacity (429 with a capacity `code`) misses
    every SLO it had; a client or policy error (other 4xx: bad request, budget, rate limit) is
    not counted; a success is met iff the measurement is known and <= target (unknown, e.g.
    TTFT of a request that never produced a token, is not counted).
    """
    if target_s is None:
        return None
    if not judged(status_code, code):
        return None
    if status_code >= 400:
        return "missed"
    if measured_s is None:
        return None
    return "met" if measured_s <= target_s else "missed"


def default_instance_id() -> str:
    """host-pid-random: unique per process, readable in a dashboard legend."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class OrchestratorMetrics:
    """The ingress's metrics; thread-safe (the OpenTelemetry SDK instruments are, and so are
    the counters, `SummedCounter`s: the per-request path's cheapest instrument)."""

    def __init__(
        self, *, instance_id: str | None = None, resource: Mapping[str, str] | None = None
    ) -> None:
        attrs = {
            "service.name": SERVICE_NAME,
            "service.instance.id": instance_id or default_instance_id(),
            **(resource or {}),
        }
        self.registry = CollectorRegistry(auto_describe=False)
        self._reader = PrometheusMetricReader(
            scope_info_enabled=False,  # no otel_scope_* labels on every series
            registry=self.registry,
            resource_attribute_filter=lambda key: key == "service.instance.id",
        )
        self._provider = MeterProvider(
            metric_readers=[self._reader], resource=Resource.create(attrs)
        )
        meter = self._provider.get_meter("orchestrator")
        instance = {"service_instance_id": attrs["service.instance.id"]}  # as the reader labels
        self._m = {
            key: spec.create(meter, self.registry, instance) for key, spec in INSTRUMENTS.items()
        }
        self.attainment = AttainmentTracker()

    # ----- per request ----------------------------------------------------------------
    def record_request(
        self,
        *,
        tenant: str,
        profile: str | None,
        endpoint: str,
        status_code: int,
        decision_action: str | None,
        decision_reason_code: str | None,
        prompt_tokens: int,
        cached_tokens: int,
        output_tokens: int,
        reasoning_tokens: int,
        cost_usd: float,
        predicted_p50: float | None,
        predicted_p90: float | None,
        ttft_s: float | None,
        tpot_s: float | None,
        e2e_s: float,
        slo_ttft_s: float | None,
        slo_tpot_s: float | None,
        slo_e2e_s: float | None,
    ) -> None:
        """Account one finished request (success or error). Call exactly once per request.

        Predictions are scored only for successes (status < 400) that carry a p50/p90;
        latencies are observed only when known; a routing decision is counted when
        `decision_action` is given (rejections included).
        """
        prof = profile or NO_PROFILE
        base = {"tenant": tenant, "profile": prof}
        self._m["requests"].add(
            1, {**base, "endpoint": endpoint, "status_code": str(int(status_code))}
        )
        for kind, count in (
            ("input", prompt_tokens),
            ("cached", cached_tokens),
            ("output", output_tokens),
            ("reasoning", reasoning_tokens),
        ):
            if count > 0:
                self._m["tokens"].add(count, {**base, "kind": kind})
        if cost_usd > 0:
            self._m["cost"].add(cost_usd, base)
        if decision_action is not None:
            self._m["decisions"].add(
                1,
                {
                    "profile": prof,
                    "action": decision_action,
                    "reason": decision_reason_code or "unknown",
                },
            )
        ok = status_code < 400
        if ok and predicted_p50 is not None:
            self._m["pred_ratio"].record(
                prediction_ratio(output_tokens, predicted_p50), {"profile": prof}
            )
        if ok and predicted_p90 is not None:
            outcome = "covered" if output_tokens <= predicted_p90 else "exceeded"
            self._m["pred_p90"].add(1, {"profile": prof, "outcome": outcome})
        if ok:
            if ttft_s is not None:
                self._m["ttft"].record(ttft_s, base)
            if tpot_s is not None:
                self._m["tpot"].record(tpot_s, base)
        self._m["e2e"].record(e2e_s, base)
        judged: list[str] = []
        for slo, measured, target in (
            ("ttft", ttft_s, slo_ttft_s),
            ("tpot", tpot_s, slo_tpot_s),
            ("e2e", e2e_s, slo_e2e_s),
        ):
            outcome = slo_outcome(status_code, measured, target, decision_reason_code)
            if outcome is not None:
                self._m["slo"].add(1, {"tenant": tenant, "slo": slo, "outcome": outcome})
                judged.append(outcome)
        if judged:  # the request counts for its tenant's attainment: within every target?
            now = time.monotonic()
            self.attainment.observe(tenant, "missed" not in judged, now)
            share = self.attainment.of(tenant, now).share
            if share is not None:
                self._m["attainment"].set(share, {"tenant": tenant})

    # ----- the ingress queue ------------------------------------------------------------
    def queue_wait(self, tenant: str, priority: int, seconds: float) -> None:
        self._m["queue_wait"].record(seconds, {"tenant": tenant, "priority": str(priority)})

    def queue_refused(self, tenant: str, reason: str) -> None:
        self._m["queue_refused"].add(1, {"tenant": tenant, "reason": reason})

    def set_queue_length(self, profile: str, tenant: str, priority: int, waiting: int) -> None:
        attrs = {"profile": profile, "tenant": tenant, "priority": str(priority)}
        self._m["queue_length"].set(waiting, attrs)

    # ----- state gauges ---------------------------------------------------------------
    def set_budget(self, tenant: str, window: str, limit_usd: float, remaining_usd: float) -> None:
        """Budget of `tenant` for `window` (hour/day/month); remaining is clamped at >= 0."""
        attrs = {"tenant": tenant, "window": window}
        self._m["budget_limit"].set(limit_usd, attrs)
        self._m["budget_remaining"].set(max(remaining_usd, 0.0), attrs)

    def set_spend_rate(self, tenant: str, usd_per_hour: float) -> None:
        self._m["spend_rate"].set(usd_per_hour, {"tenant": tenant})

    def set_controller(
        self,
        cost_usd_per_hour: float,
        ceiling_binding: bool,
        unplaced: Mapping[str, float] | None = None,
    ) -> None:
        """The controller's last decision; `unplaced` = per family, the share of its forecast
        load left unplaced (give every family, 0 included, so a cleared alert reads 0)."""
        self._m["replica_cost"].set(cost_usd_per_hour)
        self._m["ceiling_binding"].set(1 if ceiling_binding else 0)
        for family, share in (unplaced or {}).items():
            self._m["unplaced"].set(share, {"family": family})

    def set_replicas(self, profile: str, target: int, current: int) -> None:
        self._m["replicas_target"].set(target, {"profile": profile})
        self._m["replicas_current"].set(current, {"profile": profile})

    def set_batches(self, jobs: dict[str, int], lines: dict[str, int], finish_in_s: float) -> None:
        """Batch jobs and their lines by state; seconds until the last active job's
        predicted end (0 with none active)."""
        for state in ("in_progress", "cancelling", "completed", "failed", "expired", "cancelled"):
            self._m["batch_jobs"].set(jobs.get(state, 0), {"state": state})
        for state in ("pending", "running", "done", "failed", "cancelled"):
            self._m["batch_lines"].set(lines.get(state, 0), {"state": state})
        self._m["batch_finish"].set(max(0.0, finish_in_s))

    # ----- exposition -----------------------------------------------------------------
    def render_prometheus(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type) for `GET /metrics`; OpenMetrics when `accept` asks for it."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def shutdown(self) -> None:
        self._provider.shutdown()
