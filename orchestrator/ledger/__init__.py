"""Usage ledger: what every finished request cost, durable in SQLite or PostgreSQL.

`UsageLedger(path).settle(UsageRecord(...))` is atomic and idempotent per request id; spend
per tenant and window feeds budgets (`spend(tenant, "day").retry_after_s(now)` gives the 429
Retry-After; `spend_windows(tenant, windows)` reads several windows with one query);
`summary()` feeds `orchestrator usage`. `reserve`/`settle` hold and settle budget atomically
across replicas. The target is a SQLite path (default) or a `postgresql://` URL
(orchestrator.storage).
"""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.ledger.records import (
    Reservation,
    Status,
    UsageRecord,
    UsageSummary,
    Window,
    WindowSpend,
)
from orchestrator.ledger.store import LedgerError, UsageLedger
from orchestrator.ledger.windows import parse_time, window_bounds
from orchestrator.paths import state_dir

LEDGER_ENV = "ORCHESTRATOR_LEDGER"
LEDGER_FILENAME = "usage.sqlite3"


def default_ledger_path(state: Path | str | None = None) -> Path:
    """$ORCHESTRATOR_LEDGER, else <state dir>/usage.sqlite3 (`orchestrator.paths.state_dir(state)`)."""
    explicit = os.environ.get(LEDGER_ENV)
    if explicit:
        return Path(explicit)
    return state_dir(state) / LEDGER_FILENAME


__all__ = [
    "LEDGER_ENV",
    "LedgerError",
    "Reservation",
    "Status",
    "UsageLedger",
    "UsageRecord",
    "UsageSummary",
    "Window",
    "WindowSpend",
    "default_ledger_path",
    "parse_time",
    "window_bounds",
]
