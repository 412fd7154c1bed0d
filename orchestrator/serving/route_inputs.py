"""Adapters from what the ingress knows (body, headers, policy, prediction, ledger, live load)
to the router's own input types. Pure functions: no Ray, no I/O.

Invariants:
- caller targets come from `X-Cost-Target-USD` / `X-Latency-SLO-Ms` headers or the body's
  `orchestrator` object (headers win); a malformed one is a 400 naming it;
- prices are the policy's (explicit, or derived from the catalog): one source of truth;
- a tenant's remaining budget is the tightest window's limit minus recorded spend minus the
  worst case of its requests still in flight, so overspend is bounded by those requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.catalog.schema import Catalog
from orchestrator.ledger import Window
from orchestrator.policy import Policy, TenantPolicy
from orchestrator.predict.schema import Prediction
from orchestrator.replica_model import LiveState
from orchestrator.routing.types import (
    ProfileView,
    RouteRequest,
    TenantRules,
    TokenBudget,
)
from orchestrator.routing.views import profile_view
from orchestrator.serving.errors import OrchestratorHTTPError

COST_HEADER = "x-cost-target-usd"
SLO_HEADER = "x-latency-slo-ms"
BUDGET_WINDOWS: tuple[Window, ...] = ("hour", "day", "month")


@dataclass(frozen=True)
class CallerTargets:
    cost_target_usd: float | None = None
    latency_slo_ms: float | None = None


def _number(value: Any, name: str, *, positive: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OrchestratorHTTPError(
            400, f"'{name}' must be a number, got {value!r}", param=name
        ) from None
    if number != number or number < 0 or (positive and number == 0):  # NaN, negative, zero
        bound = "greater than 0" if positive else "at least 0"
        raise OrchestratorHTTPError(400, f"'{name}' must be {bound}, got {value!r}", param=name)
    return number


def caller_targets(headers: Mapping[str, str], extension: Any) -> CallerTargets:
    """Per-request targets: headers first, then `{"orchestrator": {...}}` in the body."""
    if extension is not None and not isinstance(extension, dict):
        raise OrchestratorHTTPError(400, "'orchestrator' must be an object", param="orchestrator")
    ext = extension or {}
    unknown = set(ext) - {"cost_target_usd", "latency_slo_ms"}
    if unknown:
        raise OrchestratorHTTPError(
            400,
            f"unknown field(s) in 'orchestrator': {', '.join(sorted(unknown))}",
            param="orchestrator",
        )
    cost = headers.get(COST_HEADER)
    slo = headers.get(SLO_HEADER)
    return CallerTargets(
        cost_target_usd=_number(cost, "X-Cost-Target-USD", positive=False)
        if cost is not None
        else (
            _number(ext["cost_target_usd"], "orchestrator.cost_target_usd", positive=False)
            if ext.get("cost_target_usd") is not None
            else None
        ),
        latency_slo_ms=_number(slo, "X-Latency-SLO-Ms", positive=True)
        if slo is not None
        else (
            _number(ext["latency_slo_ms"], "orchestrator.latency_slo_ms", positive=True)
            if ext.get("latency_slo_ms") is not None
            else None
        ),
    )


def requested_max_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens") or body.get("max_tokens")
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def wants_reasoning(body: Mapping[str, Any]) -> bool | None:
    """The caller's explicit reasoning choice, if it made one."""
    kwargs = body.get("chat_template_kwargs")
    if isinstance(kwargs, dict) and isinstance(kwargs.get("enable_thinking"), bool):
        return kwargs["enable_thinking"]
    effort = body.get("reasoning_effort")
    if isinstance(effort, str):
        return effort.lower() not in ("none", "minimal")
    return None


def needs_tool_parser(body: Mapping[str, Any]) -> bool:
    """`tools` the model may be made to call: any tool_choice but "none" ("auto", vLLM's
    default with tools, "required" and a named function all need the engine's tool parser in
    vLLM 0.32: `OnlineRenderer` refuses them without one)."""
    return bool(body.get("tools")) and body.get("tool_choice") != "none"


def route_request(
    body: Mapping[str, Any], prompt_tokens: int, targets: CallerTargets
) -> RouteRequest:
    return RouteRequest(
        model=body.get("model") or "auto",
        prompt_tokens=prompt_tokens,
        max_tokens=requested_max_tokens(body),
        cost_target_usd=targets.cost_target_usd,
        latency_slo_ms=targets.latency_slo_ms,
        wants_reasoning=wants_reasoning(body),
        needs_tool_parser=needs_tool_parser(body),
        choices=_choices(body),
    )


def _choices(body: Mapping[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else 1


def token_budget(prediction: Prediction) -> TokenBudget:
    """The router's token budget: PER CHOICE (the prediction counts all `n` choices; the router
    caps max_tokens per choice and prices `RouteRequest.choices` of them)."""
    n = max(getattr(prediction, "n", 1) or 1, 1)

    def per(tokens: int) -> int:
        return -(-tokens // n)

    return TokenBudget(
        p50_output_tokens=per(prediction.p50_tokens),
        p90_output_tokens=per(max(prediction.p90_tokens, prediction.p50_tokens)),
        reasoning_probability=prediction.reasoning_probability,
        reasoning_tokens=per(prediction.reasoning_tokens),
        query_class=prediction.query_class,
    )


@dataclass(frozen=True)
class BudgetState:
    """Remaining USD over the tenant's tightest window and seconds until that window resets."""

    remaining_usd: float | None
    retry_after_s: int | None


def budget_limits(budgets: Any) -> dict[Window, float]:
    """The tenant's budget limit (USD) per window that has one, in `BUDGET_WINDOWS` order."""
    if budgets is None:
        return {}
    limits: dict[Window, float | None] = {
        "hour": budgets.per_hour_usd,
        "day": budgets.per_day_usd,
        "month": budgets.per_month_usd,
    }
    return {w: limit for w in BUDGET_WINDOWS if (limit := limits[w]) is not None}


def budget_state(
    budgets: Any,
    spent: Mapping[str, tuple[float, int]],
    in_flight_reserved_usd: float,
) -> BudgetState:
    """`spent[window] = (usd, seconds to window end)`; windows without a limit are skipped."""
    remaining: float | None = None
    retry: int | None = None
    for window, limit in budget_limits(budgets).items():
        usd, reset_s = spent.get(window, (0.0, 0))
        left = limit - usd - in_flight_reserved_usd
        if remaining is None or left < remaining:
            remaining, retry = left, reset_s
    return BudgetState(remaining, retry)


def tenant_rules(
    tenant: TenantPolicy, query_class: str, budget: BudgetState, eligible: Sequence[str]
) -> TenantRules:
    limits = tenant.limits(query_class)  # type: ignore[arg-type]
    floor = limits.quality_floor.min_tier or "small"
    return TenantRules(
        tenant=tenant.name,
        allowed_profiles=tuple(eligible),
        cost_target_usd=limits.cost_target_usd,
        cost_cap_usd=limits.cost_cap_usd,
        slo=limits.latency,
        quality_floor=floor,
        on_cost_cap=tuple(limits.actions.on_cost_cap),
        on_budget_exhausted=tuple(limits.actions.on_budget_exhausted),
        on_cost_target=tuple(limits.actions.on_cost_target),
        on_slo_unmeetable=tuple(limits.actions.on_slo_unmeetable),
        cap_tokens_floor=limits.actions.cap_tokens_floor,
        reasoning_allowed=limits.reasoning.allowed,
        max_reasoning_tokens=limits.reasoning.max_reasoning_tokens,
        max_tokens_cap=limits.max_tokens,
        remaining_budget_usd=budget.remaining_usd,
        budget_retry_after_s=budget.retry_after_s,
    )


def priced_views(catalog: Catalog, policy: Policy) -> dict[str, ProfileView]:
    """Router views of every profile with the policy's token prices (build once per policy)."""
    return {p.name: profile_view(p, prices=policy.prices.get(p.name)) for p in catalog.profiles}


def live_state(
    ready: bool,
    in_flight: int,
    replicas: int,
    ttft_scale: float | None = None,
    *,
    tpot_scale: float | None = None,
    batch: int | None = None,
) -> LiveState:
    """A profile's live load. With `batch` (requests a replica decodes at once), requests in
    flight beyond running replicas x batch count as queued. The scales: how far the replica
    model's TTFT and TPOT are off for this profile (`LiveState`)."""
    running = replicas if ready else 0
    queued = 0
    if batch is not None:
        queued = max(0, in_flight - running * batch)
    return LiveState(
        replicas_running=running,
        requests_in_flight=in_flight - queued,
        requests_queued=queued,
        ttft_scale=ttft_scale,
        tpot_scale=tpot_scale,
        healthy=ready,
    )
