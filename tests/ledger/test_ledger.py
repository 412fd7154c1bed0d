"""Usage ledger: atomic, idempotent appends; spend windows; summaries; restarts and crashes."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from orchestrator.ledger import UsageLedger, UsageRecord, window_bounds
from orchestrator.ledger.store import LedgerError
from orchestrator.paths import PROJECT_ROOT

T0 = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)


def rec(i: int, tenant: str = "acme", profile: str | None = "p1", cost: float = 0.01, at=T0, **kw):
    return UsageRecord(
        request_id=f"req-{i}",
        tenant=tenant,
        profile=profile,
        prompt_tokens=kw.pop("prompt_tokens", 100),
        cached_tokens=kw.pop("cached_tokens", 20),
        output_tokens=kw.pop("output_tokens", 50),
        reasoning_tokens=kw.pop("reasoning_tokens", 10),
        predicted_p50=40,
        predicted_p90=90,
        estimated_cost_usd=cost * 0.9,
        cost_usd=cost,
        latency_ms=kw.pop("latency_ms", 1000.0),
        ttft_ms=50.0,
        started_at=at - timedelta(seconds=1),
        finished_at=at,
        **kw,
    )


@pytest.fixture
def ledger(db_target):
    """A fresh ledger on each backend (SQLite file, PostgreSQL schema)."""
    with UsageLedger(db_target, synchronous="NORMAL") as led:
        yield led


def test_append_then_read_back_exactly(ledger):
    r = rec(1)
    assert ledger.settle(r) is True
    assert ledger.get("req-1") == r
    assert ledger.get("nope") is None
    assert ledger.count() == 1


def test_append_is_idempotent_first_write_wins(ledger):
    assert ledger.settle(rec(1, cost=0.01))
    assert ledger.settle(rec(1, cost=99.0)) is False
    assert ledger.count() == 1
    assert ledger.get("req-1").cost_usd == 0.01


def test_survives_reopen(tmp_path):
    path = tmp_path / "l.sqlite3"
    with UsageLedger(path) as led:
        for i in range(5):
            led.settle(rec(i))
    with UsageLedger(path) as led:
        assert led.count() == 5
        assert led.settle(rec(3)) is False
        assert [r.request_id for r in led.records()] == [f"req-{i}" for i in range(5)]


def test_wal_mode_is_on(tmp_path):
    path = tmp_path / "l.sqlite3"
    UsageLedger(path).close()
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_is_refused(db_target):
    with UsageLedger(db_target) as led, led.db.transaction() as tx:
        tx.execute("UPDATE schema_version SET version = 99 WHERE component = 'ledger'")
    with pytest.raises(LedgerError, match="newer"):
        UsageLedger(db_target)


def test_a_sqlite_only_ledger_file_is_adopted(tmp_path):
    """A file written before the storage layer (usage table, PRAGMA user_version 1, no
    schema_version table) keeps its rows and gains the new tables."""
    path = tmp_path / "old.sqlite3"
    with UsageLedger(path) as led:
        led.settle(rec(1))
    with sqlite3.connect(path) as c:
        c.execute("DROP TABLE schema_version")
        c.execute("DROP TABLE reservations")
        c.execute("DROP TABLE spend")
        c.execute("PRAGMA user_version = 1")
    with UsageLedger(path) as led:
        assert led.get("req-1") == rec(1)
        assert led.reserved_usd("acme") == 0.0
        assert led.spend_windows("acme", ["day"], now=T0)["day"].cost_usd == rec(1).cost_usd


def test_spend_totals_are_backfilled_from_existing_rows(db_target):
    """Migration 3 builds the per-window totals from the rows a v2 ledger already holds."""
    with UsageLedger(db_target) as led:
        for i in range(5):
            led.settle(rec(i, cost=0.25, at=T0 - timedelta(hours=i)))
        with led.db.transaction() as tx:
            tx.execute("DROP TABLE spend")
            tx.execute("UPDATE schema_version SET version = 2 WHERE component = 'ledger'")
    with UsageLedger(db_target) as led:
        got = led.spend_windows("acme", ["hour", "day", "month"], now=T0)
        assert {w: (s.cost_usd, s.requests) for w, s in got.items()} == {
            "hour": (0.25, 1),
            "day": (1.25, 5),
            "month": (1.25, 5),
        }


def test_spend_windows_and_retry_after(ledger):
    # T0 is 2026-03-31 23:30 UTC: the hour, day and month all end at 2026-04-01 00:00
    ledger.settle(rec(1, cost=1.0, at=T0))
    ledger.settle(rec(2, cost=2.0, at=T0 - timedelta(minutes=45)))  # previous hour, same day
    ledger.settle(rec(3, cost=4.0, at=T0 - timedelta(days=2)))  # same month
    ledger.settle(rec(4, cost=8.0, at=T0 - timedelta(days=40)))  # previous month
    ledger.settle(rec(5, tenant="other", cost=16.0, at=T0))
    now = T0 + timedelta(minutes=10)
    hour = ledger.spend("acme", "hour", now=now)
    assert (hour.cost_usd, hour.requests) == (1.0, 1)
    assert ledger.spend("acme", "day", now=now).cost_usd == 3.0
    month = ledger.spend("acme", "month", now=now)
    assert month.cost_usd == 7.0
    assert month.end == datetime(2026, 4, 1, tzinfo=UTC)
    assert month.retry_after_s(now) == 20 * 60
    assert ledger.spend("nobody", "day", now=now).cost_usd == 0.0


def _generated_rows(rng: random.Random, nows: list[datetime]) -> list[UsageRecord]:
    """Rows spread over ~3 months around T0, plus rows exactly on every window edge of `nows`
    (a window's start is inside it, its end is not) and 1 microsecond either side."""
    stamps = [T0 + timedelta(seconds=rng.uniform(-75 * 86400, 2 * 86400)) for _ in range(600)]
    for now in nows:
        for window in ("hour", "day", "month"):
            for edge in window_bounds(window, now):
                stamps += [edge, edge - timedelta(microseconds=1), edge + timedelta(microseconds=1)]
    return [
        UsageRecord(
            request_id=f"gen-{i}",
            tenant=rng.choice(["acme", "beta", "gamma"]),
            profile="p1",
            cost_usd=rng.choice([0.0, 1e-9, rng.uniform(0, 0.5), rng.uniform(0, 1e-5)]),
            started_at=at - timedelta(seconds=1),
            finished_at=at,
        )
        for i, at in enumerate(stamps)
    ]


def test_spend_windows_matches_the_per_window_queries(ledger):
    rng = random.Random(20261123)
    nows = [
        T0,  # 2026-03-31 23:30: hour, day and month all end at the same instant
        datetime(2026, 4, 1, tzinfo=UTC),  # exactly on a month (and day, hour) start
        datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC),  # last microsecond of a month
        datetime(2026, 3, 15, 12, 0, tzinfo=UTC),
        *(T0 - timedelta(seconds=rng.uniform(0, 60 * 86400)) for _ in range(12)),
    ]
    for row in _generated_rows(rng, nows):
        ledger.settle(row)
    for now in nows:
        for tenant in ("acme", "beta", "gamma", "nobody"):
            together = ledger.spend_windows(tenant, ("hour", "day", "month"), now=now)
            assert list(together) == ["hour", "day", "month"]
            for window, got in together.items():
                old = ledger.spend(tenant, window, now=now)
                assert (got.start, got.end, got.requests) == (old.start, old.end, old.requests)
                assert got.cost_usd == pytest.approx(old.cost_usd, rel=1e-12, abs=1e-15)
                assert got.retry_after_s(now) == old.retry_after_s(now)
    # the edges really were exercised: some windows hold rows, and not all the same ones
    counts = {
        w: s.requests
        for w, s in ledger.spend_windows("acme", ("hour", "day", "month"), now=T0).items()
    }
    assert 0 < counts["hour"] < counts["day"] < counts["month"]


def test_spend_windows_is_one_statement_for_any_set_of_windows(ledger, monkeypatch):
    ledger.settle(rec(1, cost=1.0, at=T0))
    statements: list[str] = []
    run = ledger.db.query

    def spy(sql, params=()):
        statements.append(sql)
        return run(sql, params)

    monkeypatch.setattr(ledger.db, "query", spy)
    if True:
        spends = ledger.spend_windows("acme", ["month", "day", "hour", "day"], now=T0)
        assert [s for s in statements if s.lstrip().upper().startswith("SELECT")] == statements
        assert len(statements) == 1
        assert list(spends) == ["month", "day", "hour"]  # caller's order, repeats dropped
        assert {w: s.cost_usd for w, s in spends.items()} == {"month": 1.0, "day": 1.0, "hour": 1.0}
        statements.clear()
        assert ledger.spend_windows("acme", ["day"], now=T0)["day"].requests == 1
        assert ledger.spend_windows("acme", [], now=T0) == {}
        assert len(statements) == 1  # no windows: no query at all


def test_window_bounds_calendar():
    now = datetime(2026, 12, 31, 13, 5, 7, tzinfo=UTC)
    assert window_bounds("hour", now) == (
        now.replace(minute=0, second=0),
        now.replace(hour=14, minute=0, second=0),
    )
    start, end = window_bounds("month", now)
    assert start == datetime(2026, 12, 1, tzinfo=UTC) and end == datetime(2027, 1, 1, tzinfo=UTC)
    start, end = window_bounds("day", datetime(2026, 2, 28, 23, 59))  # naive = UTC
    assert end == datetime(2026, 3, 1, tzinfo=UTC)


def test_summary_per_tenant_and_profile(ledger):
    ledger.settle(rec(1, profile="p1", cost=1.0, latency_ms=100.0))
    ledger.settle(rec(2, profile="p1", cost=2.0, latency_ms=300.0))
    ledger.settle(rec(3, profile="p2", cost=4.0, status="error"))
    ledger.settle(
        rec(4, profile=None, cost=0.0, status="rejected", output_tokens=0, reasoning_tokens=0)
    )
    ledger.settle(rec(5, tenant="beta", cost=8.0))
    rows = ledger.summary()
    keys = [(r.tenant, r.profile) for r in rows]
    assert keys == [("acme", None), ("acme", "p1"), ("acme", "p2"), ("beta", "p1")]
    p1 = rows[1]
    assert (p1.requests, p1.failed, p1.cost_usd, p1.mean_latency_ms) == (2, 0, 3.0, 200.0)
    assert (p1.prompt_tokens, p1.cached_tokens, p1.output_tokens, p1.reasoning_tokens) == (
        200,
        40,
        100,
        20,
    )
    assert rows[2].failed == 1 and rows[0].failed == 1
    assert [r.tenant for r in ledger.summary(tenant="beta")] == ["beta"]
    assert ledger.summary(since=T0 + timedelta(seconds=1)) == []


def test_invalid_records_are_refused():
    with pytest.raises(ValidationError):
        rec(1, cached_tokens=500)
    with pytest.raises(ValidationError):
        UsageRecord(
            request_id="x", tenant="t", started_at=T0, finished_at=T0 - timedelta(seconds=1)
        )
    with pytest.raises(ValidationError):
        UsageRecord(request_id="x", tenant="t", started_at=T0, finished_at=T0, surprise=1)


def test_naive_timestamps_are_utc(ledger):
    naive = T0.replace(tzinfo=None)
    ledger.settle(rec(1, at=naive))
    assert ledger.get("req-1").finished_at == T0


def test_concurrent_appends_from_threads(ledger):
    def work(base: int) -> None:
        for i in range(50):
            ledger.settle(rec(base + i % 25))  # each id written twice per thread

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.count() == 4 * 25


def test_two_connections_share_the_file(tmp_path):
    path = tmp_path / "l.sqlite3"
    with UsageLedger(path) as a, UsageLedger(path) as b:
        a.settle(rec(1))
        b.settle(rec(2))
        assert b.settle(rec(1)) is False
        assert a.count() == b.count() == 2


def test_failed_transaction_leaves_nothing(ledger):
    ledger.settle(rec(1))
    with pytest.raises(RuntimeError), ledger.db.transaction() as c:
        c.execute(
            "INSERT INTO usage SELECT 'half', tenant, profile, prompt_tokens, cached_tokens, "
            "output_tokens, reasoning_tokens, predicted_p50, predicted_p90, estimated_cost_usd, "
            "cost_usd, latency_ms, ttft_ms, status, started_at, finished_at FROM usage"
        )
        raise RuntimeError("crash between statements")
    assert ledger.count() == 1 and ledger.get("half") is None
    assert ledger.settle(rec(2))  # the connection is usable afterwards


_CRASHER = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    sys.path.insert(0, {root!r})
    from orchestrator.ledger import UsageLedger, UsageRecord
    led = UsageLedger({path!r})
    now = datetime.now(UTC)
    def rec(i):
        return UsageRecord(request_id=f"r{{i}}", tenant="t", profile="p", prompt_tokens=10,
                           output_tokens=5, cost_usd=0.5, started_at=now, finished_at=now)
    led.settle(rec(0))
    if {mode!r} == "uncommitted":
        open_tx = led.db.transaction()  # kept referenced: collected, it would roll back
        tx = open_tx.__enter__()
        tx.execute("INSERT INTO usage (request_id, tenant, prompt_tokens, cached_tokens, "
                  "output_tokens, reasoning_tokens, cost_usd, status, started_at, finished_at) "
                  "VALUES ('half', 't', 1, 0, 1, 0, 1.0, 'ok', 0, 0)")
        os._exit(3)  # dies inside the transaction, no COMMIT, no cleanup
    print("ready", flush=True)
    i = 1
    while True:
        led.settle(rec(i))
        i += 1
    """
)


def _crasher(tmp_path, mode: str) -> subprocess.Popen:
    path = tmp_path / "l.sqlite3"
    script = _CRASHER.format(root=str(PROJECT_ROOT), path=str(path), mode=mode)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def test_process_death_mid_transaction_leaves_no_half_row(tmp_path):
    proc = _crasher(tmp_path, "uncommitted")
    assert proc.wait(timeout=60) == 3
    with UsageLedger(tmp_path / "l.sqlite3") as led:
        assert led.get("half") is None
        assert led.count() == 1
        assert led.integrity_ok()


def test_sigkill_during_appends_keeps_every_row_whole(tmp_path):
    proc = _crasher(tmp_path, "loop")
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with UsageLedger(tmp_path / "l.sqlite3") as led:
        assert led.integrity_ok()
        rows = led.records()  # every stored row parses as a full, valid record
        assert len(rows) == led.count() >= 1
        assert all(r.cost_usd == 0.5 and r.output_tokens == 5 for r in rows)
        ids = sorted(int(r.request_id[1:]) for r in rows)
        assert ids == list(range(len(ids)))  # committed in order, no gaps


def test_readonly_open_does_not_write(tmp_path):
    path = tmp_path / "l.sqlite3"
    with UsageLedger(path) as led:
        led.settle(rec(1))
    with UsageLedger(path, readonly=True) as ro:
        assert ro.count() == 1
        with pytest.raises(sqlite3.OperationalError):
            ro.settle(rec(2))
