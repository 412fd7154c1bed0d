"""Span tree and attributes, captured in memory and through the real OTLP exporters."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from orchestrator.telemetry import tracing
from tests.http_handler import QuietHandler

CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01"

ROOT_ATTRS = {
    tracing.ATTR_TENANT: "acme",
    tracing.ATTR_REQUEST_ID: "req-1",
    tracing.ATTR_PROFILE: "smollm2-cpu",
    tracing.ATTR_CANDIDATES: 2,
    tracing.ATTR_DECISION_REASON: "cheapest_meeting_slo",
    tracing.ATTR_ESTIMATED_COST: 0.0125,
    tracing.ATTR_ACTUAL_COST: 0.011,
    tracing.ATTR_TTFT: 0.2,
    tracing.ATTR_OUTPUT_TOKENS: 40,
    tracing.ATTR_HTTP_STATUS: 200,
}
CHILD_ATTRS = {
    tracing.SPAN_PREDICT: {
        tracing.ATTR_PREDICTED_P50: 30,
        tracing.ATTR_PREDICTED_P90: 60,
        tracing.ATTR_INPUT_TOKENS: 100,
    },
    tracing.SPAN_ROUTE: {
        tracing.ATTR_PROFILE: "smollm2-cpu",
        tracing.ATTR_DECISION_ACTION: "route",
        tracing.ATTR_DECISION_REASON: "cheapest_meeting_slo",
        tracing.ATTR_CANDIDATES: 2,
        tracing.ATTR_ESTIMATED_COST: 0.0125,
    },
    tracing.SPAN_ENGINE: {
        tracing.ATTR_TTFT: 0.2,
        tracing.ATTR_OUTPUT_TOKENS: 40,
        tracing.ATTR_ACTUAL_COST: 0.011,
    },
}


@pytest.fixture
def memory() -> Iterator[tuple[InMemorySpanExporter, trace.Tracer]]:
    exporter = InMemorySpanExporter()
    provider = tracing.build_tracer_provider({}, processors=[SimpleSpanProcessor(exporter)])
    assert provider is not None
    yield exporter, tracing.get_tracer(provider)
    provider.shutdown()


def test_span_tree_and_attributes_in_memory(memory, simulated_request) -> None:
    exporter, tracer = memory
    trace_id = simulated_request({"traceparent": TRACEPARENT}, tracer)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"POST /v1/chat/completions", *CHILD_ATTRS}
    root = spans.pop("POST /v1/chat/completions")

    # the caller's traceparent is honoured: same trace, the caller's span is the parent
    assert trace_id == CALLER_TRACE_ID
    assert format(root.context.trace_id, "032x") == CALLER_TRACE_ID
    assert root.parent is not None and root.parent.is_remote
    assert format(root.parent.span_id, "016x") == CALLER_SPAN_ID
    assert root.kind == SpanKind.SERVER
    assert {k: root.attributes[k] for k in ROOT_ATTRS} == ROOT_ATTRS
    assert root.resource.attributes["service.name"] == "orchestrator"

    for name, span in spans.items():
        assert span.parent is not None and span.parent.span_id == root.context.span_id, name
        assert span.context.trace_id == root.context.trace_id
        assert {k: span.attributes[k] for k in CHILD_ATTRS[name]} == CHILD_ATTRS[name]
        assert span.status.status_code == StatusCode.UNSET
    # children in request order
    order = sorted(spans.values(), key=lambda s: s.start_time)
    assert [s.name for s in order] == ["predict", "route", "engine"]


def test_without_traceparent_a_new_trace_starts(memory, simulated_request) -> None:
    exporter, tracer = memory
    trace_id = simulated_request({}, tracer)
    root = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER)
    assert root.parent is None
    assert trace_id == format(root.context.trace_id, "032x") != CALLER_TRACE_ID


def test_engine_failure_marks_engine_and_request_spans_as_errors(memory, simulated_request) -> None:
    exporter, tracer = memory
    with pytest.raises(RuntimeError, match="engine died"):
        simulated_request({"traceparent": TRACEPARENT}, tracer, fail_engine=True)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["engine"].status.status_code == StatusCode.ERROR
    assert spans["POST /v1/chat/completions"].status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in spans["engine"].events)


def test_server_errors_mark_the_span_but_client_errors_do_not(memory) -> None:
    exporter, tracer = memory
    for code in (402, 503):
        with tracing.request_span({}, f"req {code}", tracer=tracer) as span:
            tracing.record_http_status(span, code)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["req 402"].status.status_code == StatusCode.UNSET
    assert spans["req 503"].status.status_code == StatusCode.ERROR
    assert spans["req 503"].attributes[tracing.ATTR_HTTP_STATUS] == 503


def test_none_attributes_are_dropped(memory) -> None:
    exporter, tracer = memory
    with tracing.request_span({}, "r", tracer=tracer) as span:
        tracing.record_engine_result(span, ttft_s=None, output_tokens=0, actual_cost_usd=None)
    (finished,) = exporter.get_finished_spans()
    assert tracing.ATTR_TTFT not in finished.attributes
    assert finished.attributes[tracing.ATTR_OUTPUT_TOKENS] == 0


def test_tracing_off_still_carries_the_callers_trace_id() -> None:
    assert tracing.build_tracer_provider({}) is None
    noop = trace.NoOpTracerProvider().get_tracer("t")
    with tracing.request_span({"Traceparent": TRACEPARENT}, "r", tracer=noop) as span:
        assert not span.is_recording()
        tracing.record_request_info(span, tenant="acme")  # a no-op, not an error
        assert tracing.trace_id_hex() == CALLER_TRACE_ID
        assert tracing.traceparent() == TRACEPARENT
    assert tracing.trace_id_hex() is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ["otlp_http"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp_http"]),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            ["otlp_grpc"],
        ),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            ["otlp_http"],
        ),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp_http", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, []),
    ],
)
def test_exporters_from_env(env: dict[str, str], expected: list[str]) -> None:
    assert tracing.exporters_from_env(env) == expected


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_EXPORTER": "jaeger"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
    ],
)
def test_unsupported_exporter_settings_are_errors(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        tracing.exporters_from_env(env)


# ----- end to end through the real OTLP exporters --------------------------------------
def _attr_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind)


def _spans_by_name(requests: list[trace_service_pb2.ExportTraceServiceRequest]) -> dict:
    out: dict[str, dict[str, Any]] = {}
    for req in requests:
        for rs in req.resource_spans:
            resource = {a.key: _attr_value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    out[s.name] = {
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent": s.parent_span_id.hex(),
                        "attrs": {a.key: _attr_value(a.value) for a in s.attributes},
                        "resource": resource,
                        "scope": ss.scope.name,
                    }
    return out


def _check_exported(spans: dict[str, dict[str, Any]]) -> None:
    root = spans["POST /v1/chat/completions"]
    assert root["trace_id"] == CALLER_TRACE_ID
    assert root["parent"] == CALLER_SPAN_ID
    assert root["resource"]["service.name"] == "orchestrator"
    assert root["scope"] == tracing.TRACER_NAME
    assert {k: root["attrs"][k] for k in ROOT_ATTRS} == ROOT_ATTRS
    for name, attrs in CHILD_ATTRS.items():
        assert spans[name]["parent"] == root["span_id"]
        assert spans[name]["trace_id"] == CALLER_TRACE_ID
        assert {k: spans[name]["attrs"][k] for k in attrs} == attrs


class _OTLPHTTPReceiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.content_types: list[str] = []
        super().__init__(("127.0.0.1", 0), _OTLPHandler)


class _OTLPHandler(QuietHandler):
    server: _OTLPHTTPReceiver

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        req = trace_service_pb2.ExportTraceServiceRequest()
        req.ParseFromString(body)
        self.server.requests.append(req)
        self.server.paths.append(self.path)
        self.server.content_types.append(self.headers.get("Content-Type", ""))
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.reply(200, reply, "application/x-protobuf")


def _export_one_request(monkeypatch, simulated_request, **env: str) -> None:
    """Configure the exporter by the OTEL_* environment `env` alone (as an operator would),
    serve one simulated request and flush its spans."""
    for var in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    provider = tracing.build_tracer_provider()
    assert provider is not None
    simulated_request({"traceparent": TRACEPARENT}, tracing.get_tracer(provider))
    assert provider.force_flush(10_000)
    provider.shutdown()


def test_spans_reach_an_otlp_http_receiver(monkeypatch, simulated_request) -> None:
    receiver = _OTLPHTTPReceiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        _export_one_request(
            monkeypatch,
            simulated_request,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.server_port}",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        )
    finally:
        receiver.shutdown()
        receiver.server_close()
    assert set(receiver.paths) == {"/v1/traces"}
    assert set(receiver.content_types) == {"application/x-protobuf"}
    _check_exported(_spans_by_name(receiver.requests))


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request, context):  # noqa: N802 (generated gRPC API)
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_spans_reach_an_otlp_grpc_receiver(monkeypatch, simulated_request) -> None:
    import grpc  # a runtime dependency (the OTLP gRPC exporter)

    service = _TraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        _export_one_request(
            monkeypatch,
            simulated_request,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_INSECURE="true",
            OTEL_SERVICE_NAME="orchestrator",
        )
    finally:
        server.stop(grace=None)
    _check_exported(_spans_by_name(service.requests))


def test_resource_env_overrides_the_default_service_name(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "llm-gateway")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    provider = tracing.build_tracer_provider(
        {}, processors=[SimpleSpanProcessor(InMemorySpanExporter())]
    )
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "llm-gateway"
    assert provider.resource.attributes["deployment.environment"] == "prod"
    provider.shutdown()


CONFIGURE_SCRIPT = """
import json, sys
from opentelemetry import trace
from orchestrator.telemetry import tracing
provider = tracing.configure_tracing()
assert provider is not None and tracing.configure_tracing() is provider
assert trace.get_tracer_provider() is provider
with tracing.request_span({"traceparent": sys.argv[1]}, "r") as span:
    tracing.record_request_info(span, tenant="acme")
provider.shutdown()
"""


def test_configure_tracing_installs_one_global_provider(tmp_path) -> None:
    """In a fresh interpreter (the global provider can be set only once per process)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_TRACES_EXPORTER"] = "console"
    out = subprocess.run(
        [sys.executable, "-c", CONFIGURE_SCRIPT, TRACEPARENT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    span = json.loads(out)  # the console exporter prints the span as JSON
    assert span["name"] == "r"
    assert span["context"]["trace_id"] == "0x" + CALLER_TRACE_ID
    assert span["attributes"][tracing.ATTR_TENANT] == "acme"


def test_configure_tracing_is_off_without_settings(monkeypatch) -> None:
    for var in [v for v in os.environ if v.startswith("OTEL_")]:
        monkeypatch.delenv(var)
    before = trace.get_tracer_provider()
    assert tracing.configure_tracing() is None
    assert trace.get_tracer_provider() is before  # the global provider is left alone
