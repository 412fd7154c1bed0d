"""What an engine handle yields, read: error items, failure texts, the 503 for a dead engine.

Pure. An engine answers with items (vLLM response models, or SSE strings for streams); an
error item is an `ErrorResponse` or an SSE event holding `{"error": ...}`.
"""

from __future__ import annotations

import logging
from typing import Any

from orchestrator.catalog.schema import Profile
from orchestrator.request.errors import RequestError
from orchestrator.serving import openai_io

log = logging.getLogger("orchestrator.ingress")


def first_item(packet: Any) -> Any:
    """The first item of what a handle's stream yielded (a batch is a list)."""
    return packet[0] if isinstance(packet, list) and packet else packet


def is_error(item: Any) -> bool:
    return type(item).__name__ == "ErrorResponse" or (
        isinstance(item, str) and item.lstrip().startswith('data: {"error"')
    )


def error_payload(item: Any) -> Any:
    """An error item as `failover.engine_failed` reads it (the item, or its SSE event's JSON)."""
    if isinstance(item, str):
        return openai_io.sse_json(openai_io.split_sse(item)[0]) if item.strip() else None
    return item


def failure_text(failure: Any) -> str:
    """A short text for an engine failure (an exception or an error item)."""
    if isinstance(failure, BaseException):
        return f"{type(failure).__name__}"
    payload = error_payload(failure)
    err = getattr(payload, "error", None)
    if err is not None:
        return str(getattr(err, "message", "engine error"))[:200]
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return str(payload["error"].get("message", "engine error"))[:200]
    return "engine error"


def error_fields(item: Any) -> tuple[int, str]:
    """(HTTP status, message) of an engine's client-error item."""
    err = getattr(item, "error", None)
    if err is not None:
        code = getattr(err, "code", 400)
        status = code if isinstance(code, int) and 400 <= code < 600 else 400
        return status, str(getattr(err, "message", "engine error"))
    return 400, str(item)


def engine_failure(profile: Profile, failure: Any) -> RequestError:
    """The 503 for a request whose engine failed and that cannot be retried."""
    log.warning("profile %s failed a request: %s", profile.name, failure_text(failure))
    return RequestError(
        503,
        f"the engine for profile '{profile.name}' is unavailable: {failure_text(failure)}",
        code="engine_unavailable",
        headers={"Retry-After": "5"},
    )
