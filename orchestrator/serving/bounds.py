"""Per-request bounds from the policy (`requests:` block), checked before anything runs.

Pure: the caller passes the body, the tenant's effective `RequestBounds`, the prompt's token
count and how many of the tenant's requests are in flight. Invariants:
- a request over a bound gets a 400 naming the bound and the field the client sent
  (`param`); over `max_concurrent_requests` it gets a 429 with Retry-After;
- nothing here depends on the predicted class: bounds hold for every request of the tenant;
- `choices(body)` is the number of sequences the engine generates (`n`; vLLM does not
  implement `best_of`, it is bounded but not priced).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.policy.schema import RequestBounds
from orchestrator.serving.errors import OrchestratorHTTPError

CONCURRENCY_RETRY_AFTER_S = 1


def _int_field(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def choices(body: Mapping[str, Any]) -> int:
    """Sequences generated per request (`n`, default 1)."""
    n = _int_field(body, "n")
    return n if n is not None and n >= 1 else 1


def requested_output_tokens(body: Mapping[str, Any]) -> tuple[str, int] | None:
    """(`max_completion_tokens` or `max_tokens`, its value) when the client set one."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = _int_field(body, key)
        if value is not None:
            return key, value
    return None


def _over(bound: str, message: str, param: str) -> OrchestratorHTTPError:
    return OrchestratorHTTPError(
        400, f"{message} (policy bound requests.{bound})", param=param, code=f"over_{bound}"
    )


def check_body_bounds(body: Mapping[str, Any], bounds: RequestBounds) -> None:
    """Bounds readable from the body alone: n, best_of, max_tokens x choices."""
    n = choices(body)
    if bounds.max_n is not None and n > bounds.max_n:
        raise _over("max_n", f"'n' is {n}, more than the {bounds.max_n} allowed", "n")
    best_of = _int_field(body, "best_of")
    if best_of is not None and bounds.max_best_of is not None and best_of > bounds.max_best_of:
        raise _over(
            "max_best_of",
            f"'best_of' is {best_of}, more than the {bounds.max_best_of} allowed",
            "best_of",
        )
    asked = requested_output_tokens(body)
    if asked is not None and bounds.max_output_tokens is not None:
        key, value = asked
        total = value * n
        if total > bounds.max_output_tokens:
            what = f"'{key}' {value} x {n} choices = {total}" if n > 1 else f"'{key}' is {value}"
            raise _over(
                "max_output_tokens",
                f"{what} tokens, more than the {bounds.max_output_tokens} allowed",
                key,
            )


def check_prompt_bound(body: Mapping[str, Any], bounds: RequestBounds, prompt_tokens: int) -> None:
    """The prompt's token count (in the profile's tokenizer) against `max_prompt_tokens`."""
    limit = bounds.max_prompt_tokens
    if limit is not None and prompt_tokens > limit:
        param = "messages" if "messages" in body else "prompt"
        raise _over(
            "max_prompt_tokens",
            f"the prompt has {prompt_tokens} tokens, more than the {limit} allowed",
            param,
        )


def check_concurrency(tenant: str, bounds: RequestBounds, in_flight: int) -> None:
    """429 when the tenant already has `max_concurrent_requests` requests running."""
    limit = bounds.max_concurrent_requests
    if limit is not None and in_flight >= limit:
        raise OrchestratorHTTPError(
            429,
            f"tenant '{tenant}' already has {in_flight} requests in flight, the most allowed "
            f"(policy bound requests.max_concurrent_requests)",
            code="over_max_concurrent_requests",
            headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER_S)},
        )
