"""The ledger's schema versions (same on SQLite and PostgreSQL; see orchestrator.storage)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from orchestrator.ledger.windows import window_bounds
from orchestrator.storage import Migration, Tx

COMPONENT = "ledger"
PERIODS = ("hour", "day", "month")
_SPEND_CONFLICT = (
    " ON CONFLICT (tenant, period, period_start) DO UPDATE SET "
    "cost_usd = spend.cost_usd + excluded.cost_usd, requests = spend.requests + excluded.requests"
)
_SPEND_INSERT = "INSERT INTO spend (tenant, period, period_start, cost_usd, requests) VALUES "
ADD_SPEND = _SPEND_INSERT + "(?, ?, ?, ?, ?)" + _SPEND_CONFLICT
# one statement (one round trip) for a row's hour, day and month totals
ADD_SPEND_ALL_PERIODS = _SPEND_INSERT + ", ".join(["(?, ?, ?, ?, 1)"] * 3) + _SPEND_CONFLICT


def period_starts(finished_at: datetime) -> list[tuple[str, float]]:
    """(period, start as epoch seconds) of the calendar hour, day and month holding the time."""
    return [(p, window_bounds(p, finished_at)[0].timestamp()) for p in PERIODS]  # type: ignore[arg-type]


def _backfill_spend(tx: Tx, dialect: str) -> None:
    """Totals per (tenant, period) from the rows already in `usage`."""
    totals: dict[tuple[str, str, float], list[float]] = defaultdict(lambda: [0.0, 0])
    rows = tx.execute("SELECT tenant, finished_at, cost_usd FROM usage")
    for tenant, finished, cost in rows:  # streamed: only the totals are held in memory
        for period, start in period_starts(datetime.fromtimestamp(finished, tz=UTC)):
            total = totals[(tenant, period, start)]
            total[0] += cost
            total[1] += 1
    tx.executemany(ADD_SPEND, [(*key, usd, n) for key, (usd, n) in totals.items()])


COLUMNS = (
    "request_id",
    "tenant",
    "profile",
    "prompt_tokens",
    "cached_tokens",
    "output_tokens",
    "reasoning_tokens",
    "predicted_p50",
    "predicted_p90",
    "estimated_cost_usd",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "status",
    "started_at",
    "finished_at",
)

MIGRATIONS = (
    # v1 is the schema of the SQLite-only ledger (PRAGMA user_version 1): IF NOT EXISTS makes it
    # a no-op on such a file, which is adopted as it is
    Migration(
        1,
        "usage: one row per finished request",
        """
        CREATE TABLE IF NOT EXISTS usage (
            request_id TEXT PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL,
            profile TEXT,
            prompt_tokens BIGINT NOT NULL,
            cached_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            reasoning_tokens BIGINT NOT NULL,
            predicted_p50 BIGINT,
            predicted_p90 BIGINT,
            estimated_cost_usd {float},
            cost_usd {float} NOT NULL,
            latency_ms {float},
            ttft_ms {float},
            status TEXT NOT NULL,
            started_at {float} NOT NULL,
            finished_at {float} NOT NULL
        ) {without_rowid};
        CREATE INDEX IF NOT EXISTS usage_tenant_finished ON usage (tenant, finished_at);
        CREATE INDEX IF NOT EXISTS usage_finished ON usage (finished_at)
        """,
    ),
    Migration(
        2,
        "reservations: budget held by requests in flight, until settled or expired",
        """
        CREATE TABLE IF NOT EXISTS reservations (
            request_id TEXT PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL,
            amount_usd {float} NOT NULL,
            created_at {float} NOT NULL,
            expires_at {float} NOT NULL
        ) {without_rowid};
        CREATE INDEX IF NOT EXISTS reservations_tenant ON reservations (tenant, expires_at);
        CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations (expires_at)
        """,
    ),
    Migration(
        3,
        "spend: running totals per tenant and calendar hour/day/month (kept by settle)",
        """
        CREATE TABLE IF NOT EXISTS spend (
            tenant TEXT NOT NULL,
            period TEXT NOT NULL,
            period_start {float} NOT NULL,
            cost_usd {float} NOT NULL,
            requests BIGINT NOT NULL,
            PRIMARY KEY (tenant, period, period_start)
        ) {without_rowid}
        """,
        apply=_backfill_spend,
    ),
)
