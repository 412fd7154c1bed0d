"""The accountant's group commit teaches the predictor what one request after another would:
the same calibrations and traffic rows, whatever the groups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from orchestrator.ledger import UsageLedger
from orchestrator.predict.artifact import DEFAULT_ARTIFACT_DIR, load_artifact
from orchestrator.predict.predictor import Predictor
from orchestrator.predict.store import PredictorStore
from orchestrator.serving.accounting import Accountant, EngineUsage, RequestTrace, usage_record
from tests.serving.conftest import LOCAL

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
    assert grouped.store.load_calibrations() == alone.store.load_calibrations()
    assert grouped.store.count_records() == alone.store.count_records() == 11 - 3
