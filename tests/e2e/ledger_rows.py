"""The usage ledger of the shared e2e server, read directly (SQLite, read-only)."""

from __future__ import annotations

import sqlite3
import time

from tests.e2e.conftest import RunningServer


def ledger_rows(server: RunningServer, ids: list[str]) -> list[dict]:
    """The ledger rows of the requests `ids` (none yet: an empty list)."""
    if not ids:
        return []
    ledger = server.state_dir / "usage.sqlite3"
    marks = ",".join("?" * len(ids))
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(f"select * from usage where request_id in ({marks})", ids).fetchall()
    return [dict(r) for r in rows]


def wait_rows(server: RunningServer, ids: list[str], timeout_s: float = 30) -> list[dict]:
    """`ledger_rows`, waiting up to `timeout_s` for every one of `ids` to have a row."""
    deadline = time.monotonic() + timeout_s
    rows = ledger_rows(server, ids)
    while len({r["request_id"] for r in rows}) < len(set(ids)) and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = ledger_rows(server, ids)
    return rows
