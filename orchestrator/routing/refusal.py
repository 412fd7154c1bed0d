"""Refusals the cluster's capacity caused, and the profile each one was meant for (pure).

A request refused because the profiles that would serve it are saturated, or have no running
replica, never reaches a profile: the routed-load meters miss it, so the planner would not
grow the pool that should have served it. These functions name that pool, for the server's
demand meter (`signals.meters.DemandMeter.refused`) and the simulator alike. Policy refusals
(budgets, cost caps and targets, quality floors, context length, tools) are not demand for
capacity: more replicas would not serve them.

Invariants:
- `intended_profile` names a profile only for a `latency_slo_unmeetable` or
  `no_healthy_profile` rejection, and only a candidate whose every failure in the deciding
  stage is a latency one or "no healthy replica" and that meets the request's SLO on an idle
  replica (so a replica more would have served it); among those, the cheapest for the request;
- `overload_shares` splits one request shed by admission (429 `server_overloaded`) over the
  eligible profiles with running replicas, in proportion to their request slots; the shares
  sum to 1 (empty when none runs).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

from orchestrator.replica_model import request_latency
from orchestrator.routing.types import Decision, ProfileView

CAPACITY_CODES = frozenset({"latency_slo_unmeetable", "no_healthy_profile"})
OVERLOAD_CODE = "server_overloaded"  # admission.s 429 (request/admission.py)
LOAD_FAILURES = frozenset({"slo_ttft", "slo_tpot", "slo_e2e", "unhealthy"})


class Intended(NamedTuple):
    profile: str
    output_tokens: int  # expected output tokens there (reasoning included), as when routed


def intended_profile(
    decision: Decision, views: Iterable[ProfileView], prompt_tokens: float
) -> Intended | None:
    """The profile a refused request would have gone to had it had capacity, else None."""
    rejection = decision.rejection
    if decision.profile is not None or rejection is None or rejection.code not in CAPACITY_CODES:
        return None
    by_name = {v.name: v for v in views}
    p50, p90 = decision.predicted_tokens
    options = []  # (cost, name, expected tokens, p90 tokens, view): cheapest first
    for c in decision.candidates:
        view = by_name.get(c.profile)
        if view is None or not c.lost_because or not LOAD_FAILURES.issuperset(c.lost_because):
            continue
        expected = c.estimate.output_tokens if c.estimate else p50
        worst = c.estimate.output_tokens_p90 if c.estimate else p90
        cost = view.prices.cost_usd(round(prompt_tokens), expected)
        options.append((cost, c.profile, expected, worst, view))
    options.sort(key=lambda o: (o[0], o[1]))
    for _, name, expected, worst, view in options:
        idle = request_latency(view.performance, prompt_tokens, max(1, worst), 1)
        if not idle.misses(decision.slo):
            return Intended(name, expected)
    return None


def overload_shares(views: Iterable[ProfileView], eligible: Collection[str]) -> Mapping[str, float]:
    """Shares of one shed request per eligible, running profile (by request slots)."""
    slots = {
        v.name: v.live.replicas_running * v.performance.max_concurrency
        for v in views
        if v.name in eligible and v.live.healthy and v.live.replicas_running > 0
    }
    total = sum(slots.values())
    return {name: s / total for name, s in slots.items() if s > 0} if total > 0 else {}
