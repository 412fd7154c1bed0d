"""Hysteresis of the planner (step 5 in plan.py): delays, the N -> N-1 check and the hard
limits a held set of replicas would break.

Delays filter noise the same way both ways: a higher ideal target applies once it has lasted
`scale_up_delay_s` (at once under pressure), a lower one once it has lasted
`scale_down_delay_s`; an ideal back at or above the target for less than the up delay (a rise
that would not move the target up) does not restart the down delay, one back for the up delay
or longer does (session 16: on a noisy load the target otherwise sat one replica above the
ideal for a third of the ticks). `PlannerKnobs.down_delay_restart` names the rule. A
profile's last replica goes only once the lower ideal has lasted its `Row.zero_hold_s` (the
policy's `scale_to_zero_delay_s` when longer than the down delay)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from orchestrator.planning.mix import MixProblem, MixResult, unserved_with
from orchestrator.planning.rows import Row
from orchestrator.planning.types import DownDelayRestart, Limit

Timers = tuple[float | None, float | None, float | None]


def scaled(problem: MixProblem, factor: float) -> MixProblem:
    """The same problem with every profile's need multiplied by `factor`."""
    return MixProblem(
        profiles=tuple(replace(p, need=p.need * factor) for p in problem.profiles),
        ceiling_per_hour=problem.ceiling_per_hour,
        available=problem.available,
    )


def hysteresis(
    rows: dict[str, Row],
    ideal: MixResult,
    problem: MixProblem,
    auto: object,
    now: float,
    solve: Callable[[MixProblem], MixResult],
    *,
    restart: DownDelayRestart = "after_up_delay",
) -> tuple[dict[str, int], dict[str, Timers], dict[str, list[Limit]]]:
    """Targets after the up/down delays and the N -> N-1 check (see the module docstring);
    timers per profile: (ideal above the target since, below it since, back at or above it
    while a scale-down waits since). `restart` (`PlannerKnobs.down_delay_restart`): what
    restarts a waiting scale-down's delay."""
    up_delay = auto.scale_up_delay_s  # type: ignore[attr-defined]
    down_delay = auto.scale_down_delay_s  # type: ignore[attr-defined]
    margin = auto.scale_down_margin  # type: ignore[attr-defined]
    targets: dict[str, int] = {}
    timers: dict[str, Timers] = {}
    limits: dict[str, list[Limit]] = {n: [] for n in rows}
    downs: list[str] = []
    for name, r in rows.items():
        cur = min(max(r.current, r.lo), r.hi)  # bounds changed (policy reload): apply at once
        want = ideal.replicas[name]
        above, below, back = r.above_since_s, r.below_since_s, r.back_since_s
        if want >= cur and below is not None:
            # the ideal is back at (or over) the target while a scale-down waits
            back = back if back is not None else now
            if restart == "at_target" or (restart == "after_up_delay" and now - back >= up_delay):
                below, back = None, None
        else:
            back = None
        if want > cur:
            since = above if above is not None else now
            if r.pressure or now - since >= up_delay:
                targets[name] = want
                timers[name] = (since, None, None)
            else:
                targets[name] = cur
                timers[name] = (since, below, back)
                limits[name].append("up_delay")
        elif want < cur:
            since = below if below is not None else now
            timers[name] = (None, since, None)
            targets[name] = cur
            if now - since >= down_delay:
                downs.append(name)
            else:
                limits[name].append("down_delay")
        else:
            timers[name] = (None, below, back)
            targets[name] = cur
    # N -> N-1: a scale-down goes no lower than the cheapest mix for the forecast + margin
    # (so it cannot re-trigger a scale-up), and must not leave load the ideal mix serves
    # unserved; failing that, one step down if that still serves the forecast + margin
    if downs:
        strict_problem = scaled(problem, 1.0 + margin)
        strict = solve(strict_problem)
        allowed = {
            f: s if ideal.unserved.get(f, 0.0) > 1e-9 else 0.0
            for f, s in unserved_with(strict_problem, ideal.replicas).items()
        }
        for name in sorted(downs, key=lambda n: -rows[n].price):
            cur = targets[name]
            since = timers[name][1]
            keep_last = since is not None and now - since < rows[name].zero_hold_s
            if keep_last and cur <= 1:
                limits[name].append("zero_delay")
                continue
            floor = max(ideal.replicas[name], strict.replicas[name])
            for candidate, check, within in (
                (floor, problem, ideal.unserved),
                (cur - 1, strict_problem, allowed),
            ):
                candidate = max(candidate, 1) if keep_last else candidate
                if candidate >= cur:
                    continue
                lost = unserved_with(check, {**targets, name: candidate})
                if all(lost[f] <= within.get(f, 0.0) + 1e-9 for f in lost):
                    targets[name] = candidate
                    if candidate == ideal.replicas[name]:
                        timers[name] = (None, None, None)
                    break
            else:
                limits[name].append("n_minus_1")
    # hard limits the held set breaks apply at once: take the ideal mix
    cost = sum(rows[n].price * t for n, t in targets.items())
    over_cost = problem.ceiling_per_hour is not None and cost > problem.ceiling_per_hour + 1e-9
    over_res = any(
        sum(p.units.get(res, 0.0) * targets[p.name] for p in problem.profiles) > avail + 1e-9
        for res, avail in problem.available.items()
    )
    if over_cost or over_res:
        for name in rows:
            if targets[name] > ideal.replicas[name]:
                targets[name] = ideal.replicas[name]
                timers[name] = (None, None, None)
                limits[name] = [x for x in limits[name] if x not in ("down_delay", "n_minus_1")]
                limits[name].append("cost_ceiling" if over_cost else "resources")
    return targets, timers, limits
