"""The storage interface: a database the stores talk to through short transactions.

    db = open_database("usage.sqlite3")                  # SQLite file (the embedded default)
    db = open_database("postgresql://u@host:5432/orch")  # PostgreSQL (several replicas)
    with db.transaction() as tx:                          # all or nothing
        tx.lock("budget:acme")                            # serialise with other writers
        tx.execute("INSERT INTO t (a) VALUES (?)", (1,))
    rows = db.query("SELECT a FROM t WHERE a > ?", (0,))

Invariants (both backends):
- SQL uses `?` placeholders and the subset of SQL both dialects share (`INSERT ... ON CONFLICT
  (...) DO NOTHING/UPDATE`, `COALESCE`, `CASE`); column types that differ are written as
  `{float}`, `{blob}`, `{empty_blob}` (its empty literal), `{id}` (an auto-increment primary
  key) and `{without_rowid}` and filled in by `Database.ddl`;
- `transaction()` commits on a clean exit and rolls back on any exception; a transaction that
  called `tx.lock(name)` holds that lock until it ends, so two transactions locking the same name
  (in any process, on any host sharing the database) run one after the other;
- a `transaction()` opened while the same thread has one open on the same database joins it:
  its writes commit or roll back with the outer one (several stores' writes in one commit), and
  an exception in it reaches the outer one, which rolls everything back;
- `query()` runs one statement on its own (one consistent snapshot of committed data).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Literal, Protocol

from orchestrator.storage.target import backend

Dialect = Literal["sqlite", "postgresql"]
Params = Sequence[Any]


class StorageError(RuntimeError):
    """A database this code cannot use (unknown URL, newer schema, missing driver)."""


class Cursor(Protocol):
    """What `Tx.execute` returns: the DB-API cursor of the statement."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(ABC):
    """One open transaction."""

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> Cursor:
        """Run one statement (`?` placeholders) inside the transaction."""

    @abstractmethod
    def lock(self, name: str) -> None:
        """Hold the named lock until the transaction ends (PostgreSQL: an advisory lock;
        SQLite: nothing to do, a write transaction already excludes every other writer)."""

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        for row in rows:
            self.execute(sql, row)


class Database(ABC):
    """A connection (pool) to one database; safe to share between threads."""

    dialect: Dialect
    url: str
    _DDL: dict[str, str]

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction, or the one this thread has open here (see the module
        docstring)."""
        local = self.__dict__.setdefault("_open_tx", threading.local())
        joined = getattr(local, "tx", None)
        if joined is not None:
            yield joined
            return
        with self._begin() as tx:
            local.tx = tx
            try:
                yield tx
            finally:
                local.tx = None

    @abstractmethod
    def _begin(self) -> AbstractContextManager[Tx]:
        """A new write transaction: commit on a clean exit, roll back on an exception."""

    @abstractmethod
    def query(self, sql: str, params: Params = ()) -> list[tuple]:
        """All rows of one read statement."""

    @abstractmethod
    def close(self) -> None: ...

    def ddl(self, sql: str) -> str:
        """`sql` with this dialect's column types filled in."""
        return sql.format_map(self._DDL)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_postgres_url(target: object) -> bool:
    """Whether `target` is a PostgreSQL URL (False for paths and unknown schemes)."""
    try:
        return isinstance(target, str) and backend(target) == "postgresql"
    except ValueError:
        return False
