"""A profile's live state for the router, from its replicas (pure; the server and the
simulator both call it, so a closed profile is priced and timed alike in both).

A profile is one of:
- **open**: a replica runs; requests beyond running replicas x `batch` count as queued;
- **opening**: none runs, but one starts or requests already wait for one (Serve holds
  requests for a deployment scaled to zero and starts a replica for them): a new request
  waits until the first starting replica serves (`start_wait_ms`; unknown: its whole
  start-up, `replicas.startup_s`);
- **closed**: nothing runs, starts or waits, and a replica may be started (`may_open`: the
  policy's bounds allow one): routable at its opening price
  (`pricing.opening_cost_usd`) and a whole start-up's wait;
- **unhealthy**: broken (a replica crashed, the deployment is unhealthy or unplaceable, the
  ingress saw it fail), or closed and not allowed to open: never routed to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from orchestrator import pricing
from orchestrator.catalog.schema import Profile
from orchestrator.policy import Policy
from orchestrator.replica_model import LiveState


@dataclass(frozen=True, slots=True)
class Replicas:
    """A profile's replicas as the caller counts them now."""

    running: int = 0  # serving requests
    starting: int = 0  # started, not serving yet
    first_ready_ms: float | None = None  # ms until the first starting one serves (None: unknown)
    broken: bool = False  # never routed to, whatever runs
    may_open: bool = False  # with none running or starting, one may be started (`may_open`)


Phase = Literal["open", "opening", "closed", "unhealthy"]


def phase(replicas: Replicas, waiting: bool) -> Phase:
    """Which of the module docstring's four states a profile is in; `waiting`: requests are
    in flight or wait for it."""
    if replicas.broken:
        return "unhealthy"
    if replicas.running > 0:
        return "open"
    if replicas.starting > 0 or waiting:
        return "opening"
    return "closed" if replicas.may_open else "unhealthy"


def may_open(profile: Profile, policy: Policy) -> bool:
    """A replica of `profile` may be started: the policy's bounds (narrowed to the catalog's)
    allow one. The spend ceiling is the planner's to keep (it may open this profile by
    shrinking another), so it does not close a profile here."""
    bounds = policy.scaling.get(profile.name)
    return bounds is not None and bounds.max_replicas > 0


def opening_usd(profile: Profile, policy: Policy, demand_rps: float) -> float:
    """Price per request of opening `profile` now (it has no replica running or starting):
    a replica's start-up and its last replica's hold (`Policy.last_replica_hold_s`) at the
    profile's price, over `demand_rps` (signals/opening.py) in that time."""
    return pricing.opening_cost_usd(
        profile.price_per_replica_hour_usd,
        profile.replicas.startup_s,
        policy.last_replica_hold_s(profile.name),
        demand_rps,
    )


def live_state(
    profile: Profile,
    policy: Policy,
    replicas: Replicas,
    in_flight: int,
    *,
    queued: int | None = None,
    batch: int | None = None,
    opening_rps: float = 0.0,
    ttft_scale: float | None = None,
    tpot_scale: float | None = None,
) -> LiveState:
    """The router's `LiveState` of `profile` (see the module docstring). `in_flight`: its
    requests sent or being served; `queued`: those waiting for a replica, when the caller
    counts them apart (else, with `batch`, those beyond running replicas x `batch`; with no
    replica running, all). `opening_rps`: requests a closed profile lost on its opening price
    lately (`signals.opening.OpeningDemand`). The scales: how far the replica model's TTFT
    and TPOT are off for this profile (`LiveState`)."""
    running = 0 if replicas.broken else replicas.running
    if queued is None:
        queued = max(0, in_flight - running * batch) if batch is not None or running == 0 else 0
        in_flight -= queued
    state = phase(replicas, in_flight + queued > 0)
    closed, healthy = state == "closed", state != "unhealthy"
    # None: the whole start-up (`ReplicaPerformance.cold_start_ms`, the catalog's startup_s)
    start_wait_ms = replicas.first_ready_ms if running == 0 and replicas.starting > 0 else None
    return LiveState(
        replicas_running=running,
        requests_in_flight=in_flight,
        requests_queued=queued,
        ttft_scale=ttft_scale,
        tpot_scale=tpot_scale,
        healthy=healthy,
        start_wait_ms=start_wait_ms,
        opening_usd=opening_usd(profile, policy, opening_rps) if closed and healthy else 0.0,
    )
