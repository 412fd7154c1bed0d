"""What a planning tick says about itself: per-profile reasons, and the forecast load it
cannot place with the limit that stops it."""

from __future__ import annotations

from orchestrator.planning.mix import EPS, MixProblem, MixResult
from orchestrator.planning.rows import Demand, Row
from orchestrator.planning.types import Limit, UnplacedLoad


def utilisation(r: Row) -> float:
    o = r.obs
    if o.replicas_ready <= 0:
        return 0.0
    work = o.input_tokens_per_s / r.prefill_tps + o.output_tokens_per_s / r.decode_tps
    return work / o.replicas_ready


def tps(v: float) -> str:
    return f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}"


def reason(
    r: Row,
    target: int,
    ideal: MixResult,
    d: Demand,
    limits: tuple[Limit, ...],
    now: float,
    timers: tuple[float | None, ...],
    auto: object,
    rows: dict[str, Row],
) -> str:
    cur = r.current
    arrow = f"{cur} -> {target}" if target != cur else f"hold {target}"
    if r.hi <= 0:
        return "disabled (max_replicas 0)"
    share = ideal.share.get(r.name, 0.0)
    # the measured speed correction (TPOT at the observed batch), when it moved
    speed = (
        f"; measured speed x{r.delivery:.2f} of the catalog's"
        if abs(r.delivery - 1) > 0.005
        else ""
    )
    load = (
        f"forecast {tps(d.output_tps)} out tok/s in {d.horizon_s:.0f} s; its share "
        f"{share:.0%} needs {share * r.need:.1f} replicas at {tps(r.decode_tps)} tok/s each "
        f"(+{r.headroom:.0%} headroom{speed})"
    )
    if r.pressure and target > cur:
        load = r.pressure
    elif d.idle:
        load = "idle: no requests"
    elif r.need <= 0:
        load = "no load for this profile"
    elif share <= 1e-9:
        cheaper = [
            o.name for o in rows.values() if o.family == r.family and ideal.share.get(o.name, 0) > 0
        ]
        blocked = {"resources", "max_replicas", "cost_ceiling"} & set(limits)
        load = (
            "no share of the family's load fits here"
            if blocked or not cheaper
            else f"the family's load goes to {', '.join(cheaper)} (cheaper at the SLO)"
        )
    notes = []
    if "up_delay" in limits and timers[0] is not None:
        notes.append(f"up delay {now - timers[0]:.0f}/{auto.scale_up_delay_s:.0f} s")  # type: ignore[attr-defined]
    if "down_delay" in limits and timers[1] is not None:
        notes.append(
            f"{ideal.replicas[r.name]} would do; down delay "
            f"{now - timers[1]:.0f}/{auto.scale_down_delay_s:.0f} s"  # type: ignore[attr-defined]
        )
    if "zero_delay" in limits and timers[1] is not None:
        notes.append(
            f"last replica held {now - timers[1]:.0f}/{r.zero_hold_s:.0f} s (scale_to_zero_delay_s)"
        )
    if "n_minus_1" in limits:
        notes.append(
            f"{target - 1} would not serve the forecast +{auto.scale_down_margin:.0%} "  # type: ignore[attr-defined]
            "(N -> N-1 check)"
        )
    down = target < cur
    if "cost_ceiling" in limits:
        notes.append(
            "down at once: holding it would pass the $/hour ceiling"
            if down
            else "capped by the $/hour ceiling"
        )
    if "resources" in limits:
        notes.append(
            "down at once: holding it would need more accelerators than available"
            if down
            else "capped by available accelerators"
        )
    if "max_replicas" in limits:
        notes.append(f"at max_replicas {r.hi}")
    if "slo_infeasible" in limits:
        notes.append("even one stream misses the SLO")
    if target == 0 and cur > 0:
        notes.append("scale to zero")
    tail = f" ({'; '.join(notes)})" if notes else ""
    return f"{load}; {arrow}{tail}"


def unplaced_load(
    problem: MixProblem, ideal: MixResult, output_tps: dict[str, float]
) -> tuple[dict[str, UnplacedLoad], dict[str, tuple[Limit, ...]]]:
    """Per family, the forecast load the ideal mix leaves unplaced and the limit that stops
    each of its profiles from taking more (checked in this order: the profile's
    max_replicas, an accelerator type used up, one more replica passing the $/hour ceiling);
    also, per profile, the limits that bind it."""
    used = {
        res: sum(p.units.get(res, 0.0) * ideal.replicas[p.name] for p in problem.profiles)
        for res in problem.available
    }
    ceiling = problem.ceiling_per_hour
    out: dict[str, UnplacedLoad] = {}
    per_profile: dict[str, tuple[Limit, ...]] = {}
    for fam, share in ideal.unserved.items():
        if share <= 1e-6:
            continue
        limits: list[Limit] = []
        details: list[str] = []
        servers = problem.servers(fam)
        for p in servers:
            n = ideal.replicas[p.name]
            short = [
                res
                for res, units in p.units.items()
                if units > 0 and res in used and used[res] + units > problem.available[res] + EPS
            ]
            if n >= p.hi:
                found: Limit = "max_replicas"
                text = f"{p.name} at max_replicas {p.hi}"
            elif short:
                found = "resources"
                text = "; ".join(
                    f"{r} {used[r]:g} of {problem.available[r]:g} in use" for r in short
                )
            elif ceiling is not None and ideal.cost_per_hour + p.price_per_hour > ceiling + EPS:
                found = "cost_ceiling"
                text = f"one more {p.name} would pass the ${ceiling:,.2f}/hour ceiling"
            else:
                continue
            per_profile[p.name] = (found,)
            limits.append(found)
            if text not in details:
                details.append(text)
        best = min((p.need for p in servers), default=0.0)
        out[fam] = UnplacedLoad(
            family=fam,
            share=round(min(1.0, share), 6),
            output_tps=share * output_tps.get(fam, 0.0),
            replicas=share * best,
            limited_by=tuple(dict.fromkeys(limits)),
            detail="; ".join(details),
        )
    return out, per_profile
