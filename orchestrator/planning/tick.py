"""`plan`: one controller tick, from an Observation to replica targets (pure).

Steps (docs/controller.md):
1. demand: per model family, the observed routed load plus the load refused for capacity
   that the router meant for the family's profiles (requests/s, input and predicted output
   tokens/s) updates a damped-trend Holt filter; the load planned for is the larger of the
   level now and the forecast one replica start-up (`replicas.startup_s`) ahead; an idle
   family (no arrivals, nothing running or waiting) plans for zero;
2. capacity: per profile, the decode rate per replica at its planning SLO (capacity.py)
   and its prefill rate, both times its delivery factor (measured / modelled speed, EWMA;
   one factor: the replica's hardware runs both, see `PlannerKnobs.delivery_covers_prefill`);
3. pressure: under load, the share of requests within their own targets below
   `attainment_goal` (else, when not measured, a p95 over the tightest target), a queue
   beyond `waiting_pressure_per_replica`, requests refused for capacity, or requests for a
   profile with no replica lift that profile's floor to one above its target (unless
   replicas are already starting);
4. ideal: the cheapest mix for that load (mix.py; bounds, $/hour ceiling, resources);
5. hysteresis: a higher target applies after `scale_up_delay_s` (at once under pressure); a
   lower one after `scale_down_delay_s`, and only if the smaller set still serves the
   forecast load plus `scale_down_margin` (else one step, N -> N-1, if that fits; else hold).
   A ceiling or resource limit the held set would break is applied at once. Replicas that
   appear on a profile planned and seen at zero were started by Serve for requests it holds
   (its cold-start path): they count as the current target, so they are held like any other.
"""

from __future__ import annotations

from orchestrator.catalog.schema import Profile
from orchestrator.planning.capacity import (
    modelled_tpot_ms,
    performance,
    planning_slo,
    replica_capacity,
    serves_anyone,
)
from orchestrator.planning.forecast import holt_update, planning_demand
from orchestrator.planning.hysteresis import hysteresis
from orchestrator.planning.mix import MixProblem, MixProfile, MixResult, solve_mix
from orchestrator.planning.reasons import reason, tps, unplaced_load, utilisation
from orchestrator.planning.rows import Demand, Row
from orchestrator.planning.types import (
    FamilyState,
    Observation,
    PlannerKnobs,
    ProfileObservation,
    ProfileState,
    ProfileTarget,
    ScalingDecision,
    ScalingTickState,
)
from orchestrator.policy.model import Policy

_IDLE = ProfileObservation()


def plan(
    observation: Observation,
    policy: Policy,
    state: ScalingTickState | None = None,
    knobs: PlannerKnobs | None = None,
) -> tuple[ScalingDecision, ScalingTickState]:
    """One planning tick. `policy` is a loaded Policy (its `catalog` is the catalog planned
    for); `state` is the previous tick's (None or empty after a restart)."""
    knobs = knobs or PlannerKnobs()
    state = state or ScalingTickState()
    now = observation.now_s
    auto = policy.spec.autoscaling
    catalog = policy.catalog
    obs = {p.name: observation.profiles.get(p.name, _IDLE) for p in catalog.profiles}

    families, demand = _forecast(policy, obs, state, now, knobs)
    rows = {p.name: _row(p, obs[p.name], policy, state, demand, knobs) for p in catalog.profiles}
    for r in rows.values():
        d = demand[r.family]
        if r.serves and not d.idle and (d.input_tps > 0 or d.output_tps > 0):
            work = d.input_tps / r.prefill_tps + d.output_tps / r.decode_tps
            r.need = work * (1.0 + r.headroom)
        r.pressure = _pressure(r, knobs)
        r.floor = r.lo
        if r.pressure:
            step = 0 if r.obs.replicas_starting > 0 and r.current > r.obs.replicas_ready else 1
            floor = min(r.hi, max(r.lo, r.current + step, 1))
            if _fits(r.profile, floor, observation.resources_available):
                r.floor = floor

    ceiling = auto.max_cost_per_hour_usd
    problem = _problem(rows, ceiling, observation.resources_available, use_floor=True)
    floor_cost = sum(r.floor * r.price for r in rows.values())
    if ceiling is not None and floor_cost > ceiling + 1e-9:
        problem = _problem(rows, ceiling, observation.resources_available, use_floor=False)
    ideal = solve_mix(problem, use_solver=knobs.use_solver, time_limit_s=knobs.solver_time_limit_s)
    uncapped = None
    if ceiling is not None:
        free = _problem(rows, None, observation.resources_available, use_floor=False)
        uncapped = solve_mix(free, use_solver=knobs.use_solver)

    def solve(p: MixProblem) -> MixResult:
        return solve_mix(p, use_solver=knobs.use_solver, time_limit_s=knobs.solver_time_limit_s)

    targets, timers, limits = hysteresis(
        rows, ideal, problem, auto, now, solve, restart=knobs.down_delay_restart
    )
    # the ceiling binds when the cheapest mix without it would cost more than it allows
    binding = uncapped is not None and uncapped.cost_per_hour > (ceiling or 0.0) + 1e-9
    output_tps = {f: d.output_tps for f, d in demand.items()}
    unplaced, placing = unplaced_load(problem, ideal, output_tps)
    decision_targets: dict[str, ProfileTarget] = {}
    new_profiles: dict[str, ProfileState] = {}
    for name, r in rows.items():
        lim = list(limits[name]) + list(placing.get(name, ()))
        want = uncapped.replicas[name] if uncapped is not None else ideal.replicas[name]
        if binding and targets[name] < want and ideal.replicas[name] < want:
            lim.append("cost_ceiling")
        if targets[name] == r.hi and (r.need > r.hi or ideal.replicas[name] == r.hi) and r.need:
            lim.append("max_replicas")
        if targets[name] == r.lo and ideal.replicas[name] == r.lo and r.lo > 0:
            lim.append("min_replicas")
        if not r.cap.meets_slo:
            lim.append("slo_infeasible")
        limited = tuple(dict.fromkeys(lim))
        why = reason(r, targets[name], ideal, demand[r.family], limited, now, timers[name], auto,
                     rows)  # fmt: skip
        share = min(1.0, ideal.share.get(name, 0.0))  # a sum of floats may pass 1 by an ulp
        decision_targets[name] = ProfileTarget(
            profile=name,
            family=r.family,
            current=r.current,
            target=targets[name],
            ideal=ideal.replicas[name],
            min_replicas=r.lo,
            max_replicas=r.hi,
            capacity_output_tps=r.decode_tps,
            delivery=r.delivery,
            assigned_share=share,
            assigned_output_tps=share * demand[r.family].output_tps,
            utilisation=utilisation(r),
            cost_per_hour_usd=targets[name] * r.price,
            pressure=bool(r.pressure),
            limited_by=limited,
            reason=why,
        )
        new_profiles[name] = ProfileState(
            target=targets[name],
            above_since_s=timers[name][0],
            below_since_s=timers[name][1],
            back_since_s=timers[name][2],
            delivery=r.delivery,
            reason=why,
            replicas_seen=r.obs.replicas_ready + r.obs.replicas_starting,
        )
    cost = sum(rows[n].price * t for n, t in targets.items())
    unserved = {f: round(s, 6) for f, s in ideal.unserved.items()}
    alerts = []
    if binding:
        base = uncapped.unserved if uncapped is not None else {}
        short = ", ".join(
            f"{f} {s:.0%} short" for f, s in unserved.items() if s > base.get(f, 0.0) + 1e-6
        )
        alerts.append(
            f"spend ceiling ${ceiling:,.2f}/hour binds: targets cost ${cost:,.2f}/hour"
            + (f"; forecast load not covered: {short}" if short else "")
        )
    alerts += [u.message() for u in unplaced.values()]
    decision = ScalingDecision(
        now_s=now,
        targets=decision_targets,
        cost_per_hour_usd=cost,
        ceiling_usd_per_hour=ceiling,
        ceiling_binding=binding,
        unserved_share=unserved,
        unplaced=unplaced,
        prefer_cheaper=binding,
        spend_usd_per_hour=sum(o.spend_usd_per_hour for o in obs.values()),
        solver=ideal.method,
        alerts=tuple(alerts),
    )
    return decision, ScalingTickState(families=families, profiles=new_profiles, last_now_s=now)


# --------------------------------------------------------------------------- steps


def _forecast(
    policy: Policy,
    obs: dict[str, ProfileObservation],
    state: ScalingTickState,
    now: float,
    knobs: PlannerKnobs,
) -> tuple[dict[str, FamilyState], dict[str, Demand]]:
    families: dict[str, FamilyState] = {}
    demand: dict[str, Demand] = {}
    for fam in policy.catalog.families:
        members = [p for p in policy.catalog.profiles if p.served_model_name == fam]
        o = [obs[p.name] for p in members]
        rps = sum(x.arrival_rate_rps + x.refused_rps for x in o)
        tin = sum(x.input_tokens_per_s + x.refused_input_tokens_per_s for x in o)
        tout = sum(x.output_tokens_per_s + x.refused_output_tokens_per_s for x in o)
        busy = sum(x.requests_running + x.requests_waiting for x in o)
        prev = state.families.get(fam, FamilyState())
        fs = FamilyState(
            input_tps=holt_update(prev.input_tps, tin, now, knobs),
            output_tps=holt_update(prev.output_tps, tout, now, knobs),
            rps=holt_update(prev.rps, rps, now, knobs),
        )
        families[fam] = fs
        horizon = max(p.replicas.startup_s for p in members)
        idle = rps <= 0 and busy <= 0
        demand[fam] = Demand(
            rps=0.0 if idle else planning_demand(fs.rps, horizon, knobs),
            input_tps=0.0 if idle else planning_demand(fs.input_tps, horizon, knobs),
            output_tps=0.0 if idle else planning_demand(fs.output_tps, horizon, knobs),
            horizon_s=horizon,
            idle=idle,
        )
    return families, demand


def _row(
    p: Profile,
    o: ProfileObservation,
    policy: Policy,
    state: ScalingTickState,
    demand: dict[str, Demand],
    knobs: PlannerKnobs,
) -> Row:
    bounds = policy.scaling[p.name]
    slo = planning_slo(policy, p.name)
    d = demand[p.served_model_name]
    prompt = d.prompt_tokens or policy.spec.reference_request("standard").input_tokens
    cap = replica_capacity(p, slo, prompt, max(1, round(d.output_per_request)))
    prev = state.profiles.get(p.name)
    delivery = prev.delivery if prev is not None else 1.0
    delivery = _update_delivery(p, o, delivery, knobs)
    current = prev.target if prev is not None else o.replicas_current
    seen = o.replicas_ready + o.replicas_starting
    if prev is not None and prev.target == 0 and prev.replicas_seen == 0 and seen > 0:
        current = seen  # Serve started them for requests it held at zero (its cold start)
    return Row(
        profile=p,
        obs=o,
        slo=slo,
        cap=cap,
        delivery=delivery,
        prefill_delivery=delivery if knobs.delivery_covers_prefill else 1.0,
        lo=bounds.min_replicas,
        hi=bounds.max_replicas,
        headroom=bounds.headroom,
        serves=serves_anyone(policy, p.name) and bounds.max_replicas > 0,
        current=current,
        above_since_s=prev.above_since_s if prev is not None else None,
        below_since_s=prev.below_since_s if prev is not None else None,
        back_since_s=prev.back_since_s if prev is not None else None,
        zero_hold_s=policy.last_replica_hold_s(p.name),
    )


def _update_delivery(
    p: Profile, o: ProfileObservation, delivery: float, knobs: PlannerKnobs
) -> float:
    """EWMA of modelled / measured TPOT at the observed batch (needs >= 1 stream per replica)."""
    if o.replicas_ready <= 0 or o.tpot_ms.p50 is None or o.tpot_ms.p50 <= 0:
        return delivery
    per_replica = o.requests_running / o.replicas_ready
    if per_replica < 1.0:
        return delivery
    perf = performance(p)
    sample = modelled_tpot_ms(perf, min(per_replica, perf.max_concurrency)) / o.tpot_ms.p50
    new = delivery + knobs.delivery_weight * (sample - delivery)
    return min(knobs.delivery_max, max(knobs.delivery_min, new))


def _measured(p: object) -> tuple[str, float] | None:
    for label in ("p95", "p90", "p50"):
        v = getattr(p, label)
        if v is not None:
            return label, v
    return None


def _pressure(r: Row, knobs: PlannerKnobs) -> str:
    """Why this profile needs a replica now, or ''."""
    o = r.obs
    if r.hi <= 0:
        return ""
    asked = o.arrival_rate_rps + o.refused_rps
    if o.replicas_ready <= 0 and o.replicas_starting <= 0 and r.current <= 0:
        if o.requests_waiting > 0 or asked > 0:
            if o.requests_waiting:
                return f"{o.requests_waiting:g} requests waiting and no replica (cold start)"
            return f"{asked:.2g} req/s and no replica (cold start)"
        return ""
    if o.replicas_ready <= 0:
        return ""
    if o.refused_rps > 0:
        return f"{o.refused_rps:.2g} req/s refused for capacity on {o.replicas_ready} replica(s)"
    loaded = o.requests_running >= o.replicas_ready or o.requests_waiting > 0
    per = o.requests_waiting / o.replicas_ready
    if knobs.waiting_pressure_per_replica > 0 and per > knobs.waiting_pressure_per_replica:
        return f"{o.requests_waiting:g} requests waiting on {o.replicas_ready} replica(s)"
    if (
        o.kv_cache_usage is not None
        and o.kv_cache_usage >= knobs.kv_pressure_usage
        and o.requests_waiting > 0
    ):
        return f"KV cache {o.kv_cache_usage:.0%} full, {o.requests_waiting:g} requests waiting"
    if not loaded:
        return ""
    rate = f"at {tps(o.output_tokens_per_s)} tok/s"
    if o.slo_judged >= knobs.attainment_min_judged:
        # p95 targets are shares of requests, each judged against its own tenant's target:
        # long prompts past the tightest TTFT are no pressure while the share holds
        share = min(1.0, o.slo_within / o.slo_judged)
        if share < knobs.attainment_goal:
            return f"SLO attainment {share:.1%} < {knobs.attainment_goal:.0%} {rate}"
        return ""
    for what, measured, slo in (
        ("TPOT", o.tpot_ms, r.slo.tpot_p95_ms),
        ("TTFT", o.ttft_ms, r.slo.ttft_p95_ms),
    ):
        got = _measured(measured)
        if slo is not None and got is not None and got[1] > slo:
            return f"{what} {got[0]} {got[1]:.0f} ms > SLO {slo:.0f} ms {rate}"
    return ""


def _problem(
    rows: dict[str, Row], ceiling: float | None, available: dict[str, float], *, use_floor: bool
) -> MixProblem:
    return MixProblem(
        profiles=tuple(
            MixProfile(
                name=r.name,
                family=r.family,
                price_per_hour=r.price,
                lo=r.floor if use_floor else r.lo,
                hi=max(r.hi, r.floor if use_floor else r.lo),
                need=r.need,
                serves=r.serves,
                units=_units(r.profile),
            )
            for r in rows.values()
        ),
        ceiling_per_hour=ceiling,
        available=available,
    )


def _fits(p: Profile, replicas: int, available: dict[str, float]) -> bool:
    """Whether `replicas` of `p` fit in the accelerators the cluster has (absent = unlimited):
    pressure never forces a profile past them (the solver places the load elsewhere)."""
    return all(
        units * replicas <= available[kind] + 1e-9
        for kind, units in _units(p).items()
        if kind in available
    )


def _units(p: Profile) -> dict[str, float]:
    acc = p.accelerator
    return {acc.type: float(acc.count)} if acc.is_gpu else {"CPU": acc.cpus}
