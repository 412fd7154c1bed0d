"""Batch pacing: earliest deadline first, just fast enough, troughs filled, caps kept."""

from __future__ import annotations

from orchestrator.batch.pacing import due_now, margin_s, plan
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
