"""The usage ledger: one row per finished request, in SQLite (default) or PostgreSQL.

Guarantees (both backends, see orchestrator.storage):
- `settle` (alias `append`) is atomic (one transaction) and idempotent per `request_id`
  (primary key, ON CONFLICT DO NOTHING: the first write wins, a retry is a no-op); the same
  transaction releases the request's budget reservation, if any;
- a crash mid-write leaves no half row (the transaction is rolled back);
- SQLite: `synchronous="FULL"` (default) survives an OS crash, `"NORMAL"` a process crash;
  several processes may share the file (local disk, not NFS). PostgreSQL: several ingress
  replicas share one database;
- budget reservations (`reserve`, see `reservations.py`) are atomic per tenant across every
  process using the same database;
- the `spend` table holds running totals per tenant and calendar hour/day/month, updated in
  the transaction that inserts the row, so it always equals the sum of the `usage` rows.

Thread-safety: one `UsageLedger` may be shared by threads. Every call is a short blocking
database round trip: from asyncio call it through `asyncio.to_thread` (the executor's offload).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.ledger import reservations as rsv
from orchestrator.ledger.records import (
    Reservation,
    UsageRecord,
    UsageSummary,
    Window,
    WindowSpend,
)
from orchestrator.ledger.schema import (
    ADD_SPEND_ALL_PERIODS,
    COLUMNS,
    COMPONENT,
    MIGRATIONS,
    period_starts,
)
from orchestrator.ledger.windows import window_bounds
from orchestrator.storage import (
    Database,
    StorageError,
    current_version,
    is_postgres_url,
    migrate,
    open_database,
)
from orchestrator.storage.database import Tx
from orchestrator.storage.migrations import check_not_newer, latest
from orchestrator.storage.timecols import epoch_s, from_epoch_s, tenant_time_filter

SCHEMA_VERSION = latest(MIGRATIONS)
DEFAULT_RESERVATION_TTL_S = rsv.DEFAULT_TTL_S
_INSERT = (
    f"INSERT INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT (request_id) DO NOTHING"
)


class LedgerError(StorageError):
    """The database is not a ledger this code can use (e.g. a newer schema)."""


class UsageLedger:
    """Durable per-request usage and budget reservations; see the module docstring.

    `target`: a SQLite path (or `sqlite://path`), a `postgresql://` URL, or an open `Database`
    (shared with other stores). `synchronous`, `timeout_s`, `readonly` apply to SQLite.
    """

    def __init__(
        self,
        target: str | Path | Database,
        *,
        synchronous: str = "FULL",
        timeout_s: float = 5.0,
        readonly: bool = False,
    ) -> None:
        options: dict[str, Any] = {"timeout_s": timeout_s}
        if not isinstance(target, Database) and not is_postgres_url(str(target)):
            options |= {"synchronous": synchronous, "readonly": readonly}
        self.db = open_database(target, **options)
        self.path = Path(getattr(self.db, "path", "")) if self.db.dialect == "sqlite" else None
        # a reader of a database no writer has migrated yet (a brand-new PostgreSQL database,
        # an empty SQLite file) sees an empty ledger, not a missing table
        self._unmigrated = False
        try:
            if readonly:
                stored = current_version(self.db, COMPONENT)
                check_not_newer(COMPONENT, stored, SCHEMA_VERSION, self.db)
                self._unmigrated = stored == 0
                if self._unmigrated and self.db.dialect == "sqlite":
                    self.db.query("SELECT COUNT(*) FROM sqlite_master")  # a file, not a database
            else:
                migrate(self.db, COMPONENT, MIGRATIONS)
        except StorageError as exc:
            self.db.close()
            raise LedgerError(str(exc)) from None
        except Exception:
            self.db.close()
            raise

    # ------------------------------------------------------------ writing

    def settle(self, record: UsageRecord) -> bool:
        """Store the request's final row and release its reservation, in one transaction.
        False (and no row changed) if its request id is already stored."""
        with self.db.transaction() as tx:
            tx.lock(rsv.tenant_lock(record.tenant))  # reserve reads spend + reservations as one
            inserted = _settle(tx, record)
        return inserted

    def settle_many(self, records: Iterable[UsageRecord]) -> int:
        """`settle` several rows in one transaction; returns how many were new."""
        records = list(records)
        new = 0
        with self.db.transaction() as tx:
            for tenant in sorted({r.tenant for r in records}):  # fixed order: no deadlock
                tx.lock(rsv.tenant_lock(tenant))
            for record in records:
                new += _settle(tx, record)
        return new

    # ------------------------------------------------------------ budget reservations

    def reserve(
        self,
        tenant: str,
        request_id: str,
        amount_usd: float,
        limits: Mapping[Window, float],
        *,
        now: datetime | None = None,
        ttl_s: float = DEFAULT_RESERVATION_TTL_S,
    ) -> Reservation:
        """Hold `amount_usd` of the tenant's budget for a request in flight, if every window
        in `limits` still has budget left (spend + others' reservations < limit). Atomic per
        tenant across processes; a second call for the same request id replaces its amount.
        See `reservations.py` for the overspend bound and expiry."""
        when = now or datetime.now(UTC)
        with self.db.transaction() as tx:
            return rsv.reserve(tx, tenant, request_id, amount_usd, limits, when, ttl_s)

    def release(self, request_id: str) -> bool:
        """Drop a reservation without writing a row (the request never ran)."""
        with self.db.transaction() as tx:
            return (
                tx.execute("DELETE FROM reservations WHERE request_id = ?", (request_id,)).rowcount
                == 1
            )

    def renew(
        self,
        request_ids: Iterable[str],
        *,
        now: datetime | None = None,
        ttl_s: float = DEFAULT_RESERVATION_TTL_S,
    ) -> int:
        """Extend the live reservations of requests still running to `now + ttl_s` (their
        replica calls this well within `ttl_s`); returns how many were renewed."""
        ids = sorted(set(request_ids))
        if not ids:
            return 0
        when = now or datetime.now(UTC)
        with self.db.transaction() as tx:
            return rsv.renew(tx, ids, epoch_s(when), epoch_s(when + timedelta(seconds=ttl_s)))

    def expire(self, now: datetime | None = None) -> int:
        """Release every reservation past its expiry (its replica died); any replica may run
        it. Returns how many were released."""
        with self.db.transaction() as tx:
            return rsv.expire(tx, epoch_s(now or datetime.now(UTC)))

    def reserved_usd(self, tenant: str, *, now: datetime | None = None) -> float:
        """The tenant's live (unexpired) reservations, all replicas together."""
        row = self.db.query(
            "SELECT COALESCE(SUM(amount_usd), 0.0) FROM reservations "
            "WHERE tenant = ? AND expires_at > ?",
            (tenant, epoch_s(now or datetime.now(UTC))),
        )[0]
        return float(row[0])

    def reservation(self, request_id: str) -> tuple[str, float, datetime] | None:
        """(tenant, amount, expires_at) of a live or expired reservation, or None."""
        rows = self.db.query(
            "SELECT tenant, amount_usd, expires_at FROM reservations WHERE request_id = ?",
            (request_id,),
        )
        return (rows[0][0], float(rows[0][1]), from_epoch_s(rows[0][2])) if rows else None

    # ------------------------------------------------------------ reading

    def get(self, request_id: str) -> UsageRecord | None:
        rows = self.db.query(
            f"SELECT {', '.join(COLUMNS)} FROM usage WHERE request_id = ?", (request_id,)
        )
        return _record(rows[0]) if rows else None

    def count(self, tenant: str | None = None) -> int:
        if tenant is None:
            return int(self.db.query("SELECT COUNT(*) FROM usage")[0][0])
        return int(self.db.query("SELECT COUNT(*) FROM usage WHERE tenant = ?", (tenant,))[0][0])

    def records(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[UsageRecord]:
        """Rows by finish time, oldest first."""
        where, params = tenant_time_filter("finished_at", tenant, since, until)
        sql = f"SELECT {', '.join(COLUMNS)} FROM usage{where} ORDER BY finished_at, request_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_record(r) for r in self.db.query(sql, params)]

    def spend_between(self, tenant: str, start: datetime, end: datetime) -> tuple[float, int]:
        """(cost USD, requests) finished in [start, end)."""
        cost, n = self.db.query(
            "SELECT COALESCE(SUM(cost_usd), 0.0), COUNT(*) FROM usage "
            "WHERE tenant = ? AND finished_at >= ? AND finished_at < ?",
            (tenant, epoch_s(start), epoch_s(end)),
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
        """Spend in each calendar window holding `now`, read with one SQL statement from the
        running totals `settle` keeps (constant cost, however many rows the month holds).

        Invariant: for every window `w` the result equals `spend(tenant, w, now=now)` (rows
        finished in [start, end)); all windows come from one consistent snapshot. Budget checks
        call this once per request instead of `spend` once per window."""
        return rsv.window_spends(self.db.query, tenant, windows, now or datetime.now(UTC))

    def summary(
        self,
        *,
        tenant: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsageSummary]:
        """Totals per (tenant, profile), sorted by tenant then profile (None first)."""
        if self._unmigrated:
            return []
        where, params = tenant_time_filter("finished_at", tenant, since, until)
        rows = self.db.query(
            "SELECT tenant, profile, COUNT(*), SUM(CASE WHEN status != 'ok' THEN 1 ELSE 0 END), "
            "SUM(prompt_tokens), SUM(cached_tokens), SUM(output_tokens), SUM(reasoning_tokens), "
            "SUM(cost_usd), COALESCE(SUM(estimated_cost_usd), 0.0), AVG(latency_ms) "
            f"FROM usage{where} GROUP BY tenant, profile "
            "ORDER BY tenant, CASE WHEN profile IS NULL THEN 0 ELSE 1 END, profile",
            params,
        )
        return [
            UsageSummary(
                tenant=r[0],
                profile=r[1],
                requests=int(r[2]),
                failed=int(r[3]),
                prompt_tokens=int(r[4]),
                cached_tokens=int(r[5]),
                output_tokens=int(r[6]),
                reasoning_tokens=int(r[7]),
                cost_usd=float(r[8]),
                estimated_cost_usd=float(r[9]),
                mean_latency_ms=None if r[10] is None else float(r[10]),
            )
            for r in rows
        ]

    def integrity_ok(self) -> bool:
        if self.db.dialect == "sqlite":
            return self.db.query("PRAGMA integrity_check")[0][0] == "ok"
        return self.db.query("SELECT 1")[0][0] == 1  # the server checks its own pages

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> UsageLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _settle(tx: Tx, record: UsageRecord) -> bool:
    """Insert the row (first write wins), add it to its windows' totals, drop its hold."""
    inserted = tx.execute(_INSERT, _row(record)).rowcount == 1
    if inserted:
        values = [
            x
            for period, start in period_starts(record.finished_at)
            for x in (record.tenant, period, start, record.cost_usd)
        ]
        tx.execute(ADD_SPEND_ALL_PERIODS, values)
    tx.execute("DELETE FROM reservations WHERE request_id = ?", (record.request_id,))
    return inserted


def _row(record: UsageRecord) -> tuple:
    return (
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
        epoch_s(record.started_at),
        epoch_s(record.finished_at),
    )


def _record(row: tuple) -> UsageRecord:
    values = dict(zip(COLUMNS, row, strict=True))
    values["started_at"] = from_epoch_s(values["started_at"])
    values["finished_at"] = from_epoch_s(values["finished_at"])
    return UsageRecord(**values)


__all__ = ["LedgerError", "SCHEMA_VERSION", "Tx", "UsageLedger"]
