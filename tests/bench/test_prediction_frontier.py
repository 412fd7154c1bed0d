"""The cost-at-equal-attainment reading of `bench/prediction_frontier.py` (issue #27's
">= 15 % on cost at equal SLO attainment")."""

from __future__ import annotations

import sys

import pytest

from orchestrator.paths import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "bench"))

from prediction_frontier import cost_at, value_at  # noqa: E402


def test_cost_is_linear_between_the_sweep_points_that_bracket_the_attainment():
    curve = [(0.98, 18.0), (0.99, 19.0), (0.999, 22.0)]
    assert cost_at(curve, 0.985) == pytest.approx(18.5)
    assert cost_at(curve, 0.99) == pytest.approx(19.0)


def test_no_cost_outside_the_curve_never_extrapolated():
    curve = [(0.98, 18.0), (0.99, 19.0)]
    assert cost_at(curve, 0.995) is None
    assert cost_at(curve, 0.97) is None


def test_a_curve_that_turns_back_gives_its_cheapest_reading():
    # more headroom bought less attainment once (noise): the cheaper crossing counts
    curve = [(0.990, 18.0), (0.996, 20.0), (0.994, 21.0)]
    assert cost_at(curve, 0.995) == pytest.approx(18.0 + 2.0 * 5.0 / 6.0)
    assert cost_at(list(reversed(curve)), 0.995) == pytest.approx(18.0 + 2.0 * 5.0 / 6.0)


def test_the_saving_is_read_only_where_both_curves_reach():
    curves = {
        "ours": [(0.99, 18.0), (0.999, 20.0)],
        "ours-constant": [(0.98, 18.0), (0.995, 21.0)],
        "oracle": [(0.99, 19.0), (0.999, 21.0)],
    }
    rows = value_at(curves, [0.985, 0.99, 0.995, 0.999])
    assert [r["attainment"] for r in rows] == [0.99, 0.995]
    first = rows[0]
    assert first["cost_ours-constant"] == pytest.approx(20.0)
    assert first["saving_predictor"] == pytest.approx(1 - 18.0 / 20.0)
    assert first["saving_truth"] == pytest.approx(1 - 19.0 / 20.0)
