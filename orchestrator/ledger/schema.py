"""The ledger's schema versions (same on SQLite and PostgreSQL; see orchestrator.storage)."""

from __future__ import annotations

from orchestrator.storage import Migration

COMPONENT = "ledger"

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
)
