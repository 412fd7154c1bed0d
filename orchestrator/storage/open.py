"""Open the database a target names: the one place that knows both backends (`open_database`).

PostgreSQL's driver is imported only when a PostgreSQL URL is opened (`postgres.py` imports
psycopg lazily), so the SQLite default needs nothing more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.storage.database import Database, StorageError
from orchestrator.storage.postgres import PostgresDatabase
from orchestrator.storage.sqlite import SQLiteDatabase
from orchestrator.storage.target import backend, connect_url, sqlite_path


def open_database(target: str | Path | Database, **options: Any) -> Database:
    """A `Database` for `target`: an open one is returned as is; a PostgreSQL URL opens
    PostgreSQL; a path, `sqlite://path` or `:memory:` opens SQLite (see `target.py`).
    `options` go to the backend (SQLite: synchronous, timeout_s, readonly; PostgreSQL:
    pool_size, timeout_s). Raises StorageError for an unknown URL scheme."""
    if isinstance(target, Database):
        return target
    text = str(target)
    try:
        kind = backend(text)
    except ValueError as exc:
        raise StorageError(str(exc)) from None
    if kind == "postgresql":
        return PostgresDatabase(connect_url(text), **options)
    return SQLiteDatabase(sqlite_path(text), **options)
