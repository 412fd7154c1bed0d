"""Serve's autoscaling contexts -> the planner's ProfileObservation (pure: no Ray calls).

A context (`ray.serve.config.AutoscalingContext`) carries, per deployment: replicas running
and targeted, requests queued at handles, and the custom metrics each replica pushed with
`record_autoscaling_stats` (aggregated over Serve's look-back window), keyed by metric name
then replica. Profile replicas push `running` and TTFT/TPOT percentiles
(`ProfileServer.record_autoscaling_stats`); the ingress pushes predicted demand, demand
refused for capacity and spend per profile (`meters.DemandMeter`). Invariants: a replica's
streams beyond the engine's batch (`max_num_seqs`, else `max_concurrency`) count as waiting;
p50s are averaged over replicas and p95s take the worst replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.catalog.schema import Profile
from orchestrator.planning.types import Percentiles, ProfileObservation
from orchestrator.signals.meters import parse_demand_key


def _metric(ctx: Any, name: str) -> dict[Any, float]:
    metrics = ctx.aggregated_metrics or {}
    return dict(metrics.get(name) or {})


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def demand_from_ingress(ctx: Any) -> dict[str, dict[str, float]]:
    """The ingress context's demand metrics: {profile: {"rps"|"in_tps"|"out_tps"|"usd_h"|
    "refused_rps"|"refused_in_tps"|"refused_out_tps": v}} (summed over ingress replicas)."""
    out: dict[str, dict[str, float]] = {}
    for key, per_replica in (ctx.aggregated_metrics or {}).items():
        parsed = parse_demand_key(key)
        if parsed is None:
            continue
        profile, what = parsed
        out.setdefault(profile, {})[what] = float(sum(per_replica.values()))
    return out


def profile_observation(
    ctx: Any, profile: Profile, demand: Mapping[str, float] | None = None
) -> ProfileObservation:
    """What the planner sees of one profile deployment."""
    ready = int(ctx.current_num_replicas)
    target = int(ctx.target_num_replicas)
    batch = profile.max_num_seqs or profile.performance.max_concurrency
    running_per_replica = list(_metric(ctx, "running").values())
    decoding = sum(min(r, batch) for r in running_per_replica)
    waiting = sum(max(0.0, r - batch) for r in running_per_replica)
    queued = ctx.total_queued_requests or 0.0
    demand = demand or {}

    def pct(name: str) -> Percentiles:
        p50 = _mean(list(_metric(ctx, f"{name}_p50_ms").values()))
        p95s = list(_metric(ctx, f"{name}_p95_ms").values())
        return Percentiles(p50=p50, p95=max(p95s) if p95s else None)

    return ProfileObservation(
        arrival_rate_rps=max(0.0, demand.get("rps", 0.0)),
        input_tokens_per_s=max(0.0, demand.get("in_tps", 0.0)),
        output_tokens_per_s=max(0.0, demand.get("out_tps", 0.0)),
        refused_rps=max(0.0, demand.get("refused_rps", 0.0)),
        refused_input_tokens_per_s=max(0.0, demand.get("refused_in_tps", 0.0)),
        refused_output_tokens_per_s=max(0.0, demand.get("refused_out_tps", 0.0)),
        requests_running=decoding,
        requests_waiting=waiting + max(0.0, float(queued)),
        ttft_ms=pct("ttft"),
        tpot_ms=pct("tpot"),
        slo_judged=max(0.0, demand.get("slo_judged", 0.0)),
        slo_within=max(0.0, min(demand.get("slo_within", 0.0), demand.get("slo_judged", 0.0))),
        replicas_current=max(target, ready),
        replicas_ready=ready,
        replicas_starting=max(0, target - ready),
        spend_usd_per_hour=max(0.0, demand.get("usd_h", 0.0)),
    )
