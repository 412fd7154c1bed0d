"""The mix solver (HiGHS via scipy) against the greedy fallback."""

from __future__ import annotations

import random

import pytest

from orchestrator.planning.mix import (
    MixProblem,
    MixProfile,
    solve_mix,
    solve_mix_greedy,
    solve_mix_highs,
    unserved_with,
)


def p(name, need, price=1.0, lo=0, hi=10, family="f", **kw):
    return MixProfile(name=name, family=family, price_per_hour=price, lo=lo, hi=hi, need=need, **kw)


SMALL_CASES = {
    "one profile": MixProblem((p("a", 2.4),)),
    "cheaper per load wins": MixProblem((p("a", 3.0, price=1.0), p("b", 1.0, price=4.0))),
    "minimum replicas are used first": MixProblem(
        (p("a", 2.0, price=1.0), p("b", 1.5, lo=1, price=3))
    ),
    "two families": MixProblem((p("a", 1.2), p("b", 0.4, family="g", price=2.0))),
    "max replicas spill over": MixProblem((p("a", 5.0, hi=3), p("b", 2.0, price=3.0))),
    "ceiling binds": MixProblem((p("a", 6.0),), ceiling_per_hour=4.0),
    "accelerators bind": MixProblem(
        (p("a", 4.0, units={"L4": 1}), p("b", 2.0, price=3.0, units={"H100": 1})),
        available={"L4": 2},
    ),
    "no load": MixProblem((p("a", 0.0, lo=1), p("b", 0.0))),
}


@pytest.mark.parametrize("name", list(SMALL_CASES))
def test_solver_and_greedy_agree_on_small_cases(name):
    problem = SMALL_CASES[name]
    exact = solve_mix_highs(problem)
    greedy = solve_mix_greedy(problem)
    assert exact is not None and exact.method == "highs"
    assert greedy.cost_per_hour == pytest.approx(exact.cost_per_hour)  # ties may differ
    for f, s in exact.unserved.items():
        assert greedy.unserved[f] == pytest.approx(s, abs=1e-6)


def test_solver_beats_greedy_where_rounding_matters():
    # 2.2 units of load: greedy fills the per-load cheapest `a` ($2.2 per load): 3 x $1 = $3.
    # The solver tops 2 `a` up with one small `b` (10 replicas per load, $0.3 each): $2.3
    problem = MixProblem((p("a", 2.2, price=1.0), p("b", 10.0, price=0.3)))
    exact, greedy = solve_mix_highs(problem), solve_mix_greedy(problem)
    assert greedy.replicas == {"a": 3, "b": 0}
    assert exact.replicas == {"a": 2, "b": 1}
    assert exact.cost_per_hour == pytest.approx(2.3)
    assert greedy.cost_per_hour == pytest.approx(3.0)


def test_greedy_is_feasible_and_never_cheaper_on_random_problems():
    rng = random.Random(3)
    for _ in range(40):
        profiles = tuple(
            p(
                f"p{i}",
                need=rng.choice([0.0, rng.uniform(0.2, 6.0)]),
                price=rng.choice([0.0, 0.5, 1.0, 2.0, 3.9]),
                lo=rng.choice([0, 0, 1]),
                hi=rng.choice([2, 4, 8]),
                family=rng.choice(["f", "g"]),
                units={rng.choice(["L4", "H100"]): rng.choice([1, 2])},
            )
            for i in range(rng.randint(1, 4))
        )
        problem = MixProblem(
            profiles,
            ceiling_per_hour=rng.choice([None, 6.0, 12.0]),
            available=rng.choice([{}, {"L4": 4}, {"H100": 4, "L4": 8}]),
        )
        exact, greedy = solve_mix_highs(problem), solve_mix_greedy(problem)
        assert exact is not None
        for res in (exact, greedy):
            for q in profiles:
                assert q.lo <= res.replicas[q.name] <= q.hi
            if problem.ceiling_per_hour is not None:
                floor = sum(q.lo * q.price_per_hour for q in profiles)
                assert res.cost_per_hour <= max(problem.ceiling_per_hour, floor) + 1e-6
            # the replicas really serve what the result claims
            left = unserved_with(problem, res.replicas)
            for f, s in res.unserved.items():
                assert left[f] <= s + 1e-6
        weight = {f: problem.weight(f) for f in exact.unserved}
        lost_exact = sum(weight[f] * s for f, s in exact.unserved.items())
        lost_greedy = sum(weight[f] * s for f, s in greedy.unserved.items())
        assert lost_exact <= lost_greedy + 1e-6
        if abs(lost_exact - lost_greedy) < 1e-6:
            assert exact.cost_per_hour <= greedy.cost_per_hour + 1e-6


def test_single_profile_families_skip_the_solver():
    problem = MixProblem((p("a", 2.4), p("b", 0.3, family="g")))
    res = solve_mix(problem)
    assert res.method == "exact" and res.replicas == {"a": 3, "b": 1}


def test_fixed_bounds_skip_the_solver():
    problem = MixProblem((p("a", 2.4, lo=1, hi=1), p("b", 1.0, lo=1, hi=1)))
    res = solve_mix(problem)
    assert res.method == "exact" and res.replicas == {"a": 1, "b": 1}


def test_greedy_is_the_fallback_without_the_solver():
    problem = SMALL_CASES["cheaper per load wins"]
    assert solve_mix(problem, use_solver=False).method == "greedy"
    assert solve_mix(problem).method == "highs"
