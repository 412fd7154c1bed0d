"""A batch job beside traffic in the simulator: paced by the product's pacing, or at once."""

from __future__ import annotations

from orchestrator.policy import load_policy_text
from orchestrator.simulate.batch import at_once_starts, paced_starts, simulate_batch
from tests.simulate.conftest import GPU, POLICY_TEXT, make_requests

BATCH_POLICY = (
    POLICY_TEXT
    + """\
tenants:
  - name: chat
    api_keys: [{env: CHAT_KEY}]
  - name: batch
    api_keys: [{env: BATCH_KEY}]
    latency: {ttft_p95_ms: 60000, e2e_p95_ms: 600000}
    batch: {max_concurrent_lines: 6}
"""
)


def test_paced_starts_finish_before_the_deadline_and_keep_the_cap():
    timeline = [(t, [2], [30]) for t in range(0, 4000, 10)]  # busy: no trough
    starts = paced_starts(200, 0.0, 3600.0, 30.0, timeline, caps=[16], tenant_cap=6)
    assert len(starts) == 200 and starts == sorted(starts)
    assert max(starts) + 30.0 <= 3600.0
    for t in starts:  # never more than the cap in flight
        assert sum(1 for s in starts if s <= t < s + 30.0) <= 6
    spread = max(starts) - min(starts)
    assert spread > 1800.0  # paced over the window, not all at the start


def test_a_trough_pulls_lines_forward():
    idle = [(t, [2], [0]) for t in range(0, 4000, 10)]
    busy = [(t, [2], [30]) for t in range(0, 4000, 10)]
    fast = paced_starts(200, 0.0, 3600.0, 30.0, idle, caps=[16], tenant_cap=6)
    slow = paced_starts(200, 0.0, 3600.0, 30.0, busy, caps=[16], tenant_cap=6)
    assert max(fast) < max(slow)


def test_the_parts_of_the_pacing_alone():
    idle = [(t, [2], [0]) for t in range(0, 4000, 10)]
    busy = [(t, [2], [30]) for t in range(0, 4000, 10)]

    def last(timeline, pacing):
        starts = paced_starts(200, 0.0, 3600.0, 30.0, timeline, [16], 6, pacing)
        assert len(starts) == 200 and max(starts) + 30.0 <= 3600.0 - 360.0  # before the margin
        return max(starts)

    # in a trough, filling runs ahead; the even pace alone spreads over the window
    assert last(idle, "troughs_only") == last(idle, "paced") < 1500.0 < last(idle, "even_only")
    # no trough: the even pace runs from the start, trough filling alone waits for its floor
    even = paced_starts(200, 0.0, 3600.0, 30.0, busy, [16], 6, "even_only")
    floor = paced_starts(200, 0.0, 3600.0, 30.0, busy, [16], 6, "troughs_only")
    assert min(floor) > 1000.0 > min(even)


def test_at_once_keeps_its_concurrency_from_the_start():
    assert at_once_starts(5, 10.0, 4.0, 2) == [10.0, 10.0, 14.0, 14.0, 18.0]


def test_simulate_batch_runs_the_job_both_ways_and_reports_added_cost():
    policy = load_policy_text(BATCH_POLICY, "policy.yaml", GPU, resolve_secrets=False)
    trace = make_requests(n=300, rate=1.0)
    result = simulate_batch(GPU, policy, trace, lines=60, deadline_s=1800.0, feedback_lag_s=None,
                            ablation=True)  # fmt: skip
    assert set(result.runs) == {"paced", "at_once", "even_only", "troughs_only"}
    for run in result.runs.values():
        assert run.lines_served + run.lines_rejected == 60
        assert run.added_cost_usd >= -1e-9
    assert result.runs["paced"].finish_s >= result.runs["at_once"].finish_s
    assert result.to_json()["runs"]["paced"]["met_deadline"] in (True, False)
