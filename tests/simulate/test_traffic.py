"""Traffic sources that need the shared prompt sets: Azure CSV and a usage ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.ledger import UsageLedger
from orchestrator.ledger.records import UsageRecord
from orchestrator.paths import SHARED_DATA
from orchestrator.simulate.prompts import PromptPool
from orchestrator.simulate.traffic import load_azure, load_ledger, sniff

pytestmark = pytest.mark.skipif(
    not (SHARED_DATA / "arena-hard-v0.1/question.jsonl").is_file(),
    reason=f"shared prompt sets absent: {SHARED_DATA}",
)


@pytest.fixture(scope="module")
def pool():
    return PromptPool(seed=0, variants=4)


def test_bodies_are_real_text_of_similar_length(pool):
    import numpy as np

    rng = np.random.default_rng(0)
    for target in (40, 300, 1200, 4000):
        body = pool.body_for(target, rng)
        assert body.body["messages"][-1]["role"] == "user"
        assert body.tier in ("medium", "large", "frontier")
        # within the bucket's width, or the shortest prompt for tiny targets
        assert 0.5 * target <= body.tokens <= 2.0 * target or target < 50


def test_azure_csv(tmp_path, pool):
    path = tmp_path / "trace.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,2000,0\n"
    )
    assert sniff(path) == "azure"
    reqs = load_azure(path, pool)
    assert [r.prompt_tokens for r in reqs] == [374, 2000]
    assert [r.output_tokens for r in reqs] == [44, 1]  # at least one token
    assert reqs[0].arrival_s == 0.0 and reqs[1].arrival_s == pytest.approx(4.3145789, abs=1e-6)


def test_usage_ledger_replay(tmp_path, pool):
    path = tmp_path / "ledger.db"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with UsageLedger(path) as ledger:
        for i, (tenant, status) in enumerate([("a", "ok"), ("b", "ok"), ("a", "rejected")]):
            at = t0 + timedelta(seconds=10 * i)
            ledger.settle(
                UsageRecord(
                    request_id=f"r{i}",
                    tenant=tenant,
                    profile="p",
                    prompt_tokens=500,
                    output_tokens=120,
                    status=status,
                    started_at=at,
                    finished_at=at + timedelta(seconds=2),
                )
            )
    assert sniff(path) == "ledger"
    reqs = load_ledger(path, pool)
    assert [(r.tenant, r.arrival_s, r.output_tokens) for r in reqs] == [
        ("a", 0.0, 120),
        ("b", 10.0, 120),
    ]
