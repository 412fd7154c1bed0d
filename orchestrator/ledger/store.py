"""The usage ledger: one SQLite file (WAL), one row per finished request.

Guarantees:
- `append` is atomic (one transaction per row) and idempotent per `request_id` (primary key,
  INSERT OR IGNORE: the first write wins, a retry is a no-op);
- a crash mid-write leaves no half row: SQLite rolls an unfinished transaction back when the
  file is next opened;
- with `synchronous="FULL"` (default) a committed row survives an OS crash too; `"NORMAL"`
  survives a process crash and is faster;
- several processes may share the file (WAL readers never block the writer; writers wait up
  to `timeout_s`); the file must live on a local disk or a ReadWriteOnce volume, not NFS.

Thread-safety: one connection per ledger, guarded by a lock, so one `UsageLedger` may be shared
by threads. From an asyncio server a call is a short synchronous write (well under a
millisecond with "NORMAL", one fsync with "FULL"); call it directly, or through
`asyncio.to_thread(ledger.append, record)` when fsync latency matters.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from orchestrator.ledger.records import UsageRecord, UsageSummary, Window, WindowSpend
from orchestrator.ledger.windows import window_bounds

SCHEMA_VERSION = 1
_COLUMNS = (
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
_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    request_id TEXT PRIMARY KEY NOT NULL,
    tenant TEXT NOT NULL,
    profile TEXT,
    prompt_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    predicted_p50 INTEGER,
    predicted_p90 INTEGER,
    estimated_cost_usd REAL,
    cost_usd REAL NOT NULL,
    latency_ms REAL,
    ttft_ms REAL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_tenant_finished ON usage (tenant, finished_at);
CREATE INDEX IF NOT EXISTS usage_finished ON usage (finished_at);
"""
_INSERT = (
    f"INSERT OR IGNORE INTO usage ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
)

Synchronous = Literal["FULL", "NORMAL"]


def _ts(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


class LedgerError(RuntimeError):
    """The file is not a ledger this code can read (e.g. a newer schema)."""


class UsageLedger:
    """Durable per-request usage; see the module docstring for the guarantees."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        timeout_s: float = 5.0,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        if readonly:
            uri = f"file:{self.path.resolve()}?mode=ro"
            self._conn = sqlite3.connect(
                uri, uri=True, timeout=timeout_s, check_same_thread=False, isolation_level=None
            )
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=timeout_s, check_same_thread=False, isolation_level=None
            )
        try:
            self._setup(synchronous, timeout_s, readonly)
        except Exception:
            self._conn.close()
            raise

    def _setup(self, synchronous: str, timeout_s: float, readonly: bool) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        version = c.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(f"{self.path}: ledger schema v{version} is newer than this code")
        if readonly:
            return
        c.execute("PRAGMA journal_mode = WAL")
        c.execute(f"PRAGMA synchronous = {synchronous}")
        with self._transaction():
            # one statement at a time: executescript() would COMMIT our transaction early
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                c.execute(statement)
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    # ------------------------------------------------------------ writing

    def append(self, record: UsageRecord) -> bool:
        """Store `record`; False (and nothing changed) if its request id is already stored."""
        row = (
            record.request_id,
            record.tenant,
            record.profile,
            record.prompt_tokens,
            record.cached_tokens,
            record.output_tokens,
            record.reasoning_tokens,
            record.predicted_p50,
            record.predicted_p90,
            record.estimated_cost_usd,
            record.cost_usd,
            record.latency_ms,
            record.ttft_ms,
            record.status,
            _ts(record.started_at),
            _ts(record.finished_at),
        )
        with self._lock, self._transaction() as c:
            return c.execute(_INSERT, row).rowcount == 1

    # ------------------------------------------------------------ reading

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def get(self, request_id: str) -> UsageRecord | None:
        rows = self._query(
            f"SELECT {', '.join(_COLUMNS)} FROM usage WHERE request_id = ?", (request_id,)
        )
        return _record(rows[0]) if rows else None

    def count(self, tenant: str | None = None) -> int:
        if tenant is None:
            return self._query("SELECT COUNT(*) FROM usage")[0][0]
        return self._query("SELECT COUNT(*) FROM usage WHERE tenant = ?", (tenant,))[0][0]

    def records(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[UsageRecord]:
        """Rows by finish time, oldest first."""
        where, params = _filters(tenant, since, until)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM usage{where} ORDER BY finished_at, request_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_record(r) for r in self._query(sql, params)]

    def spend_between(self, tenant: str, start: datetime, end: datetime) -> tuple[float, int]:
        """(cost USD, requests) finished in [start, end)."""
        cost, n = self._query(
            "SELECT COALESCE(SUM(cost_usd), 0.0), COUNT(*) FROM usage "
            "WHERE tenant = ? AND finished_at >= ? AND finished_at < ?",
            (tenant, _ts(start), _ts(end)),
        )[0]
        return float(cost), int(n)

    def spend(self, tenant: str, window: Window, *, now: datetime | None = None) -> WindowSpend:
        """Spend in the calendar window holding `now` (default: the current time).

        One query per window; for several windows at once use `spend_windows`."""
        start, end = window_bounds(window, now or datetime.now(UTC))
        cost, n = self.spend_between(tenant, start, end)
        return WindowSpend(
            tenant=tenant, window=window, start=start, end=end, cost_usd=cost, requests=n
        )

    def spend_windows(
        self, tenant: str, windows: Iterable[Window], *, now: datetime | None = None
    ) -> dict[Window, WindowSpend]:
        """Spend in each calendar window holding `now`, read with one SQL statement.

        Invariant: for every window `w` the result equals `spend(tenant, w, now=now)` (rows
        finished in [start, end)); all windows come from one consistent snapshot. Budget checks
        call this once per request instead of `spend` once per window."""
        when = now or datetime.now(UTC)
        bounds = {w: window_bounds(w, when) for w in dict.fromkeys(windows)}
        if not bounds:
            return {}
        columns: list[str] = []
        params: list[object] = []
        for start, end in bounds.values():
            # CASE without ELSE is NULL outside the window: SUM/COUNT skip exactly those rows
            inside = "finished_at >= ? AND finished_at < ?"
            columns.append(f"SUM(CASE WHEN {inside} THEN cost_usd END)")
            columns.append(f"COUNT(CASE WHEN {inside} THEN 1 END)")
            params += [_ts(start), _ts(end), _ts(start), _ts(end)]
        lowest = min(start for start, _ in bounds.values())
        highest = max(end for _, end in bounds.values())
        row = self._query(
            f"SELECT {', '.join(columns)} FROM usage "
            "WHERE tenant = ? AND finished_at >= ? AND finished_at < ?",
            (*params, tenant, _ts(lowest), _ts(highest)),
        )[0]
        return {
            w: WindowSpend(
                tenant=tenant,
                window=w,
                start=start,
                end=end,
                cost_usd=float(row[2 * i] or 0.0),
                requests=int(row[2 * i + 1]),
            )
            for i, (w, (start, end)) in enumerate(bounds.items())
        }

    def summary(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsageSummary]:
        """Totals per (tenant, profile), sorted by tenant then profile (None first)."""
        where, params = _filters(tenant, since, until)
        rows = self._query(
            "SELECT tenant, profile, COUNT(*), SUM(status != 'ok'), SUM(prompt_tokens), "
            "SUM(cached_tokens), SUM(output_tokens), SUM(reasoning_tokens), SUM(cost_usd), "
            "COALESCE(SUM(estimated_cost_usd), 0.0), AVG(latency_ms) "
            f"FROM usage{where} GROUP BY tenant, profile "
            "ORDER BY tenant, profile IS NOT NULL, profile",
            params,
        )
        return [
            UsageSummary(
                tenant=r[0],
                profile=r[1],
                requests=r[2],
                failed=r[3],
                prompt_tokens=r[4],
                cached_tokens=r[5],
                output_tokens=r[6],
                reasoning_tokens=r[7],
                cost_usd=r[8],
                estimated_cost_usd=r[9],
                mean_latency_ms=r[10],
            )
            for r in rows
        ]

    def integrity_ok(self) -> bool:
        return self._query("PRAGMA integrity_check")[0][0] == "ok"

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> UsageLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _filters(
    tenant: str | None, since: datetime | None, until: datetime | None
) -> tuple[str, tuple]:
    clauses, params = [], []
    if tenant is not None:
        clauses.append("tenant = ?")
        params.append(tenant)
    if since is not None:
        clauses.append("finished_at >= ?")
        params.append(_ts(since))
    if until is not None:
        clauses.append("finished_at < ?")
        params.append(_ts(until))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _record(row: tuple) -> UsageRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["started_at"] = _dt(values["started_at"])
    values["finished_at"] = _dt(values["finished_at"])
    return UsageRecord(**values)
