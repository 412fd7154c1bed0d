"""Per-request bounds from the policy (`requests:` block), as refusals (values, not raises).

Pure: the caller passes the request's spec, the tenant's effective `RequestBounds`, the
prompt's token count and how many of the tenant's requests are in flight. Invariants:
- a request over a bound gets a 400 `Rejection` naming the bound and, in `param`, the field
  the client sent; over `max_concurrent_requests` a 429 with Retry-After;
- nothing here depends on the predicted class: bounds hold for every request of the tenant;
- choices are the spec's (`n`; vLLM does not implement `best_of`, it is bounded, not priced).
"""

from __future__ import annotations

from orchestrator.policy.schema_tenants import RequestBounds
from orchestrator.request.spec import RequestSpec
from orchestrator.routing.types import Rejection

CONCURRENCY_RETRY_AFTER_S = 1
CONCURRENCY_CODE = "over_max_concurrent_requests"


def _over(bound: str, message: str, param: str) -> Rejection:
    return Rejection(
        status=400,
        code=f"over_{bound}",
        message=f"{message} (policy bound requests.{bound})",
        param=param,
    )


def body_bound(spec: RequestSpec, bounds: RequestBounds) -> Rejection | None:
    """Bounds readable from the spec alone: n, best_of, max_tokens x choices."""
    n = spec.choices
    if bounds.max_n is not None and n > bounds.max_n:
        return _over("max_n", f"'n' is {n}, more than the {bounds.max_n} allowed", "n")
    best_of = spec.best_of
    if best_of is not None and bounds.max_best_of is not None and best_of > bounds.max_best_of:
        return _over(
            "max_best_of",
            f"'best_of' is {best_of}, more than the {bounds.max_best_of} allowed",
            "best_of",
        )
    if spec.max_tokens is not None and bounds.max_output_tokens is not None:
        key, value = spec.max_tokens_param, spec.max_tokens
        total = value * n
        if total > bounds.max_output_tokens:
            what = f"'{key}' {value} x {n} choices = {total}" if n > 1 else f"'{key}' is {value}"
            return _over(
                "max_output_tokens",
                f"{what} tokens, more than the {bounds.max_output_tokens} allowed",
                key,
            )
    return None


def prompt_bound(spec: RequestSpec, bounds: RequestBounds, prompt_tokens: int) -> Rejection | None:
    """The prompt's token count (in the profile's tokenizer) against `max_prompt_tokens`."""
    limit = bounds.max_prompt_tokens
    if limit is not None and prompt_tokens > limit:
        return _over(
            "max_prompt_tokens",
            f"the prompt has {prompt_tokens} tokens, more than the {limit} allowed",
            spec.prompt_param,
        )
    return None


def concurrency_bound(tenant: str, bounds: RequestBounds, in_flight: int) -> Rejection | None:
    """429 when the tenant already has `max_concurrent_requests` requests running."""
    limit = bounds.max_concurrent_requests
    if limit is not None and in_flight >= limit:
        return Rejection(
            status=429,
            code=CONCURRENCY_CODE,
            message=f"tenant '{tenant}' already has {in_flight} requests in flight, the most "
            "allowed (policy bound requests.max_concurrent_requests)",
            retry_after_s=CONCURRENCY_RETRY_AFTER_S,
        )
    return None
