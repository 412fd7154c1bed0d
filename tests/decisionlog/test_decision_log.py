"""Decision log on both backends: put/get by request id, replace, replay order, retention."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from orchestrator.catalog import load_catalog
from orchestrator.decisionlog import (
    DecisionInputs,
    DecisionLog,
    DecisionPut,
    ProfileSeen,
    Retention,
)
from orchestrator.paths import PROJECT_ROOT
from orchestrator.replica_model import LiveState
from orchestrator.routing import RouteRequest, TenantRules, catalog_views, decide
from orchestrator.routing.types import Decision, Rejection
from tests.predictions import prediction
from tests.routing.routing_helpers import EASY

T0 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
LOCAL = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")


# What the router decides for an easy request on the local catalog: every field of a real
# routed decision, its estimate included, goes through the log.
ROUTED = decide(
    RouteRequest(prompt_tokens=120),
    EASY,
    TenantRules(),
    catalog_views(LOCAL, {p.name: LiveState(replicas_running=1) for p in LOCAL.profiles}),
)


def decision(profile: str | None = "small-a") -> Decision:
    """The routed decision, sent to `profile`; None: a budget refusal."""
    if profile is None:
        return Decision(
            action="reject",
            profile=None,
            reason="budget",
            query_class="standard",
            predicted_tokens=(40, 90),
            rejection=Rejection(
                status=429, code="budget_exhausted", message="spent", retry_after_s=60
            ),
        )
    return ROUTED.model_copy(update={"profile": profile})


def inputs() -> DecisionInputs:
    return DecisionInputs(
        prediction=prediction(prompt_tokens=120, p50_tokens=40, p90_tokens=90),
        profiles={
            "small-a": ProfileSeen(
                live=LiveState(replicas_running=2, requests_in_flight=5, requests_queued=1),
                input_usd_per_token=1e-7,
                cached_input_usd_per_token=5e-8,
                output_usd_per_token=4e-7,
            )
        },
        budget_remaining_usd=12.5,
        endpoint="chat",
        model="auto",
        stream=True,
        max_tokens=512,
    )


@pytest.fixture
def log(db_target):
    with DecisionLog(db_target, retention=Retention(prune_interval_s=3600)) as store:
        yield store


def test_put_then_get_round_trips_decision_and_inputs(log):
    log.put("r1", "acme", decision(), policy_version="v7", inputs=inputs(), decided_at=T0)
    assert log.get("r1") == ("acme", decision())
    entry = log.entry("r1")
    assert entry.policy_version == "v7" and entry.decided_at == T0
    assert entry.inputs == inputs()
    assert log.get("missing") is None


def test_a_later_put_replaces_the_decision(log):
    log.put("r1", "acme", decision("small-a"), decided_at=T0)
    log.put("r1", "acme", decision("small-b"), decided_at=T0 + timedelta(seconds=1))
    assert log.get("r1")[1].profile == "small-b" and log.count() == 1


def test_a_switched_plan_keeps_the_inputs_it_was_decided_from(log):
    """A re-planned request's decision replaces the first, without losing its inputs."""
    log.put("r1", "acme", decision("small-a"), policy_version="v7", inputs=inputs())
    log.put("r1", "acme", decision("small-b"))
    entry = log.entry("r1")
    assert entry.decision.profile == "small-b"
    assert entry.inputs == inputs() and entry.policy_version == "v7"


def test_put_many_writes_in_order_in_one_call(log):
    log.put_many([
        DecisionPut("r1", "acme", decision("small-a"), "v1", inputs(), T0),
        DecisionPut("r2", "beta", decision(None), decided_at=T0),
        DecisionPut("r1", "acme", decision("small-b"), "v2", decided_at=T0),  # replaces r1
    ])  # fmt: skip
    assert log.get("r1") == ("acme", decision("small-b"))
    assert log.entry("r1").policy_version == "v2"
    assert log.get("r2")[1].rejection.code == "budget_exhausted" and log.count() == 2
    log.put_many([])
    assert log.count() == 2


def test_rejections_are_logged_too(log):
    log.put("r1", "acme", decision(None), decided_at=T0)
    assert log.get("r1")[1].rejection.code == "budget_exhausted"


def test_entries_are_in_decision_order_and_filter(log):
    for i in (3, 1, 2):
        log.put(
            f"r{i}", "acme" if i != 2 else "beta", decision(), decided_at=T0 + timedelta(seconds=i)
        )
    assert [e.request_id for e in log.entries()] == ["r1", "r2", "r3"]
    assert [e.request_id for e in log.entries(tenant="acme")] == ["r1", "r3"]
    since = T0 + timedelta(seconds=2)
    assert [e.request_id for e in log.entries(since=since, limit=1)] == ["r2"]


def test_shared_by_replicas(db_target):
    """A decision put through one replica's store is read by another's."""
    with DecisionLog(db_target) as a, DecisionLog(db_target) as b:
        a.put("r1", "acme", decision(), decided_at=T0)
        assert b.get("r1") == ("acme", decision())


def test_retention_by_age_and_rows(db_target):
    retention = Retention(max_age_s=60, max_rows=3, prune_interval_s=0)
    with DecisionLog(db_target, retention=retention) as log:
        for i in range(5):  # every put prunes (interval 0)
            log.put(f"r{i}", "acme", decision(), decided_at=T0 + timedelta(seconds=i))
        assert [e.request_id for e in log.entries()] == ["r2", "r3", "r4"]
        log.put("late", "acme", decision(), decided_at=T0 + timedelta(seconds=64))
        assert [e.request_id for e in log.entries()] == ["r4", "late"]  # r2, r3 too old


def test_pruning_waits_for_its_interval(db_target):
    now = [T0.timestamp()]
    retention = Retention(max_age_s=None, max_rows=1, prune_interval_s=10)
    with DecisionLog(db_target, retention=retention, clock=lambda: now[0]) as log:
        log.put("r0", "acme", decision())  # first put prunes (nothing to drop)
        now[0] += 1
        log.put("r1", "acme", decision())
        assert log.count() == 2  # within the interval: not pruned yet
        now[0] += 10
        log.put("r2", "acme", decision())
        assert [e.request_id for e in log.entries()] == ["r2"]


def test_an_unbounded_retention_is_refused():
    with pytest.raises(ValidationError, match="max_age_s or max_rows"):
        Retention(max_age_s=None, max_rows=None)


def test_concurrent_puts_from_threads(log):
    def work(k: int) -> None:
        for i in range(20):
            log.put(f"r{k}-{i % 10}", "acme", decision(), decided_at=T0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.count() == 40


def test_naive_times_are_utc(log, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")  # a local zone that is not UTC
    time.tzset()
    log.put("r1", "acme", decision(), decided_at=T0.replace(tzinfo=None))
    assert log.entry("r1").decided_at == T0
    assert [e.request_id for e in log.entries(since=T0.replace(tzinfo=None))] == ["r1"]
    monkeypatch.undo()
    time.tzset()


def test_a_log_on_the_ledgers_database_shares_it_and_leaves_it_open(db_target):
    from orchestrator.ledger import UsageLedger

    with UsageLedger(db_target) as ledger:
        with DecisionLog(ledger.db) as log:
            log.put("r1", "acme", decision(), decided_at=T0)
        components = dict(ledger.db.query("SELECT component, version FROM schema_version"))
        assert components == {"ledger": 3, "decisions": 1}
        assert ledger.count() == 0  # the ledger's database is still open and usable


def test_a_row_written_before_tpot_scale_still_loads():
    """Rows from before `LiveState.tpot_scale` hold `recent_tpot_ms` (always null): replay
    reads them; any other unknown live field is still refused."""
    stored = inputs().model_dump(mode="json")
    stored["profiles"]["small-a"]["live"]["recent_tpot_ms"] = None
    assert DecisionInputs.model_validate(stored) == inputs()

    stored["profiles"]["small-a"]["live"]["surprise"] = 1
    with pytest.raises(ValidationError):
        DecisionInputs.model_validate(stored)
