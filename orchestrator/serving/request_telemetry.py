"""One request's trace and metrics, from the ingress's point of view.

Invariants: `close()` runs exactly once per request (later calls are no-ops), whatever the
outcome: it ends the engine and request spans and records the request in the metrics. The
`predict` and `route` spans cover the time those stages took (from `mark`), so a trace shows
where a request's time went before the engine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from orchestrator.routing.types import Decision
from orchestrator.telemetry import tracing
from orchestrator.telemetry.metrics import OrchestratorMetrics


def _reason_code(decision: Decision | None) -> str | None:
    if decision is None:
        return None
    return decision.rejection.code if decision.rejection else decision.action


def _seconds(ms: float | None) -> float | None:
    return ms / 1000.0 if ms is not None else None


_PATHS = {"chat": "chat/completions", "completions": "completions", "responses": "responses"}


class RequestObservation:
    def __init__(
        self,
        metrics: OrchestratorMetrics,
        headers: Mapping[str, str],
        endpoint: str,
        request_id: str,
    ):
        self.metrics = metrics
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self.started_at = datetime.now(UTC)  # the request's start, also for its usage record
        self.span = tracing.start_request_span(
            headers, f"POST /v1/{_PATHS.get(endpoint, endpoint)}"
        )
        self.request_id = request_id
        self.tenant = "unknown"
        self.decision: Decision | None = None
        self.engine_span: Any = None
        self._marks: dict[str, int] = {}  # stage -> its start, ns since the epoch
        self._closed = False

    # ----- stages ----------------------------------------------------------------------
    def tenant_known(self, tenant: str) -> None:
        self.tenant = tenant
        tracing.record_request_info(
            self.span, tenant=tenant, request_id=self.request_id, endpoint=self.endpoint
        )

    def mark(self, stage: str) -> None:
        """`stage` ("predict", then "route") starts now; its span starts here, and the next
        stage's mark ends the one before."""
        self._marks[stage] = time.time_ns()

    def _stage_span(self, name: str, stage: str) -> Any:
        return tracing.start_child_span(name, parent=self.span, start_time=self._marks.get(stage))

    def predicted(self, prediction: Any) -> None:
        """The `predict` span, from its mark to the `route` mark (or now)."""
        span = self._stage_span(tracing.SPAN_PREDICT, "predict")
        tracing.record_prediction(
            span,
            p50_tokens=prediction.p50_tokens,
            p90_tokens=prediction.p90_tokens,
            prompt_tokens=prediction.prompt_tokens,
            query_class=prediction.query_class,
        )
        span.end(end_time=self._marks.get("route"))

    def decided(self, decision: Decision) -> None:
        """The `route` span, from its mark to now; the request span carries the same
        attributes for searching."""
        self.decision = decision
        attrs = {
            "profile": decision.profile,
            "action": decision.action,
            "reason": decision.reason,
            "candidates": len(decision.candidates),
            "estimated_cost_usd": decision.estimate.cost_usd if decision.estimate else None,
        }
        span = self._stage_span(tracing.SPAN_ROUTE, "route")
        tracing.record_route(span, **attrs)
        span.end()
        tracing.record_route(self.span, **attrs)

    def engine_started(self) -> None:
        self.engine_span = tracing.start_child_span(tracing.SPAN_ENGINE, parent=self.span)

    # ----- end -------------------------------------------------------------------------
    def close(
        self,
        status_code: int,
        usage: Any = None,
        cost_usd: float = 0.0,
        ttft: float | None = None,
    ) -> None:
        """`ttft` in seconds from the request's start (None when no token came)."""
        if self._closed:
            return
        self._closed = True
        e2e = time.perf_counter() - self.started
        output = usage.output_tokens if usage else 0
        tpot = (e2e - ttft) / (output - 1) if ttft is not None and output > 1 else None
        decision = self.decision
        if self.engine_span is not None:
            tracing.record_engine_result(
                self.engine_span,
                ttft_s=ttft,
                output_tokens=output,
                actual_cost_usd=cost_usd,
                prompt_tokens=usage.prompt_tokens if usage else None,
                reasoning_tokens=usage.reasoning_tokens if usage else None,
            )
            tracing.record_http_status(self.engine_span, status_code)
            self.engine_span.end()
        tracing.record_engine_result(
            self.span,
            ttft_s=ttft,
            output_tokens=output,
            actual_cost_usd=cost_usd,
            prompt_tokens=usage.prompt_tokens if usage else None,
        )
        tracing.record_http_status(self.span, status_code)
        self.span.end()
        slo = decision.slo if decision else None
        p50, p90 = decision.predicted_tokens if decision else (None, None)
        self.metrics.record_request(
            tenant=self.tenant,
            profile=decision.profile if decision else None,
            endpoint=self.endpoint,
            status_code=status_code,
            decision_action=decision.action if decision else None,
            decision_reason_code=(
                decision.rejection.code
                if decision and decision.rejection
                else (decision.action if decision else None)
            ),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            cached_tokens=usage.cached_tokens if usage else 0,
            output_tokens=(usage.output_tokens - usage.reasoning_tokens) if usage else 0,
            reasoning_tokens=usage.reasoning_tokens if usage else 0,
            cost_usd=cost_usd,
            predicted_p50=p50,
            predicted_p90=p90,
            ttft_s=ttft,
            tpot_s=tpot,
            e2e_s=e2e,
            slo_ttft_s=_seconds(slo.ttft_p95_ms) if slo else None,
            slo_tpot_s=_seconds(slo.tpot_p95_ms) if slo else None,
            slo_e2e_s=_seconds(slo.e2e_p95_ms) if slo else None,
        )
