"""`planning.expected`: the expected output tokens the planner sizes from (pure)."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.planning.expected import Z90, expected_of, expected_output_tokens
from orchestrator.routing.types import Estimate


def sampled(p50: float, p90: float, cap: float | None, n: int = 400_000) -> float:
    s = np.log(p90 / p50) / Z90
    x = np.random.default_rng(0).lognormal(np.log(p50), s, n)
    return float(np.minimum(x, cap).mean() if cap is not None else x.mean())


@pytest.mark.parametrize(
    ("p50", "p90", "cap"), [(349, 700, None), (300, 900, 500), (1000, 2600, 16000), (50, 400, 64)]
)
def test_matches_the_lognormal_it_fits(p50, p90, cap):
    assert expected_output_tokens(p50, p90, cap) == pytest.approx(sampled(p50, p90, cap), rel=0.01)


def test_a_skewed_prediction_expects_more_than_its_median():
    assert expected_output_tokens(349, 700) > 1.1 * 349


def test_degenerate_predictions():
    assert expected_output_tokens(100, 100, 50) == 50  # the truth: its length, cut at the cap
    assert expected_output_tokens(100, 100) == 100
    assert expected_output_tokens(0, 10) == 0
    assert expected_output_tokens(200, 400, 150) == 150  # median beyond the cap
    assert expected_output_tokens(1, 500) == 500  # no cap: never above p90


def test_grows_with_the_tail_and_the_cap_and_stays_below_it():
    caps = [expected_output_tokens(300, 900, c) for c in (200, 400, 800, 1600, 10_000)]
    assert caps == sorted(caps) and all(
        v <= c for v, c in zip(caps, (200, 400, 800, 1600, 10_000), strict=True)
    )
    tails = [expected_output_tokens(300, p90, 4096) for p90 in (300, 450, 600, 900)]
    assert tails == sorted(tails) and tails[0] == 300


def test_an_estimate_is_read_at_its_own_quantiles_and_cap():
    est = Estimate(0.01, 0.02, 1.0, 2.0, 0.0, 0.1, 0.02, 1.0, 300, 900, 0, 500)
    assert expected_of(est) == expected_output_tokens(300, 900, 500)
