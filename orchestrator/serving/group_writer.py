"""Group commit: the writes of many requests, one worker-thread job and one transaction per group.

    writer = GroupWriter(write_many)   # write_many(items) -> None, blocking (a transaction)
    await writer.write(item)           # returns once `item` is written; raises its error

Writes submitted while a group is being written form the next group, so at load each request
pays a share of one thread hop and one commit instead of its own; a lone write waits for
nothing. Invariants: items are written in submission order, one group at a time (a later write
for the same key lands after an earlier one); a group that fails is retried item by item in the
same job, so a bad item fails only its own `write`; a caller cancelled while waiting does not
cancel its write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Offload = Callable[..., Awaitable[Any]]


class GroupWriter(Generic[T]):
    """Coalesces writes into groups (see the module docstring)."""

    def __init__(
        self,
        write_many: Callable[[list[T]], Any],
        offload: Offload = asyncio.to_thread,
        max_group: int = 256,
    ):
        self.write_many = write_many
        self.offload = offload
        self.max_group = max_group
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def submit(self, item: T) -> asyncio.Future[None]:
        """Queue `item`; the future is done when it is written (or failed)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((item, done))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return done

    async def write(self, item: T) -> None:
        """Write `item` with whatever else is waiting; shielded from the caller's cancel."""
        await asyncio.shield(self.submit(item))

    async def _flush(self) -> None:
        try:
            while self._pending:
                group = self._pending[: self.max_group]
                del self._pending[: self.max_group]
                try:
                    errors = await self.offload(self._write_group, [item for item, _ in group])
                except asyncio.CancelledError:  # the loop is closing: nothing more is written
                    for _, done in group + self._pending:
                        done.cancel()
                    self._pending.clear()
                    raise
                except Exception as exc:  # the job itself failed
                    errors = [exc] * len(group)
                for (_, done), error in zip(group, errors, strict=True):
                    if done.done():
                        continue
                    if error is None:
                        done.set_result(None)
                    else:
                        done.set_exception(error)
        finally:
            self._flusher = None

    def _write_group(self, items: list[T]) -> list[BaseException | None]:
        """Worker thread: the group in one call; failed, each item alone."""
        try:
            self.write_many(items)
            return [None] * len(items)
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        errors: list[BaseException | None] = []
        for item in items:
            try:
                self.write_many([item])
                errors.append(None)
            except Exception as exc:
                errors.append(exc)
        return errors
