"""`BackgroundBatches`: items put close together go in one batch, in order; a full batch goes
at once; a failed batch is only logged; `drain` runs what waits."""

from __future__ import annotations

import asyncio
import logging

from orchestrator.serving.background_batches import BackgroundBatches


class Runs:
    def __init__(self, bad: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.bad = bad

    def run_many(self, items: list[int]) -> None:
        if self.bad in items:
            raise ValueError(f"bad item in {items}")
        self.batches.append(list(items))


async def test_items_put_within_the_delay_go_in_one_batch_in_order():
    runs = Runs()
    batches = BackgroundBatches(runs.run_many, delay_s=0.05)
    for i in range(5):
        batches.put(i)
    assert runs.batches == []  # nothing yet: no hop per item
    await asyncio.sleep(0.2)
    batches.put(5)
    await asyncio.sleep(0.2)
    assert runs.batches == [[0, 1, 2, 3, 4], [5]]


async def test_a_full_batch_goes_at_once_and_drain_runs_the_rest():
    runs = Runs()
    batches = BackgroundBatches(runs.run_many, delay_s=60, max_batch=3)
    for i in range(7):
        batches.put(i)
    await asyncio.sleep(0.05)
    assert runs.batches[0] == [0, 1, 2]  # did not wait the minute
    await batches.drain()
    assert runs.batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_a_failed_batch_is_logged_and_the_next_still_runs(caplog):
    runs = Runs(bad=1)
    batches = BackgroundBatches(runs.run_many, delay_s=0.01)
    with caplog.at_level(logging.WARNING, logger="orchestrator.ingress"):
        batches.put(1)
        await batches.drain()
        batches.put(2)
        await batches.drain()
    assert runs.batches == [[2]]
    assert "background batch of 1 failed" in caplog.text


async def test_items_put_while_a_batch_runs_go_next_without_another_put():
    """What arrives while a batch is in the worker thread is run `delay_s` after it, not
    left waiting for the next request (a burst's last rows would teach nothing)."""
    started, release = asyncio.Event(), asyncio.Event()
    runs = Runs()

    async def slow_offload(fn, items):
        started.set()
        await release.wait()
        return fn(items)

    batches = BackgroundBatches(runs.run_many, slow_offload, delay_s=0.01)
    batches.put(0)
    await asyncio.wait_for(started.wait(), 1)
    batches.put(1)  # the first batch is still running
    release.set()
    await asyncio.sleep(0.2)
    assert runs.batches == [[0], [1]]
