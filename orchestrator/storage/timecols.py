"""Times as the stores keep them (epoch seconds, UTC) and the tenant/time filter they share."""

from __future__ import annotations

from datetime import UTC, datetime


def epoch_s(value: datetime) -> float:
    """Epoch seconds; a naive datetime is taken as UTC."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def from_epoch_s(value: float) -> datetime:
    """The aware UTC datetime of epoch seconds (inverse of `epoch_s`)."""
    return datetime.fromtimestamp(value, tz=UTC)


def tenant_time_filter(
    time_column: str,
    tenant: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[str, tuple]:
    """(" WHERE ..." or "", params) for rows of `tenant` with `since <= time_column < until`;
    each bound is left out when None. `time_column` is a trusted column name, never input."""
    clauses: list[str] = []
    params: list[object] = []
    if tenant is not None:
        clauses.append("tenant = ?")
        params.append(tenant)
    if since is not None:
        clauses.append(f"{time_column} >= ?")
        params.append(epoch_s(since))
    if until is not None:
        clauses.append(f"{time_column} < ?")
        params.append(epoch_s(until))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)
