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

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from orchestrator.attainment import AttainmentTracker
from orchestrator.telemetry.summed_counter import SummedCounter

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


def prediction_ratio(actual_tokens: int, predicted_p50: float) -> float:
    """(actual + 1) / (p50 + 1): 1 is exact, 2 twice as long as predicted, 0.5 half; always
    > 0 and finite (the +1 keeps empty answers and zero predictions defined). Its log2 is the
    signed error, symmetric in over- and under-prediction."""
    if actual_tokens < 0 or predicted_p50 < 0:
        raise ValueError("token counts must be >= 0")
    return (actual_tokens + 1) / (predicted_p50 + 1)


def slo_outcome(status_code: int, measured_s: float | None, target_s: float | None) -> str | None:
    """'met', 'missed' or None (not counted) for one SLO of one request.

    Counted only when the SLO has a target. A server-side failure (5xx) misses every SLO it
    had; a client or policy error (4xx: bad request, budget, rate limit) is not counted; a
    success is met iff the measurement is known and <= target (unknown, e.g. TTFT of a request
    that never produced a token, is not counted).
    """
    if target_s is None:
        return None
    if status_code >= 500:
        return "missed"
    if status_code >= 400 or measured_s is None:
        return None
    return "met" if measured_s <= target_s else "missed"


def default_instance_id() -> str:
    """host-pid-random: unique per process, readable in a dashboard legend."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class OrchestratorMetrics:
    """The ingress's metrics; thread-safe (the OpenTelemetry SDK instruments are, and the
    per-request counters are `SummedCounter`s)."""

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

        self._requests = SummedCounter(
            meter, "orchestrator_requests", unit="{request}", description="Requests answered"
        )
        self._tokens = SummedCounter(
            meter,
            "orchestrator_tokens",
            unit="{token}",
            description="Tokens by kind: input (incl. cached), cached, output, reasoning",
        )
        self._cost = SummedCounter(
            meter,
            "orchestrator_cost_usd",
            unit="{USD}",
            description="Actual cost of served requests",
        )
        self._pred_ratio = meter.create_histogram(
            PREDICTION_RATIO,
            unit="1",
            description="(actual+1)/(predicted p50+1) of output tokens",
            explicit_bucket_boundaries_advisory=RATIO_BUCKETS,
        )
        self._pred_p90 = SummedCounter(
            meter,
            "orchestrator_prediction_p90",
            unit="{request}",
            description="Requests whose output tokens were within (covered) or above the p90",
        )
        self._decisions = SummedCounter(
            meter,
            "orchestrator_routing_decisions",
            unit="{decision}",
            description="Routing decisions by chosen profile, action and reason code",
        )
        self._ttft = meter.create_histogram(
            "orchestrator_time_to_first_token",
            unit="s",
            description="Time to first token",
            explicit_bucket_boundaries_advisory=TTFT_BUCKETS_S,
        )
        self._tpot = meter.create_histogram(
            "orchestrator_time_per_output_token",
            unit="s",
            description="Mean time per output token after the first",
            explicit_bucket_boundaries_advisory=TPOT_BUCKETS_S,
        )
        self._e2e = meter.create_histogram(
            "orchestrator_request_duration",
            unit="s",
            description="End-to-end request latency at the ingress",
            explicit_bucket_boundaries_advisory=E2E_BUCKETS_S,
        )
        self._slo = SummedCounter(
            meter,
            "orchestrator_slo_requests",
            unit="{request}",
            description="Requests per tenant SLO (ttft, tpot, e2e) that met or missed it",
        )
        self.attainment = AttainmentTracker()
        self._attainment = meter.create_gauge(
            SLO_ATTAINMENT,
            unit="1",
            description="Share of the tenant's requests within all their latency targets over "
            "the last 5 minutes (a p95 target is met while this stays >= 0.95)",
        )
        self._budget_limit = meter.create_gauge(
            BUDGET_LIMIT, unit="{USD}", description="Tenant budget per window"
        )
        self._budget_remaining = meter.create_gauge(
            BUDGET_REMAINING, unit="{USD}", description="Tenant budget left in the current window"
        )
        self._spend_rate = meter.create_gauge(
            SPEND_RATE, unit="{USD}/h", description="Tenant spend rate"
        )
        self._replicas_target = meter.create_gauge(
            REPLICAS_TARGET, unit="{replica}", description="Replicas the planner wants per profile"
        )
        self._replicas_current = meter.create_gauge(
            REPLICAS_CURRENT, unit="{replica}", description="Running replicas per profile"
        )
        self._replica_cost = meter.create_gauge(
            REPLICA_COST, unit="{USD}/h", description="Replica cost at the controller's targets"
        )
        self._ceiling_binding = meter.create_gauge(
            CEILING_BINDING,
            unit="1",
            description="1 while autoscaling.max_cost_per_hour_usd holds replicas back",
        )
        self._batch_jobs = meter.create_gauge(
            BATCH_JOBS, unit="{job}", description="Batch jobs by state (every tenant)"
        )
        self._batch_lines = meter.create_gauge(
            BATCH_LINES, unit="{line}", description="Lines of unfinished batch jobs by state"
        )
        self._batch_finish = meter.create_gauge(
            BATCH_FINISH,
            unit="s",
            description="Seconds until the last unfinished batch job is predicted to finish",
        )
        self._queue_wait = meter.create_histogram(
            "orchestrator_queue_wait",
            unit="s",
            description="Time a request waited in the ingress queue for a batch slot, per "
            "tenant and priority class (0 when a slot was free)",
            explicit_bucket_boundaries_advisory=TTFT_BUCKETS_S,
        )
        self._queue_refused = meter.create_counter(
            "orchestrator_queue_refused",
            unit="{request}",
            description="Requests refused by the ingress queue (429): queue_full, queue_shrunk",
        )
        self._queue_length = meter.create_gauge(
            "orchestrator_queue_length",
            unit="{request}",
            description="Requests waiting in the ingress queue per profile, tenant and class",
        )
        self._unplaced = meter.create_gauge(
            UNPLACED,
            unit="1",
            description="Share of a model family's forecast load the controller's plan "
            "cannot place (accelerators, max_replicas or the $/hour ceiling)",
        )

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
        self._requests.add(1, {**base, "endpoint": endpoint, "status_code": str(int(status_code))})
        for kind, count in (
            ("input", prompt_tokens),
            ("cached", cached_tokens),
            ("output", output_tokens),
            ("reasoning", reasoning_tokens),
        ):
            if count > 0:
                self._tokens.add(count, {**base, "kind": kind})
        if cost_usd > 0:
            self._cost.add(cost_usd, base)
        if decision_action is not None:
            self._decisions.add(
                1,
                {
                    "profile": prof,
                    "action": decision_action,
                    "reason": decision_reason_code or "unknown",
                },
            )
        ok = status_code < 400
        if ok and predicted_p50 is not None:
            self._pred_ratio.record(
                prediction_ratio(output_tokens, predicted_p50), {"profile": prof}
            )
        if ok and predicted_p90 is not None:
            outcome = "covered" if output_tokens <= predicted_p90 else "exceeded"
            self._pred_p90.add(1, {"profile": prof, "outcome": outcome})
        if ok:
            if ttft_s is not None:
                self._ttft.record(ttft_s, base)
            if tpot_s is not None:
                self._tpot.record(tpot_s, base)
        self._e2e.record(e2e_s, base)
        judged: list[str] = []
        for slo, measured, target in (
            ("ttft", ttft_s, slo_ttft_s),
            ("tpot", tpot_s, slo_tpot_s),
            ("e2e", e2e_s, slo_e2e_s),
        ):
            outcome = slo_outcome(status_code, measured, target)
            if outcome is not None:
                self._slo.add(1, {"tenant": tenant, "slo": slo, "outcome": outcome})
                judged.append(outcome)
        if judged:  # the request counts for its tenant's attainment: within every target?
            now = time.monotonic()
            self.attainment.observe(tenant, "missed" not in judged, now)
            share = self.attainment.of(tenant, now).share
            if share is not None:
                self._attainment.set(share, {"tenant": tenant})

    # ----- the ingress queue ------------------------------------------------------------
    def queue_wait(self, tenant: str, priority: int, seconds: float) -> None:
        self._queue_wait.record(seconds, {"tenant": tenant, "priority": str(priority)})

    def queue_refused(self, tenant: str, reason: str) -> None:
        self._queue_refused.add(1, {"tenant": tenant, "reason": reason})

    def set_queue_length(self, profile: str, tenant: str, priority: int, waiting: int) -> None:
        attrs = {"profile": profile, "tenant": tenant, "priority": str(priority)}
        self._queue_length.set(waiting, attrs)

    # ----- state gauges ---------------------------------------------------------------
    def set_budget(self, tenant: str, window: str, limit_usd: float, remaining_usd: float) -> None:
        """Budget of `tenant` for `window` (hour/day/month); remaining is clamped at >= 0."""
        attrs = {"tenant": tenant, "window": window}
        self._budget_limit.set(limit_usd, attrs)
        self._budget_remaining.set(max(remaining_usd, 0.0), attrs)

    def set_spend_rate(self, tenant: str, usd_per_hour: float) -> None:
        self._spend_rate.set(usd_per_hour, {"tenant": tenant})

    def set_controller(
        self,
        cost_usd_per_hour: float,
        ceiling_binding: bool,
        unplaced: Mapping[str, float] | None = None,
    ) -> None:
        """The controller's last decision; `unplaced` = per family, the share of its forecast
        load left unplaced (give every family, 0 included, so a cleared alert reads 0)."""
        self._replica_cost.set(cost_usd_per_hour)
        self._ceiling_binding.set(1 if ceiling_binding else 0)
        for family, share in (unplaced or {}).items():
            self._unplaced.set(share, {"family": family})

    def set_replicas(self, profile: str, target: int, current: int) -> None:
        self._replicas_target.set(target, {"profile": profile})
        self._replicas_current.set(current, {"profile": profile})

    def set_batches(self, jobs: dict[str, int], lines: dict[str, int], finish_in_s: float) -> None:
        """Batch jobs and their lines by state; seconds until the last active job's
        predicted end (0 with none active)."""
        for state in ("in_progress", "cancelling", "completed", "failed", "expired", "cancelled"):
            self._batch_jobs.set(jobs.get(state, 0), {"state": state})
        for state in ("pending", "running", "done", "failed", "cancelled"):
            self._batch_lines.set(lines.get(state, 0), {"state": state})
        self._batch_finish.set(max(0.0, finish_in_s))

    # ----- exposition -----------------------------------------------------------------
    def render_prometheus(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type) for `GET /metrics`; OpenMetrics when `accept` asks for it."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def shutdown(self) -> None:
        self._provider.shutdown()
