"""Budget reservations in the database, on both backends: grant/refuse, settle once, expiry,
and concurrent replicas never overspending by more than one request's cost."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.ledger import UsageLedger, UsageRecord
from orchestrator.ledger.reservations import BUSY_RETRY_S
from orchestrator.paths import PROJECT_ROOT
from tests.threads import errors_when_run_at_once
from tests.usage_rows import usage_row

T0 = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)  # 30 min before the hour, day and month end
LIMITS = {"hour": 1.0, "day": 5.0}


def row(request_id: str, cost: float, tenant: str = "acme", at: datetime = T0) -> UsageRecord:
    return usage_row(request_id, cost, tenant=tenant, at=at)


@pytest.fixture
def ledger(db_target):
    with UsageLedger(db_target, synchronous="NORMAL") as led:
        yield led


def test_grants_while_budget_is_left_then_refuses(ledger):
    first = ledger.reserve("acme", "r1", 0.6, LIMITS, now=T0)
    assert first.granted and first.window == "hour"
    assert first.remaining_usd == pytest.approx(0.4)
    assert first.expires_at is not None and first.expires_at > T0
    # 0.6 held < 1.0: granted, and may pass the limit by at most its own amount
    second = ledger.reserve("acme", "r2", 0.6, LIMITS, now=T0)
    assert second.granted and second.remaining_usd == pytest.approx(-0.2)
    third = ledger.reserve("acme", "r3", 0.01, LIMITS, now=T0)
    assert not third.granted
    assert third.window == "hour" and third.retry_after_s == BUSY_RETRY_S  # held, not spent
    assert ledger.reserved_usd("acme", now=T0) == pytest.approx(1.2)
    assert ledger.reservation("r3") is None  # a refusal holds nothing
    # another tenant's budget is its own
    assert ledger.reserve("other", "o1", 0.9, LIMITS, now=T0).granted


def test_refusal_after_settled_spend_waits_for_the_window_end(ledger):
    ledger.settle(row("old", 1.0))
    refused = ledger.reserve("acme", "r1", 0.1, LIMITS, now=T0)
    assert not refused.granted
    assert refused.window == "hour" and refused.retry_after_s == 30 * 60
    assert refused.remaining_usd == pytest.approx(0.0)
    # the next hour has budget again (the day still has 4.0)
    later = ledger.reserve("acme", "r1", 0.1, LIMITS, now=T0 + timedelta(hours=1))
    assert later.granted


def test_settle_writes_one_row_and_releases_the_reservation(ledger):
    assert ledger.reserve("acme", "r1", 0.5, LIMITS, now=T0).granted
    assert ledger.settle(row("r1", 0.2)) is True
    assert ledger.settle(row("r1", 0.3)) is False  # a retried settle: still one row
    assert ledger.count() == 1 and ledger.get("r1").cost_usd == 0.2
    assert ledger.reservation("r1") is None
    assert ledger.reserved_usd("acme", now=T0) == 0.0
    assert ledger.spend("acme", "hour", now=T0).cost_usd == pytest.approx(0.2)


def test_reserving_again_replaces_the_amount(ledger):
    ledger.reserve("acme", "r1", 0.9, LIMITS, now=T0)
    again = ledger.reserve("acme", "r1", 0.3, LIMITS, now=T0)  # re-decided on a cheaper profile
    assert again.granted and again.remaining_usd == pytest.approx(0.7)
    assert ledger.reserved_usd("acme", now=T0) == pytest.approx(0.3)


def test_release_drops_a_reservation_without_a_row(ledger):
    ledger.reserve("acme", "r1", 0.9, LIMITS, now=T0)
    assert ledger.release("r1") is True and ledger.release("r1") is False
    assert ledger.count() == 0 and ledger.reserved_usd("acme", now=T0) == 0.0


def test_expired_reservations_are_released_and_late_settles_still_count_once(ledger):
    ledger.reserve("acme", "dead-1", 1.0, LIMITS, now=T0, ttl_s=10)  # its replica dies
    ledger.reserve("beta", "dead-2", 0.5, {"day": 5.0}, now=T0, ttl_s=10)
    assert not ledger.reserve("acme", "r1", 0.1, LIMITS, now=T0 + timedelta(seconds=5)).granted
    after = T0 + timedelta(seconds=11)
    assert ledger.reserved_usd("acme", now=after) == 0.0  # expired ones count for nothing
    assert ledger.reserve("acme", "r1", 0.1, LIMITS, now=after).granted  # and are dropped
    assert ledger.reservation("dead-1") is None
    assert ledger.expire(after) == 1  # beta's dead-2 is swept by any replica
    assert ledger.reservation("dead-2") is None and ledger.expire(after) == 0
    assert ledger.settle(row("dead-1", 0.4)) and not ledger.settle(row("dead-1", 0.4))
    assert ledger.count() == 1


def test_renewing_keeps_a_running_requests_hold_and_a_lapsed_one_stays_lapsed(ledger):
    ledger.reserve("acme", "long", 0.6, LIMITS, now=T0, ttl_s=10)  # a stream still running
    ledger.reserve("acme", "dead", 0.3, LIMITS, now=T0, ttl_s=10)  # its replica died
    others = [f"other-{i}" for i in range(1200)]  # more ids than one UPDATE takes
    assert ledger.renew(["long", *others], now=T0 + timedelta(seconds=8), ttl_s=10) == 1
    later = T0 + timedelta(seconds=15)  # past the first expiry, within the renewed one
    assert ledger.reserved_usd("acme", now=later) == pytest.approx(0.6)
    assert ledger.expire(later) == 1 and ledger.reservation("dead") is None
    assert ledger.reservation("long")[2] == T0 + timedelta(seconds=18)
    # lapsed at 18 s: renewing it now would hold budget no reserve granted
    assert ledger.renew(["long"], now=T0 + timedelta(seconds=30), ttl_s=10) == 0
    assert ledger.reserved_usd("acme", now=T0 + timedelta(seconds=30)) == 0.0
    assert ledger.renew([], now=later) == 0


def test_no_limits_means_nothing_is_held(ledger):
    granted = ledger.reserve("acme", "r1", 123.0, {}, now=T0)
    assert granted.granted and granted.remaining_usd is None
    assert ledger.reservation("r1") is None


def test_concurrent_replicas_never_overspend_by_more_than_one_request(db_target):
    """8 'replicas' (own connections) race 12 requests each against one hour budget."""
    limit, cost, replicas, per_replica = 1.0, 0.07, 8, 12
    UsageLedger(db_target).close()  # schema first (concurrent starts are tested below)
    granted: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(replicas)

    def replica(k: int) -> None:
        with UsageLedger(db_target, timeout_s=30) as led:
            barrier.wait()
            for i in range(per_replica):
                rid = f"r{k}-{i}"
                if led.reserve("acme", rid, cost, {"hour": limit}, now=T0).granted:
                    with lock:
                        granted.append(rid)
                    led.settle(row(rid, cost))  # the request ran and cost what it held

    threads = [threading.Thread(target=replica, args=(k,)) for k in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with UsageLedger(db_target) as led:
        spent = led.spend("acme", "hour", now=T0).cost_usd
        assert led.count() == len(granted) == len(set(granted))
        assert led.reserved_usd("acme", now=T0) == 0.0
    assert limit <= spent + 1e-9  # demand was 6.7x the budget: it got used up
    assert spent <= limit + cost + 1e-9  # and overspent by at most one request


def test_concurrent_starts_migrate_once(db_target):
    errors = errors_when_run_at_once(lambda: UsageLedger(db_target, timeout_s=30).close(), 6)
    assert errors == []
    with UsageLedger(db_target) as led:
        rows = led.db.query("SELECT component, version FROM schema_version")
        assert rows == [("ledger", 3)]


_RACER = """
import sys, time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from orchestrator.ledger import UsageLedger, UsageRecord
target, me, go, n, cost, limit = sys.argv[1:7]
t0 = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
led = UsageLedger(target, timeout_s=30)
while not Path(go).exists():
    time.sleep(0.005)
granted = 0
for i in range(int(n)):
    rid = f"{me}-{i}"
    if led.reserve("acme", rid, float(cost), {"hour": float(limit)}, now=t0).granted:
        granted += 1
        led.settle(UsageRecord(request_id=rid, tenant="acme", cost_usd=float(cost),
                               started_at=t0 - timedelta(seconds=1), finished_at=t0))
print(granted)
"""


def test_concurrent_processes_never_overspend_by_more_than_one_request(tmp_path):
    """3 processes (separate interpreters) share one SQLite budget: the file's write lock, not
    a lock in one process, keeps them apart. (PostgreSQL sees separate sessions either way:
    the threads test above, each with its own pool, covers it at a fraction of the time.)"""
    limit, cost, n = 0.5, 0.03, 15
    db_target = str(tmp_path / "shared.sqlite3")
    UsageLedger(db_target).close()
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _RACER,
                db_target,
                f"p{k}",
                str(go),
                str(n),
                str(cost),
                str(limit),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        )
        for k in range(3)
    ]
    go.touch()
    granted = [int(p.communicate(timeout=120)[0].strip()) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    with UsageLedger(db_target) as led:
        spent = led.spend("acme", "hour", now=T0).cost_usd
        assert led.count() == sum(granted)
    assert limit <= spent + 1e-9 and spent <= limit + cost + 1e-9
