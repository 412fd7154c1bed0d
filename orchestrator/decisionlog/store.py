"""The decision log: every routing decision by request id, in SQLite or PostgreSQL.

A drop-in for the executor's in-memory `DecisionStore` (`put(request_id, tenant, decision)`,
`get(request_id) -> (tenant, Decision) | None`) that every ingress replica shares through the
database, plus what replay needs (`entries`).

Invariants:
- one row per request id; a later `put` for the same id replaces it (a request re-decided after
  an engine failure shows its final decision);
- `get` does not check the tenant: the caller compares it with the authenticated one;
- retention: `prune` deletes rows older than `max_age_s` and all but the newest `max_rows`;
  `put` runs it at most every `prune_interval_s` (any replica may; deleting is idempotent);
- every call is a short blocking round trip: call it through `asyncio.to_thread` (offload).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.decisionlog.records import DecisionEntry, DecisionInputs, Retention
from orchestrator.routing.types import Decision
from orchestrator.storage import Database, Migration, migrate, open_database
from orchestrator.storage.timecols import epoch_s, from_epoch_s, tenant_time_filter

COMPONENT = "decisions"
MIGRATIONS = (
    Migration(
        1,
        "decisions: one routing decision per request id",
        """
        CREATE TABLE IF NOT EXISTS decisions (
            request_id TEXT PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL,
            decided_at {float} NOT NULL,
            policy_version TEXT,
            action TEXT NOT NULL,
            profile TEXT,
            decision TEXT NOT NULL,
            inputs TEXT
        ) {without_rowid};
        CREATE INDEX IF NOT EXISTS decisions_decided_at ON decisions (decided_at);
        CREATE INDEX IF NOT EXISTS decisions_tenant ON decisions (tenant, decided_at)
        """,
    ),
)
_COLUMNS = "request_id, tenant, decided_at, policy_version, decision, inputs"
_UPSERT = (
    "INSERT INTO decisions (request_id, tenant, decided_at, policy_version, action, profile, "
    "decision, inputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET "
    "tenant = excluded.tenant, decided_at = excluded.decided_at, "
    "policy_version = COALESCE(excluded.policy_version, decisions.policy_version), "
    "action = excluded.action, profile = excluded.profile, decision = excluded.decision, "
    "inputs = COALESCE(excluded.inputs, decisions.inputs)"
)  # a later put without inputs (a switched plan) keeps the inputs it was decided from


@dataclass(frozen=True, slots=True)
class DecisionPut:
    """One `put` (see `DecisionLog.put`), for `put_many`."""

    request_id: str
    tenant: str
    decision: Decision
    policy_version: str | None = None
    inputs: DecisionInputs | None = None
    decided_at: datetime | None = None


class DecisionLog:
    """Decisions by request id, shared by replicas; see the module docstring.

    `target`: a SQLite path, a `postgresql://` URL or an open `Database` (e.g. the ledger's
    `ledger.db`, so one database holds both)."""

    def __init__(
        self,
        target: str | Path | Database,
        *,
        retention: Retention | None = None,
        clock: Any = time.time,
    ) -> None:
        self.db = open_database(target)
        self.retention = retention or Retention()
        self._clock = clock
        self._owns_db = not isinstance(target, Database)
        self._prune_lock = threading.Lock()
        self._last_prune = float("-inf")
        try:
            migrate(self.db, COMPONENT, MIGRATIONS)
        except Exception:
            if self._owns_db:
                self.db.close()
            raise

    def put(
        self,
        request_id: str,
        tenant: str,
        decision: Decision,
        *,
        policy_version: str | None = None,
        inputs: DecisionInputs | None = None,
        decided_at: datetime | None = None,
    ) -> None:
        """Store (or replace) the request's decision; prunes when the interval has passed."""
        self.put_many([DecisionPut(request_id, tenant, decision, policy_version, inputs,
                                   decided_at)])  # fmt: skip

    def put_many(self, puts: list[DecisionPut]) -> None:
        """`put` each, in order (a later put for a request id wins), in one transaction; a
        later put without inputs or policy version keeps the ones recorded before it."""
        if not puts:
            return
        now = float(self._clock())
        rows = [
            (
                p.request_id,
                p.tenant,
                epoch_s(p.decided_at) if p.decided_at is not None else now,
                p.policy_version,
                p.decision.action,
                p.decision.profile,
                p.decision.model_dump_json(),
                p.inputs.model_dump_json() if p.inputs is not None else None,
            )
            for p in puts
        ]
        with self.db.transaction() as tx:
            tx.executemany(_UPSERT, rows)  # in order: a later row for an id replaces an earlier
        self._maybe_prune(max(row[2] for row in rows))

    def get(self, request_id: str) -> tuple[str, Decision] | None:
        """(tenant, decision) of the request, or None (never stored, or pruned)."""
        entry = self.entry(request_id)
        return (entry.tenant, entry.decision) if entry is not None else None

    def entry(self, request_id: str) -> DecisionEntry | None:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM decisions WHERE request_id = ?", (request_id,)
        )
        return _entry(rows[0]) if rows else None

    def entries(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[DecisionEntry]:
        """Rows in decision order (oldest first): what a replay reads."""
        where, params = tenant_time_filter("decided_at", tenant, since, until)
        sql = f"SELECT {_COLUMNS} FROM decisions{where} ORDER BY decided_at, request_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_entry(r) for r in self.db.query(sql, params)]

    def count(self) -> int:
        return int(self.db.query("SELECT COUNT(*) FROM decisions")[0][0])

    def prune(self, now: float | None = None) -> int:
        """Apply the retention now; returns how many rows were deleted."""
        at = float(self._clock()) if now is None else now
        deleted = 0
        with self.db.transaction() as tx:
            if self.retention.max_age_s is not None:
                deleted += tx.execute(
                    "DELETE FROM decisions WHERE decided_at < ?", (at - self.retention.max_age_s,)
                ).rowcount
            if self.retention.max_rows is not None:
                # rows older than the newest max_rows-th one (ties at the cut are kept)
                deleted += tx.execute(
                    "DELETE FROM decisions WHERE decided_at < (SELECT decided_at FROM decisions "
                    "ORDER BY decided_at DESC LIMIT 1 OFFSET ?)",
                    (self.retention.max_rows - 1,),
                ).rowcount
        return deleted

    def _maybe_prune(self, at: float) -> None:
        with self._prune_lock:
            if at - self._last_prune < self.retention.prune_interval_s:
                return
            self._last_prune = at
        self.prune(at)

    def close(self) -> None:
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _entry(row: tuple) -> DecisionEntry:
    request_id, tenant, at, version, decision, inputs = row
    return DecisionEntry(
        request_id=request_id,
        tenant=tenant,
        decided_at=from_epoch_s(at),
        policy_version=version,
        decision=Decision.model_validate_json(decision),
        inputs=DecisionInputs.model_validate_json(inputs) if inputs is not None else None,
    )
