"""Group commit (`orchestrator.serving.group_writer`): order, grouping, failure isolation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from orchestrator.serving.group_writer import GroupWriter
from orchestrator.storage.sqlite import SQLiteDatabase


class Sink:
    """Records each group; `gate` holds the worker thread inside a write until set."""

    def __init__(self, bad: set[int] | None = None) -> None:
        self.groups: list[list[int]] = []
        self.bad = bad or set()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def write_many(self, items: list[int]) -> None:
        self.entered.set()
        self.gate.wait(5)
        if self.bad & set(items):
            raise ValueError(f"bad item in {items}")
        self.groups.append(list(items))


async def test_writes_made_while_a_group_is_written_go_together_in_order():
    sink = Sink()
    writer = GroupWriter(sink.write_many)
    sink.gate.clear()
    first = asyncio.ensure_future(writer.write(0))
    await asyncio.to_thread(sink.entered.wait, 5)  # group [0] is in the worker thread
    rest = [asyncio.ensure_future(writer.write(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    sink.gate.set()
    await asyncio.gather(first, *rest)
    assert sink.groups == [[0], [1, 2, 3, 4, 5]]


async def test_a_lone_write_is_written_at_once():
    sink = Sink()
    writer = GroupWriter(sink.write_many)
    await writer.write(7)
    await writer.write(8)
    assert sink.groups == [[7], [8]]


async def test_a_bad_item_fails_only_its_own_write():
    sink = Sink(bad={3})
    writer = GroupWriter(sink.write_many)
    sink.gate.clear()
    first = asyncio.ensure_future(writer.write(0))
    await asyncio.to_thread(sink.entered.wait, 5)
    others = [asyncio.ensure_future(writer.write(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    sink.gate.set()
    await first
    results = await asyncio.gather(*others, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert sink.groups == [[0], [2], [4]]  # the failed group [2, 3, 4] retried item by item


async def test_a_cancelled_caller_still_gets_its_item_written():
    sink = Sink()
    writer = GroupWriter(sink.write_many)
    sink.gate.clear()
    waiting = asyncio.ensure_future(writer.write(1))
    await asyncio.to_thread(sink.entered.wait, 5)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    sink.gate.set()
    await writer.write(2)  # written after the first group: both are in
    assert sink.groups == [[1], [2]]


async def test_max_group_splits_a_long_queue():
    sink = Sink()
    writer = GroupWriter(sink.write_many, max_group=2)
    sink.gate.clear()
    first = asyncio.ensure_future(writer.write(0))
    await asyncio.to_thread(sink.entered.wait, 5)
    rest = [asyncio.ensure_future(writer.write(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    sink.gate.set()
    await asyncio.gather(first, *rest)
    assert sink.groups == [[0], [1, 2], [3, 4], [5]]


async def test_a_lazy_writer_waits_until_awaited():
    sink = Sink()
    writer = GroupWriter(sink.write_many, lazy=True)
    first, second = writer.put(1), writer.put(2)
    await asyncio.sleep(0.05)
    assert sink.groups == []  # no job yet
    await second
    await first
    assert sink.groups == [[1, 2]]


async def test_lazy_items_ride_the_next_group_of_the_writer_they_ride_with():
    rows, decisions = Sink(), Sink()
    host = GroupWriter(rows.write_many)
    rider = GroupWriter(decisions.write_many, lazy=True, rides_with=host)
    queued = [rider.put(i) for i in (10, 11)]
    await host.write(1)  # one job: the riders' group, then the host's
    assert decisions.groups == [[10, 11]] and rows.groups == [[1]]
    await asyncio.gather(*queued)  # already written: no job of their own
    assert decisions.groups == [[10, 11]]


async def test_a_rider_in_flight_keeps_its_order_and_fails_alone():
    rows, decisions = Sink(), Sink(bad={12})
    host = GroupWriter(rows.write_many)
    rider = GroupWriter(decisions.write_many, lazy=True, rides_with=host)
    decisions.gate.clear()
    first = rider.put(10)
    hosted = asyncio.ensure_future(host.write(1))  # takes 10 along, held in the thread
    await asyncio.to_thread(decisions.entered.wait, 5)
    later = [rider.put(i) for i in (11, 12)]
    awaited = asyncio.ensure_future(_result(later[0]))  # its own job, after the first
    bad = asyncio.ensure_future(_result(later[1]))
    await asyncio.sleep(0.05)
    assert decisions.groups == []
    decisions.gate.set()
    await asyncio.gather(first, hosted)
    assert await awaited is None
    assert isinstance(await bad, ValueError)
    assert decisions.groups == [[10], [11]] and rows.groups == [[1]]


class Table:
    """Writes ints to its own table of `db` (an item in `bad` fails its transaction); notes
    how many rows of `watch` another connection saw committed when it wrote."""

    def __init__(self, db: SQLiteDatabase, name: str, *, watch: str = "", bad=()) -> None:
        self.db, self.name, self.watch, self.bad = db, name, watch, set(bad)
        self.seen: list[int] = []
        with db.transaction() as tx:
            tx.execute(f"CREATE TABLE {name} (n INTEGER PRIMARY KEY)")

    def write_many(self, items: list[int]) -> None:
        if self.watch:
            self.seen.append(self.db.query(f"SELECT COUNT(*) FROM {self.watch}")[0][0])
        with self.db.transaction() as tx:
            tx.executemany(f"INSERT INTO {self.name} (n) VALUES (?)", [(i,) for i in items])
            if self.bad & set(items):
                raise ValueError(f"bad item in {items}")

    def rows(self) -> list[int]:
        return [n for (n,) in self.db.query(f"SELECT n FROM {self.name} ORDER BY n")]


def _pair(
    tmp_path, *, same_database: bool = True, bad=()
) -> tuple[Table, Table, GroupWriter, GroupWriter]:
    db = SQLiteDatabase(tmp_path / "a.sqlite")
    other = db if same_database else SQLiteDatabase(tmp_path / "b.sqlite")
    rows = Table(db, "rows", watch="decisions" if same_database else "")
    decisions = Table(other, "decisions", bad=bad)
    host = GroupWriter(rows.write_many, database=db)
    rider = GroupWriter(decisions.write_many, lazy=True, rides_with=host, database=other)
    return rows, decisions, host, rider


async def test_writers_of_one_database_commit_a_job_in_one_transaction(tmp_path):
    rows, decisions, host, rider = _pair(tmp_path)
    queued = [rider.put(i) for i in (10, 11)]
    await host.write(1)
    assert rows.seen == [0]  # the riders' rows were written but not yet committed
    assert rows.rows() == [1] and decisions.rows() == [10, 11]  # then both committed
    await asyncio.gather(*queued)


async def test_a_failed_shared_transaction_falls_back_to_one_per_group(tmp_path):
    rows, decisions, host, rider = _pair(tmp_path, bad={11})
    queued = [rider.put(i) for i in (10, 11)]
    await host.write(1)  # the shared transaction fails on 11: rolled back, each group alone
    assert rows.rows() == [1] and decisions.rows() == [10]
    assert await _result(queued[0]) is None
    assert isinstance(await _result(queued[1]), ValueError)


async def test_writers_of_different_databases_commit_apart(tmp_path):
    rows, decisions, host, rider = _pair(tmp_path, same_database=False)
    queued = [rider.put(i) for i in (10, 11)]
    await host.write(1)
    await asyncio.gather(*queued)
    assert rows.rows() == [1] and decisions.rows() == [10, 11]


async def _result(written) -> BaseException | None:
    try:
        await written
    except Exception as exc:
        return exc
    return None
