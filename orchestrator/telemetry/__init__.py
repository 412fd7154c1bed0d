"""Observability: Prometheus metrics via OpenTelemetry, per-request traces, JSON logs.

- `metrics.OrchestratorMetrics`: one per ingress process; `render_prometheus()` for /metrics.
- `tracing`: env-configured TracerProvider and the request/predict/route/engine spans.
- `logs`: `configure_json_logging()` and `request_id_scope()`.
"""

from orchestrator.telemetry.logs import JsonFormatter, configure_json_logging, request_id_scope
from orchestrator.telemetry.metrics import METRIC_NAMES, OrchestratorMetrics
from orchestrator.telemetry.tracing import configure_tracing, request_span

__all__ = [
    "METRIC_NAMES",
    "JsonFormatter",
    "OrchestratorMetrics",
    "configure_json_logging",
    "configure_tracing",
    "request_id_scope",
    "request_span",
]
