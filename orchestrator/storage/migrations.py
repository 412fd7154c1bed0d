"""Versioned schema migrations, the same versions on both backends.

    LEDGER = (Migration(1, "usage table", "CREATE TABLE ..."), Migration(2, ...))
    migrate(db, "ledger", LEDGER)     # at every start: applies what is missing, in order

The `schema_version(component, version, applied_at)` table holds each component's version, so
several stores (ledger, decision log, predictor) can share one database.

Invariants:
- versions of a component are 1, 2, 3, ... without gaps; a migration is applied at most once,
  and all pending ones in ONE transaction with the version bump: a crash applies none of them;
- concurrent starts (several replicas, several processes on one SQLite file) do not race: the
  whole check-and-apply runs under one schema lock (PostgreSQL: an advisory lock; SQLite:
  BEGIN IMMEDIATE), so the second start finds the schema current and applies nothing;
- a database whose version is NEWER than this code knows is refused (`StorageError`), never
  downgraded or written to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.storage.database import Database, StorageError, Tx

_VERSIONS = """
CREATE TABLE IF NOT EXISTS schema_version (
    component TEXT PRIMARY KEY NOT NULL,
    version INTEGER NOT NULL,
    applied_at {float} NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    """One schema step: `sql` (statements separated by `;`, types as `{float}`, `{blob}`,
    `{id}`, `{without_rowid}`), then `apply(tx, dialect)` if given (a step SQL cannot say
    portably, e.g. adding a column only where it is missing)."""

    version: int
    name: str
    sql: str = ""
    apply: Callable[[Tx, str], None] | None = None

    def run(self, db: Database, tx: Tx) -> None:
        for statement in _statements(db.ddl(self.sql)):
            tx.execute(statement)
        if self.apply is not None:
            self.apply(tx, db.dialect)


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def latest(migrations: Sequence[Migration]) -> int:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migration versions must be 1..n in order, got {versions}")
    return len(versions)


def current_version(db: Database, component: str) -> int:
    """The component's stored version (0: none yet, or no `schema_version` table)."""
    try:
        rows = db.query("SELECT version FROM schema_version WHERE component = ?", (component,))
    except Exception:  # no table yet (the drivers raise different classes)
        return 0
    return int(rows[0][0]) if rows else 0


def migrate(db: Database, component: str, migrations: Sequence[Migration]) -> int:
    """Bring `component` up to the latest version; returns how many migrations ran."""
    target = latest(migrations)
    stored = current_version(db, component)
    check_not_newer(component, stored, target, db)
    if stored == target:
        return 0  # the common start: nothing to lock
    with db.transaction() as tx:
        tx.lock("orchestrator-schema")  # one lock for all components: they share the table
        for statement in _statements(db.ddl(_VERSIONS)):
            tx.execute(statement)
        row = tx.execute(
            "SELECT version FROM schema_version WHERE component = ?", (component,)
        ).fetchone()
        have = int(row[0]) if row else 0
        check_not_newer(component, have, target, db)
        pending = [m for m in migrations if m.version > have]
        for m in pending:
            m.run(db, tx)
        if pending:
            tx.execute(
                "INSERT INTO schema_version (component, version, applied_at) "
                "VALUES (?, ?, ?) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version, "
                "applied_at = excluded.applied_at",
                (component, target, time.time()),
            )
    return len(pending)


def check_not_newer(component: str, have: int, target: int, db: Database) -> None:
    if have > target:
        raise StorageError(
            f"{db.url}: {component} schema v{have} is newer than this code (v{target}); "
            "upgrade orchestrator"
        )
