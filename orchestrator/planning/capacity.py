"""Capacity of one replica at the SLO, from the catalog figures through the shared latency model.

Model (Dynamo's SLA planner idea: replicas = demand / per-replica rate at the SLO; the rate at
the SLO comes from a load curve, here the router's own latency model, so the planner and the
router never disagree about what a replica can do):

- decode: the largest per-replica concurrency n in [1, max_concurrency] whose modelled TPOT and
  TTFT (for the family's mean prompt) meet the profile's planning SLO; the decode capacity is
  n / TPOT(n) output tokens per second. If even n = 1 misses, the capacity is that of n = 1 and
  the profile is flagged `meets_slo = False` (more replicas cannot fix a per-stream speed);
- prefill: `prefill_tokens_per_s`;
- a replica's load is the time-share in/prefill + out/decode (<= 1 per replica);
- online correction: `delivery` = delivered / modelled per-stream speed at the observed batch,
  an EWMA of TPOT samples; the capacity is multiplied by it, so a profile that under-delivers
  its catalog figure is given more replicas.

The planning SLO of a profile is the tightest TTFT and TPOT objective of any tenant and
request class that may use it (e2e objectives depend on each request's length and are the
router's to meet by capping tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.catalog.schema import Profile
from orchestrator.concepts import QUERY_CLASSES, LatencySLO
from orchestrator.policy.model import Policy
from orchestrator.replica_model import (
    ReplicaPerformance,
    capacity_at_slo,
    performance_of,
    request_latency,
    tpot_ms,
)


@dataclass(frozen=True)
class ReplicaCapacity:
    output_tps: float  # decode tokens/s per replica at the SLO (catalog model, no correction)
    prefill_tps: float
    concurrency: int  # streams per replica at that point
    tpot_ms: float  # modelled TPOT there
    ttft_ms: float  # modelled TTFT there
    meets_slo: bool  # False: even one stream alone misses the SLO
    bound_by: str  # "tpot" | "ttft" | "max_concurrency"


def performance(profile: Profile) -> ReplicaPerformance:
    """The replica model's view of the profile's catalog figures."""
    return performance_of(profile)


def modelled_tpot_ms(perf: ReplicaPerformance, streams_per_replica: float) -> float:
    """TPOT of a replica with `streams_per_replica` requests decoding (the replica model)."""
    return tpot_ms(perf, streams_per_replica)


def replica_capacity(
    profile: Profile, slo: LatencySLO, prompt_tokens: float, output_tokens: int = 256
) -> ReplicaCapacity:
    """Per-replica decode capacity at the TTFT/TPOT SLO (the replica model's capacity_at_slo;
    e2e objectives are left to the router)."""
    perf = performance(profile)
    slo = LatencySLO(ttft_p95_ms=slo.ttft_p95_ms, tpot_p95_ms=slo.tpot_p95_ms)
    cap = capacity_at_slo(perf, slo, prompt_tokens, output_tokens)
    meets = cap.concurrency > 0
    n = max(cap.concurrency, 1)
    lat = cap.latency
    bound = "max_concurrency"
    if n < perf.max_concurrency or not meets:
        beyond = request_latency(perf, prompt_tokens, output_tokens, n + 1 if meets else 1)
        missed = beyond.misses(slo)
        bound = "tpot" if "tpot_p95_ms" in missed else "ttft"
    return ReplicaCapacity(
        output_tps=1000.0 * n / lat.tpot_ms,
        prefill_tps=perf.prefill_tokens_per_s,
        concurrency=n,
        tpot_ms=lat.tpot_ms,
        ttft_ms=lat.ttft_ms,
        meets_slo=meets,
        bound_by=bound,
    )


def planning_slo(policy: Policy, profile: str) -> LatencySLO:
    """Tightest TTFT / TPOT objective of any reachable tenant and class that may use `profile`."""
    ttft: float | None = None
    tpot: float | None = None
    for tenant in policy.reachable_tenants():
        for rc in QUERY_CLASSES:
            if profile not in tenant.eligible_profiles(rc):
                continue
            lat = tenant.limits(rc).latency
            if lat.ttft_p95_ms is not None:
                ttft = lat.ttft_p95_ms if ttft is None else min(ttft, lat.ttft_p95_ms)
            if lat.tpot_p95_ms is not None:
                tpot = lat.tpot_p95_ms if tpot is None else min(tpot, lat.tpot_p95_ms)
    return LatencySLO(ttft_p95_ms=ttft, tpot_p95_ms=tpot)


def serves_anyone(policy: Policy, profile: str) -> bool:
    """Some reachable tenant may be routed to `profile` for some request class."""
    return any(profile in t.all_eligible_profiles() for t in policy.reachable_tenants())
