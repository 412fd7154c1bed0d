"""Record a request the router or admission refused for capacity in the demand meter.

One call per refused request (the server's `RequestExecutor`): a `latency_slo_unmeetable` or
`no_healthy_profile` rejection counts once for the profile it was meant for
(`routing.refusal.intended_profile`); a 429 `server_overloaded` is split over the eligible
running profiles (`overload_shares`); any other refusal is policy, not capacity, and is not
recorded. A client retrying after Retry-After counts again: the meter measures load offered.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from orchestrator.planning.expected import DemandSizing, sized_of, sized_tokens
from orchestrator.routing.refusal import (
    OVERLOAD_CODE,
    Intended,
    intended_profile,
    overload_shares,
)
from orchestrator.routing.types import Decision, ProfileView
from orchestrator.signals.meters import DemandMeter


def record_refusal(
    meter: DemandMeter,
    code: str | None,
    decision: Decision | None,
    views: Iterable[ProfileView],
    eligible: Collection[str],
    prompt_tokens: float,
    output_tokens: tuple[float, float],
    now: float,
    sizing: DemandSizing = "p50",
) -> None:
    """`output_tokens`: the prediction's (p50, p90) answer, recorded as the planner sizes
    it (`planning.expected.sized_tokens`, the policy's `sizing`) for an overload, where no
    candidate was priced; a router rejection records its candidate's sized tokens."""
    views = list(views)
    if code == OVERLOAD_CODE:
        sized = sized_tokens(sizing, *output_tokens)
        for name, share in overload_shares(views, eligible).items():
            meter.refused(name, prompt_tokens, sized, now, share)
        return
    if decision is None:
        return
    hit = intended_profile(decision, views, prompt_tokens)
    if hit is not None:
        meter.refused(hit.profile, prompt_tokens, intended_sized(decision, hit, sizing), now)


def intended_sized(decision: Decision, hit: Intended, sizing: DemandSizing = "p50") -> float:
    """Sized output tokens of a refused request on the profile it was meant for (its
    candidate's estimate, as an admitted request's: `planning.expected.sized_of`)."""
    if sizing == "p50":
        return float(hit.output_tokens)
    for c in decision.candidates:
        if c.profile == hit.profile and c.estimate is not None:
            return sized_of(sizing, c.estimate)
    return float(hit.output_tokens)
