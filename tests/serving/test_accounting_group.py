"""The accountant's group commit teaches the predictor what one request after another would:
the same calibrations and traffic rows, whatever the groups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from orchestrator.decisionlog import DecisionLog
from orchestrator.ledger import UsageLedger
from orchestrator.predict.artifact import DEFAULT_ARTIFACT_DIR, load_artifact
from orchestrator.predict.predictor import Predictor
from orchestrator.predict.store import PredictorStore
from orchestrator.routing.types import Decision
from orchestrator.serving.accounting import Accountant, EngineUsage, RequestTrace, usage_record
from orchestrator.serving.decisions import DecisionRecorder
from tests.serving.conftest import LOCAL

AT = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
ASKS = ["Write a haiku about rivers.", "List five tips for sleeping better.", "Say hi."]


async def test_grouped_rows_calibrate_like_one_row_after_another(tmp_path):
    artifact = load_artifact(DEFAULT_ARTIFACT_DIR)
    alone = Predictor(artifact, store=PredictorStore(tmp_path / "alone.sqlite"))
    grouped = Predictor(artifact, store=PredictorStore(tmp_path / "grouped.sqlite"))
    accountant = Accountant(UsageLedger(tmp_path / "usage.sqlite3"), grouped)
    rows = []
    for i in range(12):
        profile = LOCAL.profiles[i % len(LOCAL.profiles)]
        body = {"messages": [{"role": "user", "content": ASKS[i % len(ASKS)]}]}
        prediction = alone.predict(body, profile)
        trace = RequestTrace(f"r{i}", "default", profile.name, started_at=datetime.now(UTC))
        status = "error" if i == 5 else "ok"  # an error teaches nothing
        out = 3 + 11 * i
        cap = out if i % 4 == 0 else None  # cut at the cap it was sent: censored, no row
        record = usage_record(trace, EngineUsage(20, 0, out, 0), 0.0, status)
        rows.append((record, profile, prediction, cap))
        if status == "ok":
            alone.observe(profile, prediction, record.output_tokens, record.reasoning_tokens, cap)
    # all at once: the first is written alone, the others group behind it
    await asyncio.gather(*(accountant.record(*row) for row in rows))
    assert accountant.ledger.count() == 12
    await accountant.learned()  # the calibration follows the rows, in batches
    assert grouped.store.load_calibrations() == alone.store.load_calibrations()
    assert grouped.store.count_records() == alone.store.count_records() == 11 - 3


async def test_decisions_in_the_ledgers_database_store_what_a_database_of_their_own_does(
    tmp_path,
):
    """One commit for a job's rows and decisions (they share the ledger's database) stores
    the same rows and decisions as two databases, each with its own commits."""

    async def run(ledger: UsageLedger, log: DecisionLog) -> tuple[list, list]:
        accountant = Accountant(ledger, None)
        recorder = DecisionRecorder(log, asyncio.to_thread, rides_with=accountant.writes)
        rows, decisions = [], []
        for i in range(10):
            trace = RequestTrace(f"r{i}", "default", LOCAL.profiles[0].name, started_at=AT)
            record = usage_record(trace, EngineUsage(20, 0, 3 + i, 0), 0.001 * i)
            rows.append(accountant.record(record, LOCAL.profiles[0], None))
            decision = Decision(action="route", profile=LOCAL.profiles[0].name, reason=f"r{i}",
                                query_class="standard", predicted_tokens=(i, 2 * i))  # fmt: skip
            decisions.append(recorder.put(f"r{i}", "default", decision, "v1"))
        # the rows' job starts first; the decisions, queued meanwhile, ride it
        await asyncio.gather(*rows, *decisions)
        rows = [r.model_dump(exclude={"finished_at", "latency_ms"}) for r in ledger.records()]
        decided = [(e.request_id, e.tenant, e.policy_version, e.decision) for e in log.entries()]
        return sorted(rows, key=str), sorted(decided, key=str)

    ledger = UsageLedger(tmp_path / "shared.sqlite3")
    shared = await run(ledger, DecisionLog(ledger.db))
    apart = await run(UsageLedger(tmp_path / "rows.sqlite3"), DecisionLog(tmp_path / "d.sqlite3"))
    assert shared == apart and len(shared[0]) == len(shared[1]) == 10
