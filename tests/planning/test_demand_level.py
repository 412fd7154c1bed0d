"""The planner's demand level (`planning/level.py`): generated / sized output tokens per
profile, smoothed, bounded, honest about requests stopped early."""

from __future__ import annotations

import random

import pytest

from orchestrator.planning.level import PRIOR_SETTLED, DemandLevel
from orchestrator.policy.schema_cluster import DemandLevelSpec

SPEC = DemandLevelSpec(enabled=True)


def taught(samples: list[tuple[float, float]], spec: DemandLevelSpec = SPEC) -> DemandLevel:
    level = DemandLevel()
    for sized, generated in samples:
        level.observe("p", sized, generated, spec)
    return level


def test_no_settled_request_or_the_level_off_leaves_the_sizing_as_is():
    assert DemandLevel().factor("p", SPEC) == 1.0
    level = taught([(100.0, 170.0)] * 500)
    assert level.factor("p", SPEC) > 1.5
    off = SPEC.model_copy(update={"enabled": False})
    assert level.factor("p", off) == 1.0
    assert level.scale("p", 40.0, off) == 40.0
    assert level.factor("other", SPEC) == 1.0  # per profile


def test_the_level_is_the_ratio_of_sums_shrunk_by_its_evidence():
    # 3 requests sized 100 generated 50, 1 sized 100 generated 450: tokens 600 / 400 = 1.5
    # (a mean of ratios would say 0.75: the long answer weighs as the tokens it took)
    level = taught(
        [(100.0, 50.0)] * 3 + [(100.0, 450.0)], SPEC.model_copy(update={"window": 10_000})
    )
    want = 1.0 + 4 / (4 + PRIOR_SETTLED) * (1.5 - 1.0)
    assert level.factor("p", SPEC) == pytest.approx(want, rel=1e-3)
    # with much evidence the shrinkage fades: a steady 0.8 is learned
    steady = taught([(200.0, 160.0)] * 3000)
    assert steady.factor("p", SPEC) == pytest.approx(0.8, abs=0.01)
    assert steady.scale("p", 1000.0, SPEC) == pytest.approx(800.0, abs=10.0)


def test_the_level_stays_within_its_bounds_and_a_reload_of_them_acts_on_the_next_read():
    high = taught([(100.0, 900.0)] * 100)
    low = taught([(100.0, 5.0)] * 100)
    assert high.factor("p", SPEC) == SPEC.max_factor == 2.0
    assert low.factor("p", SPEC) == pytest.approx(1 / SPEC.max_factor)
    wider = SPEC.model_copy(update={"max_factor": 4.0})
    assert high.factor("p", wider) == 4.0
    assert low.factor("p", wider) == pytest.approx(0.25)
    none = SPEC.model_copy(update={"max_factor": 1.0})
    assert high.factor("p", none) == low.factor("p", none) == 1.0


def test_a_smaller_window_follows_a_change_sooner():
    before, after = [(100.0, 60.0)] * 2000, [(100.0, 120.0)] * 150
    short = taught(before + after, SPEC.model_copy(update={"window": 50}))
    long = taught(before + after, SPEC.model_copy(update={"window": 5000}))
    assert short.factor("p", SPEC) == pytest.approx(1.2, abs=0.03)
    assert long.factor("p", SPEC) < 0.7


def test_noise_is_smoothed_over_the_window():
    rng = random.Random(0)
    noisy = [(100.0, rng.lognormvariate(0.0, 1.0) * 100.0) for _ in range(6000)]
    level, seen = DemandLevel(), []
    for sized, generated in noisy:
        level.observe("p", sized, generated, SPEC)
        seen.append(level.factor("p", SPEC))
    tail = seen[3000:]
    assert max(tail) - min(tail) < 0.5  # one request moves it by at most ~1/window of a tail
    assert sum(tail) / len(tail) == pytest.approx(1.65, abs=0.2)  # e^(1/2): the lognormal mean


def test_a_request_stopped_early_is_a_lower_bound_it_never_lowers_the_level():
    level = taught([(100.0, 150.0)] * 200)
    before = level.factor("p", SPEC)
    for generated in (0.0, 3.0, 100.0, 140.0):  # client gone / engine failed early
        level.observe("p", 100.0, generated, SPEC, ended=False)
        assert level.factor("p", SPEC) == before
    level.observe("p", 100.0, 400.0, SPEC, ended=False)  # stopped, yet already above: taught
    assert level.factor("p", SPEC) > before
    # the same short answers, ended on their own, are exact: they lower it
    exact = taught([(100.0, 150.0)] * 200)
    exact.observe("p", 100.0, 3.0, SPEC)
    assert exact.factor("p", SPEC) < before


def test_an_answer_cut_at_its_cap_is_what_the_engine_generated():
    # sized 300 under a cap of 400 (the sizing is already cut at the cap); answers cut at 400
    # are the exact tokens generated, learned as is: the planner plans generated tokens
    level = taught([(300.0, 400.0)] * 2000)
    assert level.factor("p", SPEC) == pytest.approx(400 / 300, abs=0.01)


def test_a_sample_without_sized_tokens_is_ignored():
    level = taught([(0.0, 500.0), (-1.0, 20.0)] * 50)
    assert level.levels(SPEC) == {}
    assert level.factor("p", SPEC) == 1.0
