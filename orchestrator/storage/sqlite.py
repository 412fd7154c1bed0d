"""The SQLite backend: one file (WAL), the embedded default; `orchestrator serve` needs nothing
else.

Invariants:
- a write transaction is `BEGIN IMMEDIATE ... COMMIT`: it takes the file's write lock first, so
  read-check-write sequences (budget reservations, migrations) are atomic across threads AND
  processes sharing the file; writers wait up to `timeout_s` for each other;
- WAL: readers never block the writer; a crash mid-transaction leaves nothing (rolled back when
  the file is next opened); `synchronous="FULL"` also survives an OS crash, `"NORMAL"` a process
  crash;
- writes go through one connection guarded by a lock (threads take turns); reads (`query`) use
  a read-only connection per thread, so they never wait for another thread's commit (fsync)
  and see every committed transaction (WAL). A `:memory:` or read-only database has one
  connection for both. The file must be on a local disk or a ReadWriteOnce volume, not NFS.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from orchestrator.storage.database import Cursor, Database, Params, Tx

Synchronous = Literal["FULL", "NORMAL", "OFF"]


class _SQLiteTx(Tx):
    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        return self._conn.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self._conn.executemany(sql, [tuple(r) for r in rows])

    def lock(self, name: str) -> None:
        """BEGIN IMMEDIATE already holds the only write lock of the file."""


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL (persistent: a no-op once done). Switching needs the file to
    itself, and SQLite answers "database is locked" at once, without its busy handler, while
    another connection opens or switches it; so this retries until `timeout_s`, as the busy
    timeout would."""
    deadline = time.monotonic() + timeout_s
    pause = 0.002
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


class SQLiteDatabase(Database):
    dialect = "sqlite"
    _DDL = {
        "float": "REAL",
        "blob": "BLOB",
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "without_rowid": "WITHOUT ROWID",
        "empty_blob": "x''",
    }

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        timeout_s: float = 5.0,
        readonly: bool = False,
    ) -> None:
        self.path = str(path)
        self.url = f"sqlite://{self.path}" if self.path != ":memory:" else ":memory:"
        self.readonly = readonly
        self._lock = threading.RLock()
        if readonly:
            uri = f"file:{Path(self.path).resolve()}?mode=ro"
            conn = sqlite3.connect(
                uri, uri=True, timeout=timeout_s, check_same_thread=False, isolation_level=None
            )
        else:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=timeout_s, check_same_thread=False, isolation_level=None
            )
        self._conn = conn
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._separate_readers = not readonly and self.path != ":memory:"
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            if not readonly:
                if self.path != ":memory:":
                    _enable_wal(conn, timeout_s)
                conn.execute(f"PRAGMA synchronous = {synchronous}")
        except Exception:
            conn.close()
            raise

    @contextmanager
    def _begin(self) -> Iterator[Tx]:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query(self, sql: str, params: Params = ()) -> list[tuple]:
        reader = self._reader()
        if reader is not None:
            return reader.execute(sql, tuple(params)).fetchall()
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def _reader(self) -> sqlite3.Connection | None:
        """This thread's read-only connection (None: reads share the writer's)."""
        if not self._separate_readers:
            return None
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self._timeout_s, check_same_thread=False, isolation_level=None
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout_s * 1000)}")
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._conn.close()
