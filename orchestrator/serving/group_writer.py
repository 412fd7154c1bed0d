"""Group commit: the writes of many requests, one worker-thread job and one transaction per group.

    writer = GroupWriter(write_many)   # write_many(items) -> None, blocking (a transaction)
    await writer.write(item)           # returns once `item` is written; raises its error

    later = GroupWriter(other_many, lazy=True, rides_with=writer)
    written = later.put(item)          # queued; no job yet
    ...
    await written                      # written by then with one of `writer`'s groups, else now

Writes submitted while a group is being written form the next group, so at load each request
pays a share of one thread hop and one commit instead of its own; a lone write waits for
nothing. A lazy writer's items wait until someone awaits one of them, or ride in the job of
the next group of the writer it rides with: a write needed only before the answer's last byte
(a decision) then costs no hop of its own. Writers that name the same `database` (whose
`write_many` writes there through `Database.transaction`) write a job's groups in ONE
transaction (one commit); should it fail, it is rolled back and each group is written in its
own transaction as without it.

Invariants: items are written in submission order, one group at a time (a later write for the
same key lands after an earlier one), a lazy writer's items included; a group that fails is
retried item by item in the same job, so a bad item fails only its own `write`; a caller
cancelled while waiting does not cancel its write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Offload = Callable[..., Awaitable[Any]]
_Group = list[tuple[Any, asyncio.Future[None]]]


class GroupWriter(Generic[T]):
    """Coalesces writes into groups (see the module docstring)."""

    def __init__(
        self,
        write_many: Callable[[list[T]], Any],
        offload: Offload = asyncio.to_thread,
        max_group: int = 256,
        *,
        lazy: bool = False,
        rides_with: GroupWriter[Any] | None = None,
        database: Any | None = None,
    ):
        self.write_many = write_many
        self.database = database  # where `write_many` writes (one transaction per job)
        self.offload = offload
        self.max_group = max_group
        self.lazy = lazy
        self._riders: list[GroupWriter[Any]] = []  # lazy writers whose items ride our jobs
        if rides_with is not None:
            rides_with._riders.append(self)
        self._pending: _Group = []
        self._flusher: asyncio.Task[None] | None = None
        self._busy = 0  # jobs in flight holding items of this writer (order: one at a time)
        self._idle: asyncio.Event | None = None  # set when `_busy` falls to 0

    def submit(self, item: T) -> asyncio.Future[None]:
        """Queue `item`; the future is done when it is written (or failed). A lazy writer
        starts no job for it (`put`, `flush`)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, done))
        if not self.lazy:
            self.flush()
        return done

    def flush(self) -> None:
        """Start writing what is pending, unless a job of ours is already running."""
        if self._flusher is None and self._pending:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    def put(self, item: T) -> Written:
        """Queue `item`; awaiting the result waits until it is written (a lazy writer starts
        its job then, unless the item went with another writer's group before)."""
        return Written(self, self.submit(item))

    async def write(self, item: T) -> None:
        """Write `item` with whatever else is waiting; shielded from the caller's cancel."""
        await self.put(item)

    async def _flush(self) -> None:
        try:
            while self._pending:
                while self._busy:  # our items riding another writer's job: after them
                    await self._wait_idle()
                if not self._pending:  # they all rode
                    break
                group = self._take()
                riding = [(r, r._take()) for r in self._riders if not r._busy and r._pending]
                await self._run([(self, group), *riding])
        finally:
            self._flusher = None

    def _take(self) -> _Group:
        group = self._pending[: self.max_group]
        del self._pending[: self.max_group]
        return group

    async def _run(self, groups: list[tuple[GroupWriter[Any], _Group]]) -> None:
        """One job: each writer's group in turn (its own transaction); the futures after."""
        for writer, _ in groups:
            writer._busy += 1
        try:
            try:
                results = await self.offload(
                    _write_groups, [(w, [item for item, _ in g]) for w, g in groups]
                )
            except asyncio.CancelledError:  # the loop is closing: nothing more is written
                for writer, group in groups:
                    for _, done in group + writer._pending:
                        done.cancel()
                    writer._pending.clear()
                raise
            except Exception as exc:  # the job itself failed
                results = [[exc] * len(g) for _, g in groups]
        finally:
            for writer, _ in groups:
                writer._busy -= 1
                if not writer._busy and writer._idle is not None:
                    writer._idle.set()
        for (_, group), errors in zip(groups, results, strict=True):
            for (_, done), error in zip(group, errors, strict=True):
                if done.done():
                    continue
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

    async def _wait_idle(self) -> None:
        if self._idle is None:
            self._idle = asyncio.Event()
        self._idle.clear()
        await self._idle.wait()

    def _write_group(self, items: list[T]) -> list[BaseException | None]:
        """Worker thread: the group in one call; failed, each item alone."""
        try:
            self.write_many(items)
            return [None] * len(items)
        except Exception as exc:
            return [exc] if len(items) == 1 else [self._write_one(item) for item in items]

    def _write_one(self, item: T) -> BaseException | None:
        try:
            self.write_many([item])
            return None
        except Exception as exc:
            return exc


def _write_groups(
    groups: list[tuple[GroupWriter[Any], list[Any]]],
) -> list[list[BaseException | None]]:
    """Worker thread: each writer's group, riders first (their items were queued earlier);
    in one transaction when they all write to the same database."""
    order = [*range(1, len(groups)), 0]
    database = groups[0][0].database
    if len(groups) > 1 and database is not None and all(w.database is database for w, _ in groups):
        try:
            with database.transaction():  # each `write_many`'s own transaction joins this one
                for i in order:
                    groups[i][0].write_many(groups[i][1])
        except Exception:  # rolled back: each group in its own transaction, as below
            pass
        else:
            return [[None] * len(items) for _, items in groups]
    results: list[list[BaseException | None]] = [[] for _ in groups]
    for i in order:
        writer, items = groups[i]
        results[i] = writer._write_group(items)
    return results


class Written:
    """An item queued with a writer; awaiting it starts the writer's job if it has none and
    waits (shielded) until the item is written."""

    __slots__ = ("done", "writer")

    def __init__(self, writer: GroupWriter[Any], done: asyncio.Future[None]):
        self.writer, self.done = writer, done

    def __await__(self) -> Generator[Any, None, None]:
        if not self.done.done():
            self.writer.flush()
        return asyncio.shield(self.done).__await__()
