"""Record a request the router or admission refused for capacity in the demand meter.

One call per refused request (the server's `RequestExecutor`): a `latency_slo_unmeetable` or
`no_healthy_profile` rejection counts once for the profile it was meant for
(`routing.refusal.intended_profile`); a 429 `server_overloaded` is split over the eligible
running profiles (`overload_shares`); any other refusal is policy, not capacity, and is not
recorded. A client retrying after Retry-After counts again: the meter measures load offered.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from orchestrator.routing.refusal import OVERLOAD_CODE, intended_profile, overload_shares
from orchestrator.routing.types import Decision, ProfileView
from orchestrator.signals.meters import DemandMeter


def record_refusal(
    meter: DemandMeter,
    code: str | None,
    decision: Decision | None,
    views: Iterable[ProfileView],
    eligible: Collection[str],
    prompt_tokens: float,
    output_tokens: float,
    now: float,
) -> None:
    """`output_tokens`: the prediction's expected answer (used for an overload, where no
    candidate was priced); a router rejection uses its candidate's estimate."""
    views = list(views)
    if code == OVERLOAD_CODE:
        for name, share in overload_shares(views, eligible).items():
            meter.refused(name, prompt_tokens, output_tokens, now, share)
        return
    if decision is None:
        return
    hit = intended_profile(decision, views, prompt_tokens)
    if hit is not None:
        meter.refused(hit.profile, prompt_tokens, hit.output_tokens, now)
