"""Structured logs: one JSON object per line, with the request id and trace id when known.

Each line has `ts` (UTC, ISO 8601, ms), `level`, `logger`, `message`; then `request_id`
(from `extra={"request_id": ...}` or the `request_id_scope` in force), `trace_id`/`span_id`
(from the current OpenTelemetry span, including a caller's traceparent when tracing is off),
any other `extra=` fields, and `exception` (the formatted traceback) when there is one.
Values that JSON cannot hold are written with `str()`; a line never contains a raw newline.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

request_id_var: ContextVar[str | None] = ContextVar("orchestrator_request_id", default=None)

# attributes every LogRecord has; anything else on a record came from `extra=`
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, __file__, 0, "", None, None))
) | {"message", "asctime", "taskName"}
_HANDLER_MARK = "_orchestrator_json_handler"


@contextmanager
def request_id_scope(request_id: str) -> Iterator[None]:
    """Log lines emitted inside the block (same task/thread context) carry `request_id`."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


class JsonFormatter(logging.Formatter):
    """Formats a LogRecord as a single-line JSON object (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            out["request_id"] = request_id
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            out["trace_id"] = format(ctx.trace_id, "032x")
            out["span_id"] = format(ctx.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in out and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_json_logging(
    level: int | str = logging.INFO,
    *,
    stream: TextIO | None = None,
    logger: logging.Logger | None = None,
) -> logging.Handler:
    """Send `logger` (default: root) to `stream` (default: stderr) as JSON lines.

    Idempotent: a JSON handler installed earlier by this function is replaced, other handlers
    are left alone. Returns the handler.
    """
    target = logger or logging.getLogger()
    for old in [h for h in target.handlers if getattr(h, _HANDLER_MARK, False)]:
        target.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    setattr(handler, _HANDLER_MARK, True)
    target.addHandler(handler)
    target.setLevel(level)
    return handler
