"""Calendar budget windows (UTC) and the time expressions of `orchestrator usage --since`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from orchestrator.ledger.records import Window

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def window_bounds(window: Window, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the calendar hour, day or month holding `now` (UTC; naive = UTC)."""
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    if window == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    if window == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + timedelta(days=1)
    if window == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if start.month == 12:
            return start, start.replace(year=start.year + 1, month=1)
        return start, start.replace(month=start.month + 1)
    raise ValueError(f"unknown window {window!r}")


def parse_time(text: str, now: datetime) -> datetime:
    """`30m`, `24h`, `7d`, `2w` (before `now`), or an ISO 8601 date/datetime (naive = UTC)."""
    match = _RELATIVE.match(text)
    if match:
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
        return now.astimezone(UTC) - timedelta(seconds=seconds)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use e.g. 24h, 7d or 2026-01-31[T12:00[:00][+00:00]]"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
