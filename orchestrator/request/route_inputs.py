"""Adapters from what the request core knows (the request spec, policy, prediction, budget
spend, live load) to the router's own input types. Pure functions: no Ray, no I/O; the server
and the simulator both call them.

Invariants:
- the router reads the request through its spec (`request/spec.py`), never the body;
- prices are the policy's (explicit, or derived from the catalog): one source of truth;
- a tenant's remaining budget is the tightest window's limit minus recorded spend minus the
  worst case of its requests still in flight, so overspend is bounded by those requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.catalog.schema import Catalog
from orchestrator.ledger import Window, WindowSpend
from orchestrator.policy import Policy, TenantPolicy
from orchestrator.predict.schema import Prediction
from orchestrator.request.spec import RequestSpec
from orchestrator.routing.types import (
    ProfileView,
    RouteRequest,
    TenantRules,
    TokenBudget,
)
from orchestrator.routing.views import profile_view, with_live

BUDGET_WINDOWS: tuple[Window, ...] = ("hour", "day", "month")


def route_request(spec: RequestSpec, prompt_tokens: int) -> RouteRequest:
    """The router's view of a request: the spec's wishes and the prompt's length."""
    return RouteRequest(
        model=spec.model or "auto",
        prompt_tokens=prompt_tokens,
        max_tokens=spec.max_tokens,
        cost_target_usd=spec.targets.cost_target_usd,
        latency_slo_ms=spec.targets.latency_slo_ms,
        wants_reasoning=spec.wants_reasoning,
        needs_tool_parser=spec.needs_tool_parser,
        choices=spec.choices,
    )


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
        tier_success=getattr(prediction, "tier_success", None),
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


def spent_of(spends: Mapping[str, WindowSpend], now: datetime) -> dict[str, tuple[float, int]]:
    """The ledger's spend per window as `budget_state` reads it: (USD, seconds to its end)."""
    return {w: (s.cost_usd, s.retry_after_s(now)) for w, s in spends.items()}


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
    tenant: TenantPolicy,
    query_class: str,
    budget: BudgetState,
    eligible: Sequence[str],
    quality: tuple[float, float] = (0.0, 0.0),
) -> TenantRules:
    """`quality`: the tenant's running (served, strongest) expected success sums
    (routing/quality.QualityAccount), whose surplus over its share target a request may use."""
    limits = tenant.limits(query_class)  # type: ignore[arg-type]
    share = limits.quality_target.share_of_strongest
    floor = limits.quality_floor.min_tier or "small"
    return TenantRules(
        tenant=tenant.name,
        allowed_profiles=tuple(eligible),
        cost_target_usd=limits.cost_target_usd,
        cost_cap_usd=limits.cost_cap_usd,
        slo=limits.latency,
        quality_floor=floor,
        min_success=limits.quality_target.min_success,
        share_of_strongest=share,
        quality_slack=0.0 if share is None else quality[0] - share * quality[1],
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


def seen_from_queue(
    views: Sequence[ProfileView], ahead: Mapping[str, int]
) -> Sequence[ProfileView]:
    """The views as one request sees them in the ingress queue: a profile's queued requests
    are only those `ahead` counts (never more than are queued): its own priority class and
    better, so background work behind it is not priced as its wait."""
    if not ahead:
        return views
    live = {
        v.name: v.live.model_copy(update={"requests_queued": ahead[v.name]})
        for v in views
        if v.name in ahead and ahead[v.name] < v.live.requests_queued
    }
    return with_live(views, live) if live else views
