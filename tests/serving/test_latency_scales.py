"""`ScaleEma` (observed / modelled latency per profile) and a trace's observed TPOT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.serving.accounting import RequestTrace
from orchestrator.serving.latency_scales import ScaleEma


def test_the_first_ratio_is_taken_then_averaged_clipped_and_forgotten():
    s = ScaleEma(weight=0.5, max_age_s=10.0, bounds=(0.5, 4.0))
    assert s.fresh("a", 0.0) is None
    s.observe("a", 200.0, 100.0, now=0.0)
    assert s.fresh("a", 1.0) == pytest.approx(2.0)
    s.observe("a", 100.0, 100.0, now=1.0)  # 2 + 0.5 * (1 - 2)
    assert s.fresh("a", 1.0) == pytest.approx(1.5)
    s.observe("a", 10_000.0, 100.0, now=2.0)  # 100x clipped to 4
    assert s.fresh("a", 2.0) == pytest.approx(1.5 + 0.5 * 2.5)
    assert s.unscaled("a", 275.0, 2.0) == pytest.approx(100.0)
    assert s.fresh("b", 2.0) is None and s.unscaled("b", 275.0, 2.0) == 275.0
    assert s.fresh("a", 12.5) is None  # older than max_age_s: the model alone again
    s.observe("a", 300.0, 100.0, now=13.0)  # a stale ratio is not averaged in
    assert s.fresh("a", 13.0) == pytest.approx(3.0)
    s.observe("a", 300.0, 0.0, now=14.0)  # no modelled figure: nothing learnt
    assert s.fresh("a", 14.0) == pytest.approx(3.0)


def test_a_traces_tpot_is_the_time_after_the_first_token_per_later_token():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    trace = RequestTrace(request_id="r", tenant="t", profile="p", started_at=start)
    assert trace.tpot_s(10) is None  # no token yet
    trace.first_token_at = start + timedelta(seconds=1)
    trace.finished_at = start + timedelta(seconds=1.9)
    assert trace.tpot_s(10) == pytest.approx(0.1)
    assert trace.tpot_s(1) is None  # one token: no time between tokens
    trace.mark_finished()  # set once: a later call keeps the first end
    assert trace.finished_at == start + timedelta(seconds=1.9)
