"""One trace per request: ingress span -> predict -> route -> engine.

Export follows the standard OTEL_* environment variables:
- `OTEL_TRACES_EXPORTER`: comma list of `otlp`, `console`, `none`. Unset means `otlp` when an
  OTLP endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`) is set,
  else nothing.
- `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` or
  `http/protobuf` (the default, as the specification says).
- `OTEL_SDK_DISABLED=true` turns everything off. Endpoint, headers, timeout, TLS, sampler
  (`OTEL_TRACES_SAMPLER`) and resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) are
  read by the SDK and the exporters themselves.

With no exporter, no SDK provider is installed: the API's no-op tracer is used, spans are
non-recording (attribute calls return at once) and an incoming W3C `traceparent` still flows
through, so the trace id in the logs is the caller's.

Attribute names are the `ATTR_*` constants; token counts use the GenAI semantic conventions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

TRACER_NAME = "orchestrator"

SPAN_PREDICT = "predict"
SPAN_ROUTE = "route"
SPAN_ENGINE = "engine"

ATTR_TENANT = "orchestrator.tenant"
ATTR_REQUEST_ID = "orchestrator.request_id"
ATTR_ENDPOINT = "orchestrator.endpoint"
ATTR_PROFILE = "orchestrator.profile"
ATTR_PREDICTED_P50 = "orchestrator.predicted_output_tokens.p50"
ATTR_PREDICTED_P90 = "orchestrator.predicted_output_tokens.p90"
ATTR_QUERY_CLASS = "orchestrator.query_class"
ATTR_CANDIDATES = "orchestrator.route.candidates"
ATTR_DECISION_ACTION = "orchestrator.route.action"
ATTR_DECISION_REASON = "orchestrator.route.reason"
ATTR_ESTIMATED_COST = "orchestrator.cost.estimated_usd"
ATTR_ACTUAL_COST = "orchestrator.cost.actual_usd"
ATTR_TTFT = "orchestrator.ttft_s"
ATTR_INPUT_TOKENS = "gen_ai.usage.input_tokens"
ATTR_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
ATTR_REASONING_TOKENS = "orchestrator.usage.reasoning_tokens"
ATTR_HTTP_STATUS = "http.response.status_code"

ExporterKind = Literal["otlp_grpc", "otlp_http", "console"]

_TRUE = {"true", "1", "yes", "on"}
_configured: TracerProvider | None = None
_configure_lock = threading.Lock()


# ----- configuration -------------------------------------------------------------------
def exporters_from_env(env: Mapping[str, str]) -> list[ExporterKind]:
    """Which span exporters the OTEL_* variables in `env` ask for (empty = tracing off).

    Raises ValueError for an unknown exporter or protocol name, so a typo is not silence.
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return []
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if raw:
        names = [n.strip() for n in raw.split(",") if n.strip()]
    elif env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        names = ["otlp"]
    else:
        names = []
    out: list[ExporterKind] = []
    for name in names:
        if name == "none":
            return []
        if name == "console":
            out.append("console")
        elif name == "otlp":
            protocol = (
                env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            ).strip()
            if protocol == "grpc":
                out.append("otlp_grpc")
            elif protocol in ("http/protobuf", "http"):
                out.append("otlp_http")
            else:
                raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol {protocol!r}")
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: unsupported exporter {name!r}")
    return out


def _make_exporter(kind: ExporterKind) -> SpanExporter:
    # imported lazily: the gRPC stack is only loaded when asked for
    if kind == "otlp_grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if kind == "otlp_http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HTTPSpanExporter,
        )

        return HTTPSpanExporter()
    return ConsoleSpanExporter()


def build_tracer_provider(
    env: Mapping[str, str] | None = None,
    *,
    processors: list[SpanProcessor] | None = None,
    resource: Mapping[str, Any] | None = None,
) -> TracerProvider | None:
    """A TracerProvider exporting as `env` (default os.environ) says, plus any `processors`.

    None when nothing would receive spans. Exporters read endpoint/headers/TLS from
    os.environ. Does not touch the global provider.
    """
    kinds = exporters_from_env(os.environ if env is None else env)
    all_processors: list[SpanProcessor] = [BatchSpanProcessor(_make_exporter(k)) for k in kinds]
    all_processors += processors or []
    if not all_processors:
        return None
    attrs = {"service.name": "orchestrator", **(resource or {})}
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override these defaults
    provider = TracerProvider(
        resource=Resource.create(attrs).merge(OTELResourceDetector().detect())
    )
    for p in all_processors:
        provider.add_span_processor(p)
    return provider


def configure_tracing() -> TracerProvider | None:
    """Install the env-configured provider as the global one, once per process.

    Returns it, or None when tracing is off (the global no-op stays). Idempotent.
    """
    global _configured
    with _configure_lock:
        if _configured is None:
            provider = build_tracer_provider()
            if provider is not None:
                trace.set_tracer_provider(provider)
                _configured = provider
        return _configured


def get_tracer(provider: trace.TracerProvider | None = None) -> Tracer:
    """The orchestrator tracer from `provider`, else from the global provider."""
    source = provider if provider is not None else trace.get_tracer_provider()
    return source.get_tracer(TRACER_NAME)


# ----- spans ---------------------------------------------------------------------------
def extract_context(headers: Mapping[str, str]) -> Context:
    """The caller's context from W3C `traceparent`/`tracestate` (and baggage) headers."""
    return propagate.extract({k.lower(): v for k, v in headers.items()})


def set_attributes(span: Span, attributes: Mapping[str, Any]) -> None:
    """Set the non-None attributes (OpenTelemetry rejects None values)."""
    if not span.is_recording():  # tracing off: return before building anything
        return
    clean = {k: v for k, v in attributes.items() if v is not None}
    if clean:
        span.set_attributes(clean)


def _records_nothing(tracer: Tracer) -> bool:
    """Whether `tracer` is the API's no-op (directly, or a proxy with no provider installed)."""
    if isinstance(tracer, trace.NoOpTracer):
        return True
    return isinstance(tracer, trace.ProxyTracer) and isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    )


def start_request_span(
    headers: Mapping[str, str],
    name: str,
    *,
    tracer: Tracer | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Span:
    """A SERVER span continuing the caller's trace; the caller ends it (for streamed answers
    whose body outlives the handler). Prefer `request_span` when the scope is lexical. With
    tracing off (no provider installed) and no caller's trace to carry, a span that records
    nothing, at once."""
    tracer = tracer or get_tracer()
    if _records_nothing(tracer) and not any(k.lower() == "traceparent" for k in headers):
        return trace.INVALID_SPAN
    span = tracer.start_span(name, context=extract_context(headers), kind=SpanKind.SERVER)
    set_attributes(span, attributes or {})
    return span


@contextmanager
def request_span(
    headers: Mapping[str, str],
    name: str,
    *,
    tracer: Tracer | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """The ingress span, current for the block; an exception marks it ERROR and re-raises."""
    span = start_request_span(headers, name, tracer=tracer, attributes=attributes)
    with trace.use_span(
        span, end_on_exit=True, record_exception=True, set_status_on_exception=True
    ):
        yield span


def start_child_span(
    name: str,
    *,
    parent: Span | None = None,
    tracer: Tracer | None = None,
    attributes: Mapping[str, Any] | None = None,
    start_time: int | None = None,
) -> Span:
    """A child of `parent` (default: the current span), not made current; the caller ends it
    (an engine span over a streamed answer). `start_time` (ns since the epoch, default now)
    dates a stage that is recorded once it is over. The child of a parent that records
    nothing (tracing off, or not sampled) records nothing either, and costs nothing."""
    if parent is not None and tracer is None and not parent.is_recording():
        return trace.INVALID_SPAN
    ctx = trace.set_span_in_context(parent) if parent is not None else None
    span = (tracer or get_tracer()).start_span(
        name, context=ctx, kind=SpanKind.INTERNAL, start_time=start_time
    )
    set_attributes(span, attributes or {})
    return span


@contextmanager
def child_span(
    name: str,
    *,
    parent: Span | None = None,
    tracer: Tracer | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A child of `parent` (default: the current span), current for the block; an exception
    marks it ERROR and re-raises."""
    span = start_child_span(name, parent=parent, tracer=tracer, attributes=attributes)
    with trace.use_span(
        span, end_on_exit=True, record_exception=True, set_status_on_exception=True
    ):
        yield span


def predict_span(
    *, parent: Span | None = None, tracer: Tracer | None = None
) -> AbstractContextManager[Span]:
    """The `predict` child span; set results with `record_prediction`."""
    return child_span(SPAN_PREDICT, parent=parent, tracer=tracer)


def route_span(
    *, parent: Span | None = None, tracer: Tracer | None = None
) -> AbstractContextManager[Span]:
    """The `route` child span; set results with `record_route`."""
    return child_span(SPAN_ROUTE, parent=parent, tracer=tracer)


def engine_span(
    *, parent: Span | None = None, tracer: Tracer | None = None
) -> AbstractContextManager[Span]:
    """The `engine` child span (prefill + decode); set results with `record_engine_result`."""
    return child_span(SPAN_ENGINE, parent=parent, tracer=tracer)


# ----- typed attribute setters ---------------------------------------------------------
def record_request_info(
    span: Span, *, tenant: str, request_id: str | None = None, endpoint: str | None = None
) -> None:
    set_attributes(
        span, {ATTR_TENANT: tenant, ATTR_REQUEST_ID: request_id, ATTR_ENDPOINT: endpoint}
    )


def record_prediction(
    span: Span,
    *,
    p50_tokens: float,
    p90_tokens: float,
    prompt_tokens: int | None = None,
    query_class: str | None = None,
) -> None:
    set_attributes(
        span,
        {
            ATTR_PREDICTED_P50: p50_tokens,
            ATTR_PREDICTED_P90: p90_tokens,
            ATTR_INPUT_TOKENS: prompt_tokens,
            ATTR_QUERY_CLASS: query_class,
        },
    )


def record_route(
    span: Span,
    *,
    profile: str | None,
    action: str,
    reason: str,
    candidates: int,
    estimated_cost_usd: float | None,
) -> None:
    set_attributes(
        span,
        {
            ATTR_PROFILE: profile,
            ATTR_DECISION_ACTION: action,
            ATTR_DECISION_REASON: reason,
            ATTR_CANDIDATES: candidates,
            ATTR_ESTIMATED_COST: estimated_cost_usd,
        },
    )


def record_engine_result(
    span: Span,
    *,
    ttft_s: float | None,
    output_tokens: int,
    actual_cost_usd: float | None,
    prompt_tokens: int | None = None,
    reasoning_tokens: int | None = None,
) -> None:
    set_attributes(
        span,
        {
            ATTR_TTFT: ttft_s,
            ATTR_OUTPUT_TOKENS: output_tokens,
            ATTR_REASONING_TOKENS: reasoning_tokens,
            ATTR_INPUT_TOKENS: prompt_tokens,
            ATTR_ACTUAL_COST: actual_cost_usd,
        },
    )


def record_http_status(span: Span, status_code: int) -> None:
    """Set the response status; 5xx marks the span ERROR (4xx is the caller's, per semconv)."""
    set_attributes(span, {ATTR_HTTP_STATUS: status_code})
    if status_code >= 500:
        span.set_status(Status(StatusCode.ERROR))


# ----- ids -----------------------------------------------------------------------------
def trace_id_hex(span: Span | None = None) -> str | None:
    """32-hex trace id of `span` (default: the current span), None when there is none."""
    ctx = (span or trace.get_current_span()).get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def traceparent(span: Span | None = None) -> str | None:
    """W3C traceparent of `span` (default: current), e.g. for a response header."""
    ctx = (span or trace.get_current_span()).get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"
