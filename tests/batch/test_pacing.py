"""Batch pacing: earliest deadline first, just fast enough, troughs filled, caps kept."""

from __future__ import annotations

from orchestrator.batch.pacing import Yield, deadline_floor, due_now, margin_s, plan
from orchestrator.batch.store import ActiveJob

NOW = 1_000_000.0


def _job(bid="b1", tenant="t", pending=100, running=0, window=3600.0, line_s=None, age=0.0,
         total=None):  # fmt: skip
    created = NOW - age
    return ActiveJob(bid, tenant, "/v1/chat/completions", created, created + window,
                     pending, running, 0, line_s, total)  # fmt: skip


def test_lines_fall_due_evenly_over_the_window_and_all_before_the_margin():
    job = _job(pending=100, window=3600.0)
    horizon = job.deadline - margin_s(job) - 10.0
    assert due_now(job, job.created_at, 10.0) == 0
    half = due_now(job, job.created_at + (horizon - job.created_at) / 2, 10.0)
    assert half == 50
    started = _job(pending=60, window=3600.0, total=100)  # 40 already started
    assert due_now(started, job.created_at + (horizon - job.created_at) / 2, 10.0) == 10
    assert due_now(job, horizon, 10.0) == 100


def test_a_late_job_runs_everything_it_has():
    job = _job(pending=7, window=3600.0, age=3590.0)
    assert due_now(job, NOW, 10.0) == 7


def test_busy_interactive_load_gets_only_the_deadlines_share():
    (pace,) = plan([_job(pending=100, age=600.0)], NOW, tenant_cap=lambda _: 50,
                   running_by_tenant={}, utilization=0.9, free_slots=40)  # fmt: skip
    assert 0 < pace.start == pace.required < 50


def test_a_trough_is_filled_up_to_the_tenant_cap_and_the_free_slots():
    (pace,) = plan([_job(pending=100)], NOW, tenant_cap=lambda _: 50, running_by_tenant={},
                   utilization=0.1, free_slots=8)  # fmt: skip
    assert pace.start == pace.required + 8
    (capped,) = plan([_job(pending=100)], NOW, tenant_cap=lambda _: 3, running_by_tenant={},
                     utilization=0.1, free_slots=80)  # fmt: skip
    assert capped.start == 3


def test_earliest_deadline_first_takes_the_spare_slots():
    early, late = _job("early", window=1800.0), _job("late", window=7200.0)
    paces = {p.batch_id: p for p in plan([late, early], NOW, tenant_cap=lambda _: 100,
             running_by_tenant={}, utilization=0.0, free_slots=5)}  # fmt: skip
    assert paces["early"].start == paces["early"].required + 5
    assert paces["late"].start == paces["late"].required


def test_the_tenant_cap_counts_lines_already_running_in_all_its_jobs():
    paces = plan([_job("a", pending=50), _job("b", pending=50)], NOW, tenant_cap=lambda _: 4,
                 running_by_tenant={"t": 3}, utilization=0.0, free_slots=100)  # fmt: skip
    assert sum(p.start for p in paces) == 1


def test_quiet_slots_keep_the_modelled_ttft_within_the_tolerance():
    from orchestrator import replica_model
    from orchestrator.batch.pacing import quiet_slots

    perf = replica_model.ReplicaPerformance(
        single_stream_tokens_per_s=100, output_tokens_per_s=2000, prefill_tokens_per_s=5000,
        max_concurrency=64, ttft_ms_base=20,
    )  # fmt: skip
    n = quiet_slots(perf, tolerance=0.1)
    idle = replica_model.ttft_ms(perf, 512, 1)
    assert 1 < n < 64
    assert (
        replica_model.ttft_ms(perf, 512, n) <= 1.1 * idle < replica_model.ttft_ms(perf, 512, n + 1)
    )
    assert quiet_slots(perf, tolerance=0.0) == 1
    assert quiet_slots(perf, tolerance=10.0) == 64


# --- yielding to interactive traffic on one-request (CPU) replicas ---------------------------


def _yield_plan(job, *, idle_s, yield_s=10.0, lanes=2, free_slots=2, cap=8, running=0):
    (pace,) = plan([job], NOW, tenant_cap=lambda _: cap, running_by_tenant={"t": running},
                   utilization=0.0, free_slots=free_slots, exclusive=Yield(idle_s, lanes),
                   tenant_yield_s=lambda _: yield_s)  # fmt: skip
    return pace


def test_a_yielding_job_starts_nothing_beside_recent_interactive_traffic_while_it_has_time():
    job = _job(pending=20, window=3600.0, age=1800.0, line_s=10.0)
    assert due_now(job, NOW, 10.0) > 0  # the even pace would start lines now
    assert _yield_plan(job, idle_s=0.0).start == 0  # an interactive request is in flight
    assert _yield_plan(job, idle_s=9.9).start == 0  # one left 9.9 s ago


def test_after_the_quiet_time_a_yielding_job_fills_the_free_slots_only():
    job = _job(pending=20, window=3600.0, line_s=10.0)
    assert _yield_plan(job, idle_s=10.0, free_slots=2).start == 2
    assert _yield_plan(job, idle_s=60.0, free_slots=0).start == 0  # its own lines fill them


def test_without_yield_or_one_request_replicas_the_even_pace_holds():
    job = _job(pending=20, window=3600.0, age=1800.0, line_s=10.0)
    even = due_now(job, NOW, 10.0)
    assert _yield_plan(job, idle_s=0.0, yield_s=0.0, free_slots=0, cap=50).start == even
    (shared,) = plan([job], NOW, tenant_cap=lambda _: 50, running_by_tenant={}, utilization=0.9,
                     free_slots=0, exclusive=None, tenant_yield_s=lambda _: 10.0)  # fmt: skip
    assert shared.start == even


def test_the_deadline_floor_counts_what_the_lanes_can_still_start():
    job = _job(pending=20, window=3600.0, line_s=10.0)
    horizon = job.deadline - margin_s(job) - 10.0
    assert deadline_floor(job, horizon - 100.0, 10.0, lanes=2) == 0  # 2 x 10 slots left
    assert deadline_floor(job, horizon - 50.0, 10.0, lanes=2) == 10  # 2 x 5 slots left
    assert deadline_floor(job, horizon - 50.0, 10.0, lanes=4) == 0
    assert deadline_floor(job, horizon, 10.0, lanes=2) == 20


def test_a_job_yielding_to_endless_interactive_traffic_still_starts_every_line_in_time():
    # every tick sees an interactive request; lines take line_s; the floor alone runs the job
    line_s, lanes, created = 7.0, 2, NOW
    deadline = created + 600.0
    pending, running_until, starts, now = 37, [], [], created
    while pending and now < deadline:
        running_until = [u for u in running_until if u > now]
        job = ActiveJob("b", "t", "", created, deadline, pending, len(running_until),
                        37 - pending, line_s, 37)  # fmt: skip
        (pace,) = plan([job], now, tenant_cap=lambda _: lanes,
                       running_by_tenant={"t": len(running_until)}, utilization=0.5,
                       free_slots=0, exclusive=Yield(0.0, lanes),
                       tenant_yield_s=lambda _: 10.0)  # fmt: skip
        starts += [now] * pace.start
        running_until += [now + line_s] * pace.start
        pending -= pace.start
        now += 1.0
    assert pending == 0
    assert starts[0] > created + 300.0  # it waited, not ran at an even pace from the start
    assert max(starts) + line_s <= deadline - margin_s(job)
