"""simulate.terms: the cost difference of two runs splits exactly into its terms."""

from __future__ import annotations

import pytest

from orchestrator.simulate.terms import TERMS, RunUse, cost_terms, term_totals

PRICES = {"big": 4.0, "small": 2.0, "warm": 3.0, "cold": 10.0, "theirs": 1.0}


def test_terms_sum_to_the_difference_and_name_each_cause():
    ours = RunUse(
        replica_hours={"big": 3.0, "small": 1.0, "warm": 1.0, "cold": 0.1},
        served={"big": 900, "small": 100},
    )
    base = RunUse(replica_hours={"big": 4.0, "theirs": 2.0}, served={"big": 950, "theirs": 50})
    terms = cost_terms(ours, base, PRICES, {"warm": 1, "big": 1}, hours=1.0)
    totals = term_totals(terms)
    assert set(totals) == set(TERMS)
    assert terms["idle_minimum"] == {"warm": 3.0}  # one always-on replica, no request
    assert terms["unused_start"] == {"cold": pytest.approx(1.0)}  # started, used by nobody
    assert terms["other_profiles"] == {"small": 2.0}  # ours' choice the base never made
    assert terms["shared_pools"] == {"big": -4.0}  # one replica-hour fewer than the base
    assert terms["base_only"] == {"theirs": -2.0}
    cost = lambda run: sum(h * PRICES[n] for n, h in run.replica_hours.items())  # noqa: E731
    assert sum(totals.values()) == pytest.approx(cost(ours) - cost(base))


def test_an_unused_profile_beyond_its_minimum_is_start_up():
    ours = RunUse(replica_hours={"warm": 1.5}, served={})
    terms = cost_terms(ours, RunUse({}, {}), PRICES, {"warm": 1}, hours=1.0)
    assert terms["idle_minimum"] == {"warm": 3.0}
    assert terms["unused_start"] == {"warm": pytest.approx(1.5)}
