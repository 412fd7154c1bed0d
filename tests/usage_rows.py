"""One usage-ledger row, for tests that need spend on the books before they ask."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.ledger import UsageRecord


def usage_row(
    request_id: str,
    cost_usd: float,
    *,
    tenant: str = "acme",
    profile: str | None = "p",
    at: datetime | None = None,
    **fields: Any,
) -> UsageRecord:
    """A settled request of `tenant` on `profile` that cost `cost_usd` and finished at `at`
    (default now) after one second; 10 prompt and 5 output tokens unless `fields` say so."""
    finished = at or datetime.now(UTC)
    return UsageRecord(
        request_id=request_id,
        tenant=tenant,
        profile=profile,
        **{"prompt_tokens": 10, "output_tokens": 5, **fields},
        cost_usd=cost_usd,
        started_at=finished - timedelta(seconds=1),
        finished_at=finished,
    )
