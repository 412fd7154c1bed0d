"""`orchestrator.attainment`: the sliding-window share of requests within target."""

from __future__ import annotations

import pytest

from orchestrator.attainment import AttainmentTracker, within_targets


def test_within_targets_needs_every_set_target_met():
    assert within_targets([(0.1, 0.2), (5.0, None)])
    assert not within_targets([(0.1, 0.2), (0.05, 0.04)])
    assert not within_targets([(None, 0.2)])  # a target with no measurement: missed
    assert within_targets([])


def test_share_over_the_window_per_tenant():
    t = AttainmentTracker(window_s=60)
    for i in range(10):
        t.observe("chat", i != 3, now=float(i))
    t.observe("batch", False, now=5.0)
    assert t.of("chat", 10.0).share == pytest.approx(0.9)
    assert t.of("batch", 10.0).share == 0.0
    assert t.of("nobody", 10.0).share is None  # no request: no attainment, never 100 %
    # the miss at t=3 leaves the window at t=63.5: only successes remain
    assert t.of("chat", 63.5).share == 1.0 and t.of("chat", 63.5).requests == 6
    assert set(t.snapshot(10.0)) == {"batch", "chat"}


def test_sample_bound_keeps_the_newest():
    t = AttainmentTracker(window_s=1e9, max_samples=3)
    for ok in (False, False, True, True, True):
        t.observe("a", ok, now=0.0)
    assert t.of("a", 0.0).as_dict()["share"] == 1.0


def test_invalid_window():
    with pytest.raises(ValueError):
        AttainmentTracker(window_s=0)


def test_judged_counts_successes_and_server_failures_not_policy_refusals():
    from orchestrator.attainment import judged

    assert judged(200) and judged(503) and judged(500)
    assert not judged(402) and not judged(400) and not judged(429)
    assert not judged(429, "rate_limit_exceeded") and not judged(402, "cost_cap_exceeded")
    for code in ("server_overloaded", "queue_full", "queue_timeout", "profile_lost"):
        assert judged(429, code)  # shed for capacity: the server's miss
