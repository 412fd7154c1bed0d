"""Budget reservations, atomic in the database: what every replica's requests in flight hold.

`reserve` runs in ONE transaction under the tenant's lock (PostgreSQL: an advisory lock keyed
by tenant; SQLite: BEGIN IMMEDIATE): drop the tenant's expired reservations, read its settled
spend per window and the other requests' live reservations, and insert (or replace) this
request's reservation only if every limited window still has budget left:

    granted  <=>  for every window w:  spend(w) + reserved_by_others < limit(w)

`settle` (in store.py) writes the final row and deletes the reservation under the same lock.

Invariants:
- overspend bound: a grant needs spend + reservations < limit, and adds at most this request's
  amount, so spend + reservations <= limit + one request's reservation, whatever the number of
  replicas; a request's reservation is its worst case (prompt + max_tokens for every choice),
  so settled spend never passes the limit by more than one request's cost;
- idempotent per request id: reserving again replaces the amount (a re-decided request),
  settling again writes no second row;
- a reservation expires `ttl_s` after it was made or last renewed (`renew`: its replica renews
  the holds of the requests it still runs, so a stream longer than `ttl_s` keeps its hold; a
  replica that died renews nothing, so its holds lapse):
  expired ones count for nothing and are deleted by the next `reserve` for the tenant or by
  `expire` from any replica; a late settle still writes its row exactly once;
- a refusal says when to retry: the end of the latest window whose SETTLED spend alone is at
  its limit, else `BUSY_RETRY_S` (the budget is held by requests in flight that settle soon).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from orchestrator.ledger.records import Reservation, Window, WindowSpend
from orchestrator.ledger.windows import window_bounds
from orchestrator.storage import Tx
from orchestrator.storage.timecols import epoch_s

DEFAULT_TTL_S = 900.0
BUSY_RETRY_S = 1


def tenant_lock(tenant: str) -> str:
    return f"orchestrator-budget:{tenant}"


def window_spends(
    query: Callable[[str, tuple], list[tuple]],
    tenant: str,
    windows: Iterable[Window],
    now: datetime,
) -> dict[Window, WindowSpend]:
    """Settled spend per calendar window holding `now`, with ONE statement through `query`
    (the `spend` totals table: one row per tenant, period and period start)."""
    bounds = {w: window_bounds(w, now) for w in dict.fromkeys(windows)}
    if not bounds:
        return {}
    match = " OR ".join("(period = ? AND period_start = ?)" for _ in bounds)
    params = [x for w, (start, _) in bounds.items() for x in (w, epoch_s(start))]
    rows = query(
        f"SELECT period, cost_usd, requests FROM spend WHERE tenant = ? AND ({match})",
        (tenant, *params),
    )
    found = {period: (float(usd), int(n)) for period, usd, n in rows}
    return {
        w: WindowSpend(
            tenant=tenant,
            window=w,
            start=start,
            end=end,
            cost_usd=found.get(w, (0.0, 0))[0],
            requests=found.get(w, (0.0, 0))[1],
        )
        for w, (start, end) in bounds.items()
    }


def reserve(
    tx: Tx,
    tenant: str,
    request_id: str,
    amount_usd: float,
    limits: Mapping[Window, float],
    now: datetime,
    ttl_s: float,
) -> Reservation:
    """See the module docstring. Runs inside the caller's transaction `tx`."""
    amount = max(float(amount_usd), 0.0)
    if not limits:  # no budget: nothing to hold
        return Reservation(request_id=request_id, tenant=tenant, granted=True, amount_usd=amount)
    at = epoch_s(now)
    tx.lock(tenant_lock(tenant))
    tx.execute("DELETE FROM reservations WHERE tenant = ? AND expires_at <= ?", (tenant, at))
    held = float(
        tx.execute(
            "SELECT COALESCE(SUM(amount_usd), 0.0) FROM reservations "
            "WHERE tenant = ? AND request_id != ?",
            (tenant, request_id),
        ).fetchone()[0]
    )
    spends = window_spends(lambda sql, p: tx.execute(sql, p).fetchall(), tenant, limits, now)
    exhausted = {w: s for w, s in spends.items() if s.cost_usd + held >= limits[w]}
    if exhausted:
        by_spend = [s for w, s in exhausted.items() if s.cost_usd >= limits[w]]
        latest = max(by_spend, key=lambda s: s.end) if by_spend else None
        binding = latest or min(exhausted.values(), key=lambda s: limits[s.window] - s.cost_usd)
        return Reservation(
            request_id=request_id,
            tenant=tenant,
            granted=False,
            amount_usd=amount,
            remaining_usd=limits[binding.window] - binding.cost_usd - held,
            window=binding.window,
            retry_after_s=latest.retry_after_s(now) if latest else BUSY_RETRY_S,
        )
    expires = now + timedelta(seconds=ttl_s)
    tx.execute(
        "INSERT INTO reservations (request_id, tenant, amount_usd, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET "
        "tenant = excluded.tenant, amount_usd = excluded.amount_usd, "
        "created_at = excluded.created_at, expires_at = excluded.expires_at",
        (request_id, tenant, amount, at, epoch_s(expires)),
    )
    tightest = min(spends.values(), key=lambda s: limits[s.window] - s.cost_usd)
    return Reservation(
        request_id=request_id,
        tenant=tenant,
        granted=True,
        amount_usd=amount,
        remaining_usd=limits[tightest.window] - tightest.cost_usd - held - amount,
        window=tightest.window,
        expires_at=expires,
    )


def renew(tx: Tx, request_ids: Sequence[str], at: float, expires_at: float) -> int:
    """Move the expiry of each LIVE reservation in `request_ids` to `expires_at` (one that
    has lapsed at `at` stays lapsed: renewing it would hold budget no `reserve` granted)."""
    renewed = 0
    for start in range(0, len(request_ids), _RENEW_BATCH):
        batch = list(request_ids[start : start + _RENEW_BATCH])
        marks = ", ".join("?" * len(batch))
        renewed += tx.execute(
            f"UPDATE reservations SET expires_at = ? WHERE expires_at > ? "
            f"AND request_id IN ({marks})",
            (expires_at, at, *batch),
        ).rowcount
    return renewed


_RENEW_BATCH = 500  # request ids per UPDATE (well under SQLite's bound-parameter limit)


def expire(tx: Tx, at: float) -> int:
    """Delete every reservation expired at epoch `at`; returns how many."""
    return tx.execute("DELETE FROM reservations WHERE expires_at <= ?", (at,)).rowcount
