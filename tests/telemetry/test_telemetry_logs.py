"""JSON log lines: one object per line, request id and trace id when known."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from orchestrator.telemetry import tracing
from orchestrator.telemetry.logs import JsonFormatter, configure_json_logging, request_id_scope


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    logger = logging.getLogger("orchestrator.test_json_logs")
    logger.propagate = False
    stream = io.StringIO()
    configure_json_logging("DEBUG", stream=stream, logger=logger)
    before = set(logger.handlers)
    yield logger, stream
    # remove only what the test added: pytest (>= 9) or a host may attach handlers of their own
    for h in set(logger.handlers) - before:
        logger.removeHandler(h)
    for h in json_handlers(logger):
        logger.removeHandler(h)


def json_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """Handlers that write our JSON lines (whatever else pytest or a host attached)."""
    return [h for h in logger.handlers if isinstance(h.formatter, JsonFormatter)]


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_plain_line_has_the_base_fields(captured) -> None:
    logger, stream = captured
    logger.info("routed %s to %s", "req-1", "smollm2-cpu")
    (line,) = lines(stream)
    assert line["message"] == "routed req-1 to smollm2-cpu"
    assert line["level"] == "INFO"
    assert line["logger"] == "orchestrator.test_json_logs"
    assert line["ts"].endswith("+00:00") and "T" in line["ts"]
    assert "request_id" not in line and "trace_id" not in line


def test_request_id_from_extra_or_scope_and_extra_fields(captured) -> None:
    logger, stream = captured
    logger.info("a", extra={"request_id": "req-extra", "tenant": "acme", "cost_usd": 0.01})
    with request_id_scope("req-scope"):
        logger.warning("b")
    logger.info("c")
    a, b, c = lines(stream)
    assert a["request_id"] == "req-extra" and a["tenant"] == "acme" and a["cost_usd"] == 0.01
    assert b["request_id"] == "req-scope" and b["level"] == "WARNING"
    assert "request_id" not in c


def test_trace_id_of_the_current_span(captured) -> None:
    logger, stream = captured
    provider = tracing.build_tracer_provider(
        {}, processors=[SimpleSpanProcessor(InMemorySpanExporter())]
    )
    assert provider is not None
    headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    with tracing.request_span(headers, "r", tracer=tracing.get_tracer(provider)) as span:
        logger.info("inside")
        span_id = format(span.get_span_context().span_id, "016x")
    provider.shutdown()
    (line,) = lines(stream)
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["span_id"] == span_id


def test_exceptions_and_odd_values_stay_on_one_line(captured) -> None:
    logger, stream = captured
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logger.exception(
            "multi\nline", extra={"obj": object(), "path": __import__("pathlib").Path("/x")}
        )
    raw = stream.getvalue()
    assert raw.count("\n") == 1  # exactly one line, newlines escaped
    (line,) = lines(stream)
    assert line["message"] == "multi\nline"
    assert "ValueError: bad\nthing" in line["exception"]
    assert line["obj"].startswith("<object object") and line["path"] == "/x"


def test_configuring_twice_keeps_one_json_handler(captured) -> None:
    logger, stream = captured
    other = logging.StreamHandler(io.StringIO())
    logger.addHandler(other)
    foreign = [h for h in logger.handlers if not isinstance(h.formatter, JsonFormatter)]
    configure_json_logging("INFO", stream=stream, logger=logger)
    assert len(json_handlers(logger)) == 1
    assert other in logger.handlers
    assert all(h in logger.handlers for h in foreign)  # foreign handlers are kept
    logger.debug("hidden")
    logger.info("shown")
    assert [line["message"] for line in lines(stream)] == ["shown"]
