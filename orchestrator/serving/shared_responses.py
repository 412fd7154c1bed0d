"""Stored Responses-API conversations on the ledger's database (SQLite or PostgreSQL).

The same surface as `responses_api.ResponseStore` (`put`, `history`), so
`previous_response_id` works whichever ingress replica made the previous response. Calls block
for one round trip: the request path makes them in worker threads.

Invariants:
- schema component `responses`, versioned by `orchestrator.storage.migrate` like every store;
- a conversation is read only by the tenant that stored it (another tenant's id is "not
  stored", exactly as in memory);
- rows older than `max_age_s` are pruned (at most every `prune_interval_s`, by any replica).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from orchestrator.serving.responses_api import StoredResponse, not_stored
from orchestrator.storage import Database, Migration, migrate

COMPONENT = "responses"
MIGRATIONS = (
    Migration(
        1,
        "responses: stored Responses-API conversations by response id",
        """
        CREATE TABLE IF NOT EXISTS responses (
            response_id TEXT PRIMARY KEY NOT NULL,
            tenant TEXT NOT NULL,
            created_at {float} NOT NULL,
            messages TEXT NOT NULL
        ) {without_rowid};
        CREATE INDEX IF NOT EXISTS responses_created_at ON responses (created_at)
        """,
    ),
)
DEFAULT_MAX_AGE_S = 30 * 86_400.0  # what OpenAI keeps a stored response for
_UPSERT = (
    "INSERT INTO responses (response_id, tenant, created_at, messages) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (response_id) DO UPDATE SET tenant = excluded.tenant, "
    "created_at = excluded.created_at, messages = excluded.messages"
)


class SharedResponseStore:
    """Conversations by response id in `db`, shared by every replica using it."""

    def __init__(
        self,
        db: Database,
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        prune_interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.max_age_s = max_age_s
        self.prune_interval_s = prune_interval_s
        self._clock = clock
        self._prune_lock = threading.Lock()
        self._last_prune = float("-inf")
        migrate(db, COMPONENT, MIGRATIONS)

    def put(self, response_id: str, stored: StoredResponse) -> None:
        now = float(self._clock())
        with self.db.transaction() as tx:
            tx.execute(
                _UPSERT, (response_id, stored.tenant, now, json.dumps(list(stored.messages)))
            )
        self._prune(now)

    def history(self, response_id: str, tenant: str) -> list[dict[str, Any]]:
        """The stored conversation (400 `previous_response_not_found` if absent, pruned or
        another tenant's)."""
        rows = self.db.query(
            "SELECT tenant, messages, created_at FROM responses WHERE response_id = ?",
            (response_id,),
        )
        if not rows:
            raise not_stored(response_id)
        owner, messages, created_at = rows[0]
        if owner != tenant or float(created_at) < float(self._clock()) - self.max_age_s:
            raise not_stored(response_id)
        return [dict(m) for m in json.loads(messages)]

    def _prune(self, now: float) -> None:
        with self._prune_lock:
            if now - self._last_prune < self.prune_interval_s:
                return
            self._last_prune = now
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM responses WHERE created_at < ?", (now - self.max_age_s,))
