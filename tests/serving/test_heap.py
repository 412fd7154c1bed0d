"""`StartupHeap`: the replica's start, then its first requests, moved out of the collector."""

from __future__ import annotations

import gc

from orchestrator.serving.heap import StartupHeap


def test_start_and_first_requests_are_frozen_and_garbage_still_collected():
    heap = StartupHeap(settle_after=3)
    try:
        heap.freeze()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        later = [[i] for i in range(1000)]  # made by the first requests
        heap.request_done()
        heap.request_done()
        assert gc.get_freeze_count() == frozen
        heap.request_done()  # the third: frozen once more
        assert gc.get_freeze_count() >= frozen + len(later)
        heap.request_done()
        cycle: list = []
        cycle.append(cycle)  # garbage made after the freezes is still collected
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
