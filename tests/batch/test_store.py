"""The batch store on both backends: claims, leases, resumption, finalization, tenancy."""

from __future__ import annotations

import json

import pytest

from orchestrator.batch.lines import parse_input
from orchestrator.batch.protocol import CreateBatch
from orchestrator.batch.store import DONE, FAILED, BatchStore, NotFound
from orchestrator.storage import open_database

CHAT = "/v1/chat/completions"
T0 = 1_700_000_000.0


@pytest.fixture
def store(db_target):
    with open_database(db_target) as db:
        yield BatchStore(db)


def _content(n: int, bad_at: int | None = None) -> bytes:
    out = []
    for i in range(n):
        if i == bad_at:
            out.append("{broken")
            continue
        out.append(json.dumps({"custom_id": f"c{i}", "method": "POST", "url": CHAT,
                               "body": {"model": "m", "messages": []}}))  # fmt: skip
    return ("\n".join(out) + "\n").encode()


def _job(store: BatchStore, n: int = 3, bad_at: int | None = None, window: str = "1h"):
    content = _content(n, bad_at)
    f = store.put_file("acme", "batch", "in.jsonl", content, T0)
    req = CreateBatch(input_file_id=f.id, endpoint=CHAT, completion_window=window)
    return store.create_job("acme", req, parse_input(content, CHAT), T0)


def test_files_are_kept_whole_and_only_for_their_tenant(store):
    f = store.put_file("acme", "batch", "in.jsonl", b"abc\n", T0)
    assert store.file_content(f.id, "acme") == b"abc\n"
    assert store.file(f.id, "acme").bytes == 4
    with pytest.raises(NotFound):
        store.file_content(f.id, "other")


def test_a_job_runs_each_line_once_and_writes_output_and_error_files(store):
    job = _job(store, n=4, bad_at=2)
    assert job.status == "in_progress" and job.request_counts.total == 4
    assert job.request_counts.failed == 1  # the malformed line, at once
    first = store.claim(job.id, "r1", 10, T0, lease_s=60)
    assert [ln.line_no for ln in first] == [1, 2, 4]
    assert store.claim(job.id, "r2", 10, T0, lease_s=60) == []  # nothing left for another
    for ln in first:
        assert store.finish_line(ln, "r1", DONE, 200, {"n": ln.line_no}, 0.01, T0 + 1)
        assert not store.finish_line(ln, "r1", DONE, 200, {}, 0.01, T0 + 2)  # not twice
    assert store.finalize_ready(T0 + 3) == [job.id]
    assert store.finalize_ready(T0 + 4) == []  # once
    done = store.job(job.id, "acme")
    assert done.status == "completed" and done.request_counts.completed == 3
    out = [json.loads(x) for x in store.file_content(done.output_file_id, "acme").splitlines()]
    assert [o["custom_id"] for o in out] == ["c0", "c1", "c3"]
    assert out[0]["response"]["request_id"] == f"{job.id}-L1"
    (err,) = [json.loads(x) for x in store.file_content(done.error_file_id, "acme").splitlines()]
    assert err["line"] == 3 and "line 3" in err["error"]["message"]
    assert store.cost_usd(job.id) == pytest.approx(0.03)


def test_a_lapsed_lease_is_resumed_by_another_replica_and_the_dead_owner_cannot_finish(store):
    job = _job(store, n=2)
    lost = store.claim(job.id, "dead", 2, T0, lease_s=30)
    assert store.reclaim_lapsed(T0 + 10) == 0  # still leased
    assert store.reclaim_lapsed(T0 + 31) == 2
    again = store.claim(job.id, "alive", 2, T0 + 31, lease_s=30)
    assert [ln.attempts for ln in again] == [2, 2]
    assert not store.finish_line(lost[0], "dead", DONE, 200, {}, 0.0, T0 + 32)
    assert store.finish_line(again[0], "alive", DONE, 200, {}, 0.0, T0 + 32)


def test_renewed_leases_do_not_lapse(store):
    job = _job(store, n=1)
    lines = store.claim(job.id, "r", 1, T0, lease_s=30)
    store.renew(lines, "r", T0 + 100)
    assert store.reclaim_lapsed(T0 + 50) == 0


def test_cancel_stops_pending_lines_and_ends_cancelled_after_running_ones(store):
    job = _job(store, n=3)
    (running,) = store.claim(job.id, "r", 1, T0, lease_s=60)
    assert store.cancel(job.id, "acme", T0 + 1).status == "cancelling"
    assert store.claim(job.id, "r", 5, T0 + 1, lease_s=60) == []
    assert store.finalize_ready(T0 + 1) == []  # one line still runs
    store.finish_line(running, "r", DONE, 200, {}, 0.0, T0 + 2)
    store.finalize_ready(T0 + 3)
    ended = store.job(job.id, "acme")
    assert ended.status == "cancelled" and ended.request_counts.completed == 1


def test_a_budget_stop_fails_the_pending_lines_with_the_reason(store):
    job = _job(store, n=3)
    (first,) = store.claim(job.id, "r", 1, T0, lease_s=60)
    store.finish_line(first, "r", FAILED, 402, {"error": {"code": "budget_exhausted"}}, 0.0, T0)
    store.stop(job.id, "budget_exhausted", "no budget left", T0)
    store.finalize_ready(T0 + 1)
    ended = store.job(job.id, "acme")
    assert ended.status == "failed" and ended.errors.data[0].code == "budget_exhausted"
    errors = store.file_content(ended.error_file_id, "acme").decode()
    assert errors.count("budget_exhausted") == 3


def test_an_overdue_job_expires_with_what_it_finished(store):
    job = _job(store, n=2, window="1m")
    (first,) = store.claim(job.id, "r", 1, T0, lease_s=60)
    store.finish_line(first, "r", DONE, 200, {}, 0.0, T0 + 5)
    assert store.expire_overdue(T0 + 61) == [job.id]
    store.finalize_ready(T0 + 61)
    ended = store.job(job.id, "acme")
    assert ended.status == "expired" and ended.request_counts.completed == 1


def test_jobs_list_newest_first_with_paging(store):
    ids = [_job(store, n=1).id for _ in range(3)]
    listed = [j.id for j in store.jobs("acme", limit=10)]
    assert sorted(listed) == sorted(ids) and len(listed) == 3
    page = store.jobs("acme", after=listed[0], limit=10)
    assert [j.id for j in page] == listed[1:]
    assert store.jobs("other") == []
