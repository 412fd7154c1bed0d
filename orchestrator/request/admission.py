"""Overload shedding: refuse at once (a 429 `Rejection` with Retry-After) instead of queueing
without bound.

Pure. A family's capacity is the sum over its eligible, running profiles of
`performance.max_concurrency x running replicas` (the catalog's figure for requests a replica
serves at once). Admission counts only the requests no queue bounds: those on the engines'
batches, those waiting where nothing bounds them (Serve's queue for a profile still starting,
an engine's own queue) and those at the ingress not yet decided. Requests the ingress queue
holds (waiting in it, or seated by its headroom beyond the batch: `held_by_queue`) are bounded
there, per tenant (`scheduling.max_queued`, then 429 `queue_full` with Retry-After), and are
not admission's to shed. Requests beyond capacity that no queue bounds may wait; how many
depends on the tenant's priority: the lowest priority present in the policy may queue
`queue_factor x capacity` (default 0.5x), the highest `2 x queue_factor x capacity`, others in
between by rank. So under overload the lowest priorities are refused first and the highest
last. Retry-After is the time the excess takes to drain at the family's aggregate decode
speed (at least 1 s).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.policy import TenantPolicy
from orchestrator.routing.refusal import OVERLOAD_CODE
from orchestrator.routing.types import ProfileView, Rejection

QUEUE_FACTOR = 0.5
TYPICAL_OUTPUT_TOKENS = 256


@dataclass(frozen=True)
class ProfileLoad:
    """One eligible profile's live load."""

    name: str
    running_replicas: int
    max_concurrency: int  # per replica (catalog performance.max_concurrency)
    output_tokens_per_s: float  # per replica, aggregate at max_concurrency
    in_flight: int  # what no queue bounds: on the engines, or waiting where nothing bounds it

    @property
    def capacity(self) -> int:
        return self.running_replicas * self.max_concurrency


def eligible_for(tenant: TenantPolicy, query_class: str, served: Collection[str]) -> list[str]:
    """The profiles admission counts for a request: those serving its model (`served`) that
    the tenant may use for its class (the server's and the simulator's rule alike)."""
    return [n for n in tenant.eligible_profiles(query_class) if n in served]


def held_by_queue(waiting: int, busy: int, slots: int) -> int:
    """How many of a profile's requests its ingress queue bounds: the `waiting` ones, and
    while replicas run (`slots` > 0: running replicas x batch slots) those it seated beyond
    the batch (`busy` slots taken above `slots`: its headroom and short lane). With no replica
    running the ingress does not hold a profile's requests (Serve's queue waits for the
    first replica), so only requests already waiting in it count. The server's
    `IngressQueue.bounded` and the simulator's pools both count by this rule."""
    return waiting + (max(0, busy - slots) if slots > 0 else 0)


def loads_of(
    views: Iterable[ProfileView],
    eligible: Collection[str],
    held: Mapping[str, int] | None = None,
) -> list[ProfileLoad]:
    """The live load of each `eligible` profile as admission counts it, from the router's
    views (the server's and the simulator's alike): its requests in flight and queued, less
    the `held` ones (per profile, `held_by_queue`). A healthy profile with no replica running
    yet counts one (it is starting); an unhealthy one none."""
    held = held or {}
    return [
        ProfileLoad(
            name=v.name,
            running_replicas=max(1, v.live.replicas_running) if v.live.healthy else 0,
            max_concurrency=v.performance.max_concurrency,
            output_tokens_per_s=v.performance.output_tokens_per_s,
            in_flight=max(
                0, v.live.requests_in_flight + v.live.requests_queued - held.get(v.name, 0)
            ),
        )
        for v in views
        if v.name in eligible
    ]


def priority_share(priority: int, priorities: Iterable[int]) -> float:
    """1.0 for the lowest priority present, 2.0 for the highest, linear by rank between."""
    levels = sorted(set(priorities) | {priority})
    if len(levels) == 1:
        return 1.0
    return 1.0 + levels.index(priority) / (len(levels) - 1)


def check_overload(
    loads: Sequence[ProfileLoad],
    *,
    priority: int,
    priorities: Iterable[int],
    queue_factor: float = QUEUE_FACTOR,
    typical_output_tokens: int = TYPICAL_OUTPUT_TOKENS,
    waiting: int = 0,
) -> Rejection | None:
    """A 429 with Retry-After when the request would queue beyond what its tenant's
    priority allows. `waiting`: requests for the same model at the ingress that no profile counts
    (waiting for their prediction, or for their decision to be written): they queue too. Profiles with no running replica
    are left to the router (503 there)."""
    running = [p for p in loads if p.capacity > 0]
    if not running:
        return None
    capacity = sum(p.capacity for p in running)
    in_flight = sum(p.in_flight for p in running) + waiting
    allowed_queue = math.ceil(capacity * queue_factor * priority_share(priority, priorities))
    if in_flight < capacity + allowed_queue:
        return None
    excess = in_flight + 1 - capacity
    rate = sum(p.output_tokens_per_s * p.running_replicas for p in running)
    retry_after = max(1, math.ceil(excess * typical_output_tokens / max(rate, 1e-9)))
    return Rejection(
        status=429,
        code=OVERLOAD_CODE,
        message=f"all {capacity} request slots of the eligible profiles are busy and "
        f"{in_flight - capacity} requests are already waiting; retry later",
        retry_after_s=retry_after,
    )
