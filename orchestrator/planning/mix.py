"""Cheapest replica mix: an integer program (HiGHS via scipy.optimize.milp) and a greedy fallback.

Shape (AIBrix's GPU optimizer solves the same with PuLP/CBC): profiles of one family can serve
each other's traffic. For profile p, `need_p` is how many replicas p alone would need for its
family's whole forecast load (headroom included). Variables: x_p integer replicas in
[lo_p, hi_p]; y_p >= 0 the share of its family's load p serves; s_f in [0, 1] the share of
family f left unserved. Constraints:

    need_p * y_p <= x_p                   (p's replicas cover the share it serves)
    sum_{p in f} y_p + s_f = 1            (each family's load is served or counted unserved)
    sum_p price_p x_p <= ceiling          ($/hour ceiling, when set)
    sum_p units_{p,r} x_p <= available_r  (GPUs per accelerator type / CPUs, when known)

Two phases: first minimise unserved load (sum_f weight_f s_f, weight_f = the replicas the
family needs on its most efficient profile), then, holding that, minimise $/hour. So the
ceiling only ever cuts capacity when it must, and then keeps the most load served.

Invariants: the result respects every bound; lower bounds win over the ceiling and resources
(the policy checks reject a ceiling below the minimum replicas' cost); the greedy result is
feasible and never cheaper than the solver's for the same unserved load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

EPS = 1e-9


@dataclass(frozen=True)
class MixProfile:
    name: str
    family: str
    price_per_hour: float
    lo: int
    hi: int
    need: float = 0.0  # replicas p alone needs for its family's load (0 = no load / no share)
    serves: bool = True  # False: takes no load (not eligible for anyone)
    units: Mapping[str, float] = field(default_factory=dict)  # resources per replica


@dataclass(frozen=True)
class MixProblem:
    profiles: tuple[MixProfile, ...]
    ceiling_per_hour: float | None = None
    available: Mapping[str, float] = field(default_factory=dict)

    def families_with_load(self) -> list[str]:
        seen: dict[str, None] = {}
        for p in self.profiles:
            if p.serves and p.need > 0:
                seen.setdefault(p.family)
        return list(seen)

    def servers(self, family: str) -> list[MixProfile]:
        return [p for p in self.profiles if p.family == family and p.serves and p.need > 0]

    def weight(self, family: str) -> float:
        return min(p.need for p in self.servers(family))


@dataclass(frozen=True)
class MixResult:
    replicas: dict[str, int]
    share: dict[str, float]  # y_p
    unserved: dict[str, float]  # s_f, per family with load
    cost_per_hour: float
    method: Literal["highs", "greedy", "exact"]


def _cost(problem: MixProblem, replicas: Mapping[str, int]) -> float:
    return sum(p.price_per_hour * replicas[p.name] for p in problem.profiles)


def unserved_with(problem: MixProblem, replicas: Mapping[str, int]) -> dict[str, float]:
    """Share of each family's load that fixed replica counts cannot serve (exact: with x fixed
    the families are independent and p serves at most x_p / need_p of its family)."""
    out = {}
    for f in problem.families_with_load():
        served = sum(replicas.get(p.name, 0) / p.need for p in problem.servers(f))
        out[f] = max(0.0, 1.0 - served)
    return out


def solve_mix_highs(problem: MixProblem, time_limit_s: float = 2.0) -> MixResult | None:
    """Optimal mix from HiGHS (scipy.optimize.milp); None if the solver fails."""
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp

    profs = problem.profiles
    fams = problem.families_with_load()
    ys = [p for p in profs if p.serves and p.need > 0]
    nx, ny, ns = len(profs), len(ys), len(fams)
    n = nx + ny + ns
    xi = {p.name: i for i, p in enumerate(profs)}
    yi = {p.name: nx + i for i, p in enumerate(ys)}
    si = {f: nx + ny + i for i, f in enumerate(fams)}
    rows: list[np.ndarray] = []
    lbs: list[float] = []
    ubs: list[float] = []

    def row() -> np.ndarray:
        return np.zeros(n)

    for p in ys:
        r = row()
        r[yi[p.name]] = p.need
        r[xi[p.name]] = -1.0
        rows.append(r), lbs.append(-np.inf), ubs.append(0.0)
    for f in fams:
        r = row()
        for p in problem.servers(f):
            r[yi[p.name]] = 1.0
        r[si[f]] = 1.0
        rows.append(r), lbs.append(1.0), ubs.append(1.0)
    lo_cost = sum(p.price_per_hour * p.lo for p in profs)
    if problem.ceiling_per_hour is not None:
        r = row()
        for p in profs:
            r[xi[p.name]] = p.price_per_hour
        rows.append(r), lbs.append(-np.inf), ubs.append(max(problem.ceiling_per_hour, lo_cost))
    for res, avail in problem.available.items():
        r = row()
        for p in profs:
            r[xi[p.name]] = p.units.get(res, 0.0)
        if not r.any():
            continue
        lo_use = sum(p.units.get(res, 0.0) * p.lo for p in profs)
        rows.append(r), lbs.append(-np.inf), ubs.append(max(avail, lo_use))
    lower = np.array([p.lo for p in profs] + [0.0] * (ny + ns), dtype=float)
    upper = np.array([p.hi for p in profs] + [1.0] * (ny + ns), dtype=float)
    integrality = np.array([1] * nx + [0] * (ny + ns))
    options = {"time_limit": time_limit_s, "disp": False}

    def solve(c: np.ndarray, extra: list[tuple[np.ndarray, float]]) -> np.ndarray | None:
        a = rows + [e[0] for e in extra]
        ub = ubs + [e[1] for e in extra]
        lb = lbs + [-np.inf] * len(extra)
        cons = [LinearConstraint(np.vstack(a), lb, ub)] if a else []
        res = milp(c, integrality=integrality, bounds=Bounds(lower, upper), constraints=cons,
                   options=options)  # fmt: skip
        return res.x if res.status == 0 and res.x is not None else None

    c1 = row()
    for f in fams:
        c1[si[f]] = problem.weight(f)
    first = solve(c1, [])
    if first is None:
        return None
    best_unserved = float(c1 @ first)
    c2 = row()
    for p in profs:
        # a tiny per-replica cost keeps free (price 0) profiles at their minimum
        c2[xi[p.name]] = p.price_per_hour + 1e-6
    extra = [(c1, best_unserved + 1e-7 * max(1.0, best_unserved))] if fams else []
    second = solve(c2, extra)
    sol = second if second is not None else first
    replicas = {p.name: int(round(sol[xi[p.name]])) for p in profs}
    return MixResult(
        replicas=replicas,
        share={p.name: float(sol[yi[p.name]]) for p in ys},
        unserved={f: max(0.0, float(sol[si[f]])) for f in fams},
        cost_per_hour=_cost(problem, replicas),
        method="highs",
    )


def solve_mix_greedy(problem: MixProblem) -> MixResult:
    """Fallback: start from the minimums, then fill each family's load on its profiles in
    order of $ per unit of load (price x need), within bounds, ceiling and resources."""
    replicas = {p.name: p.lo for p in problem.profiles}
    budget = math.inf
    if problem.ceiling_per_hour is not None:
        budget = problem.ceiling_per_hour - _cost(problem, replicas)
    left = {
        r: avail - sum(p.units.get(r, 0.0) * p.lo for p in problem.profiles)
        for r, avail in problem.available.items()
    }
    share: dict[str, float] = {}
    unserved: dict[str, float] = {}
    fams = sorted(problem.families_with_load(), key=lambda f: -problem.weight(f))
    for f in fams:
        rest = 1.0
        order = sorted(problem.servers(f), key=lambda p: (p.price_per_hour * p.need, p.name))
        for p in order:  # the minimum replicas serve first, cheapest use first
            take = min(rest, replicas[p.name] / p.need)
            share[p.name] = take
            rest -= take
        for p in order:
            if rest <= EPS:
                break
            free = replicas[p.name] - share[p.name] * p.need
            want = max(0, math.ceil(rest * p.need - free - EPS))
            room = p.hi - replicas[p.name]
            if p.price_per_hour > 0 and budget < math.inf:
                room = min(room, int(math.floor(budget / p.price_per_hour + EPS)))
            for r, units in p.units.items():
                if units > 0 and r in left:
                    room = min(room, int(math.floor(left[r] / units + EPS)))
            add = max(0, min(want, room))
            replicas[p.name] += add
            budget -= add * p.price_per_hour
            for r, units in p.units.items():
                if r in left:
                    left[r] -= add * units
            take = min(rest, (replicas[p.name] - share[p.name] * p.need) / p.need)
            share[p.name] += take
            rest -= take
        unserved[f] = max(0.0, rest)
    for p in problem.profiles:
        if p.serves and p.need > 0:
            share.setdefault(p.name, 0.0)
    return MixResult(replicas, share, unserved, _cost(problem, replicas), "greedy")


def greedy_is_exact(problem: MixProblem, result: MixResult) -> bool:
    """True when the greedy mix is provably optimal: every bound is fixed (min == max), or
    every family with load has one profile that can serve it and nothing was left unserved (then each x_p = max(lo, ceil(need)) is
    the least any feasible mix can have, and prices are >= 0)."""
    fixed = all(p.lo == p.hi for p in problem.profiles)  # nothing to decide at all
    one_server = all(len(problem.servers(f)) == 1 for f in problem.families_with_load())
    return fixed or (one_server and all(s <= EPS for s in result.unserved.values()))


def solve_mix(
    problem: MixProblem, *, use_solver: bool = True, time_limit_s: float = 2.0
) -> MixResult:
    """The solver's mix; the greedy one when it is provably optimal (`greedy_is_exact`), or
    when the solver is off or fails."""
    greedy = solve_mix_greedy(problem)
    if greedy_is_exact(problem, greedy):
        return MixResult(
            greedy.replicas, greedy.share, greedy.unserved, greedy.cost_per_hour, "exact"
        )
    if use_solver:
        try:
            found = solve_mix_highs(problem, time_limit_s)
        except ImportError:  # pragma: no cover - scipy is a runtime dependency
            found = None
        if found is not None:
            return found
    return greedy
