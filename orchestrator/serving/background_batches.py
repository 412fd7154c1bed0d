"""Best-effort work done in batches off the event loop, after the requests that asked for it.

    learning = BackgroundBatches(observe_many, delay_s=0.1)   # observe_many(items), blocking
    learning.put(item)     # queued; no thread hop now
    await learning.drain() # what is queued, done now (tests, shutdown)

A batch starts `delay_s` after the first item queued while none is running, or at once when
`max_batch` items wait; so at load each item pays a share of one worker-thread hop and of one
`run_many` (e.g. one store transaction) instead of its own. Invariants: items reach `run_many`
in the order they were put, one batch at a time; a failed batch is logged, never raised to
whoever put its items; items still queued when the event loop closes are dropped (use it only
for work that may be lost, e.g. the predictor's online calibration).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("orchestrator.ingress")


class BackgroundBatches(Generic[T]):
    """Queues items and hands them to `run_many` in batches (see the module docstring)."""

    def __init__(
        self,
        run_many: Callable[[list[T]], Any],
        offload: Callable[..., Awaitable[Any]] = asyncio.to_thread,
        *,
        delay_s: float = 0.1,
        max_batch: int = 64,
    ):
        self.run_many, self.offload = run_many, offload
        self.delay_s, self.max_batch = delay_s, max_batch
        self._pending: list[T] = []
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def put(self, item: T) -> None:
        """Queue `item` (event loop); it is run within about `delay_s`."""
        self._pending.append(item)
        if self._task is not None:
            return  # the running batch schedules the next
        if len(self._pending) >= self.max_batch:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay_s, self._start)

    async def drain(self) -> None:
        """Run everything queued now and wait until it is done."""
        while self._pending or self._task is not None:
            self._start()
            if self._task is not None:
                await asyncio.shield(self._task)

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is None and self._pending:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        batch = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        try:
            await self.offload(self.run_many, batch)
        except Exception:
            log.warning("a background batch of %d failed", len(batch), exc_info=True)
        finally:
            self._task = None
            if len(self._pending) >= self.max_batch:
                self._start()
            elif self._pending:
                self._timer = asyncio.get_running_loop().call_later(self.delay_s, self._start)
