"""The batch runner: paces, runs each line once, retries capacity refusals, stops on budget."""

from __future__ import annotations

import json

import pytest

from orchestrator.batch.lines import parse_input
from orchestrator.batch.protocol import CreateBatch
from orchestrator.batch.runner import BatchRunner, Capacity, LineResult
from orchestrator.batch.store import BatchStore
from orchestrator.storage import open_database

CHAT = "/v1/chat/completions"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def _inline(fn, *args, **kwargs):
    return fn(*args, **kwargs)


@pytest.fixture
def store(tmp_path):
    with open_database(tmp_path / "b.sqlite3") as db:
        yield BatchStore(db)


def _job(store: BatchStore, clock: Clock, n: int):
    content = "\n".join(
        json.dumps({"custom_id": f"c{i}", "url": CHAT, "body": {"model": "m", "n": i}})
        for i in range(n)
    ).encode()
    f = store.put_file("acme", "batch", "in.jsonl", content, clock.now)
    req = CreateBatch(input_file_id=f.id, endpoint=CHAT, completion_window="1h")
    return store.create_job("acme", req, parse_input(content, CHAT), clock.now)


IDLE = Capacity(0.0, 100)


def _runner(store, clock, answer, *, cap=4, load=IDLE):
    return BatchRunner(store, answer, owner="r1", tenant_cap=lambda _: cap,
                       capacity=lambda: load, offload=_inline, clock=clock)  # fmt: skip


async def _until_done(runner: BatchRunner, clock: Clock, rounds: int = 50) -> None:
    for _ in range(rounds):
        await runner.tick()
        await runner.drain()
        clock.now += 1


async def test_lines_run_once_and_the_job_completes(store):
    clock, calls = Clock(), []

    async def answer(tenant, endpoint, body, request_id):
        calls.append(request_id)
        return LineResult(200, {"echo": body["n"]}, 0.001)

    job = _job(store, clock, 10)
    runner = _runner(store, clock, answer)
    await _until_done(runner, clock)
    assert sorted(calls) == sorted(f"{job.id}-L{i}" for i in range(1, 11))
    ended = store.job(job.id, "acme")
    assert ended.status == "completed" and ended.request_counts.completed == 10


async def test_the_tenant_cap_bounds_lines_in_flight(store):
    clock = Clock()

    async def answer(tenant, endpoint, body, request_id):
        return LineResult(200, {})

    _job(store, clock, 12)
    runner = _runner(store, clock, answer, cap=3)
    await runner.tick()
    assert len(runner.running) == 3
    await _until_done(runner, clock)


async def test_overload_gives_the_line_back_and_it_runs_later(store):
    clock, seen = Clock(), []

    async def answer(tenant, endpoint, body, request_id):
        seen.append(request_id)
        if seen.count(request_id) == 1:
            return LineResult(429, {"error": {"code": "server_overloaded", "message": "busy"}})
        return LineResult(200, {})

    job = _job(store, clock, 2)
    await _until_done(_runner(store, clock, answer), clock)
    assert len(seen) == 4
    assert store.job(job.id, "acme").request_counts.completed == 2


async def test_a_budget_refusal_stops_the_job_with_the_reason(store):
    clock = Clock()

    async def answer(tenant, endpoint, body, request_id):
        return LineResult(402, {"error": {"code": "budget_exhausted", "message": "$0 left"}})

    job = _job(store, clock, 5)
    await _until_done(_runner(store, clock, answer, cap=1), clock)
    ended = store.job(job.id, "acme")
    assert ended.status == "failed" and ended.request_counts.failed == 5
    assert "$0 left" in store.file_content(ended.error_file_id, "acme").decode()


async def test_a_failing_path_is_retried_then_reported(store):
    clock = Clock()

    async def answer(tenant, endpoint, body, request_id):
        raise RuntimeError("engine died")

    job = _job(store, clock, 1)
    await _until_done(_runner(store, clock, answer), clock)
    ended = store.job(job.id, "acme")
    assert ended.status == "completed" and ended.request_counts.failed == 1
    assert "engine died" in store.file_content(ended.error_file_id, "acme").decode()
