"""The ingress's heap and Python's cyclic garbage collector.

    heap = StartupHeap()
    heap.freeze()            # at the end of the replica's start
    heap.request_done()      # after each request: once more after the first `settle_after`

An ingress replica starts with ~760,000 Python objects (Ray, vLLM's protocol, the predictor):
a full (generation 2) collection walks all of them, ~0.5-1.3 s of the event loop on a 2-core
EPYC, and one comes whenever enough survivors piled up, stalling every request in flight (the
added p99 at load). Objects alive at start live as long as the replica, so they are moved out
of the collector's generations (`gc.freeze`): a full collection then walks only what came
after. What the first requests create lazily (caches, handles' routers) is frozen once more.
Invariant: garbage is still collected (frozen objects that die are freed by reference
counting; only cycles among them would stay).
"""

from __future__ import annotations

import gc


class StartupHeap:
    """Freezes the objects of the replica's start, and those of its first requests."""

    def __init__(self, settle_after: int = 200):
        self.settle_after = settle_after
        self.requests = 0

    def freeze(self) -> None:
        """Collect what is garbage now, then move every live object out of the collector."""
        gc.collect()
        gc.freeze()

    def request_done(self) -> None:
        self.requests += 1
        if self.requests == self.settle_after:
            self.freeze()  # walks only what came since the first freeze
