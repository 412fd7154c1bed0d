"""The ingress queue on the event loop: `scheduling.WaitQueue` per profile, with futures.

A request whose profile has a free batch slot goes at once (`turn` returns without awaiting),
and so does one whose tenant holds less than its fair share of the slots while headroom is
left (`scheduling.fair_headroom`), or one predicted short while an engine seat is free
(`scheduling.short_work_tokens`; both in `scheduling.headroom`); otherwise it waits,
and `Ticket.done` of a finishing request releases the next in key order
(tenant priority, fair shares, predicted work aged). A profile's slots: its running replicas
times its engine batch (`capacity`); a profile with no running replica is not held here
(Serve's own queue waits for the replica). Refusals (the tenant's queue full, a hot reload
that shrank it, or a wait past the tenant's `scheduling.max_wait_s`, fixed when the request was
queued) raise `QueueFull` (429 + Retry-After); a waiter cancelled (client gone) leaves
the queue at once, charged nothing; waiters of a profile whose engine failed get `ProfileLost`
(`evict`) and are planned again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.request.admission import held_by_queue
from orchestrator.scheduling import QueueRefusal, SchedulingSettings, Waiting, WaitQueue


class ProfileLost(Exception):
    """The profile a request waited for lost its engine: the request is planned again (another
    profile, else handed back with 429 and Retry-After). Nothing was generated for it."""

    def __init__(self, profile: str, retry_after_s: int) -> None:
        super().__init__(f"profile {profile!r} lost its engine while the request waited")
        self.profile = profile
        self.retry_after_s = retry_after_s


class QueueFull(Exception):
    """The tenant's queue for the profile is at its bound: 429 with Retry-After."""

    def __init__(self, refusal: QueueRefusal) -> None:
        if refusal.reason == "queue_timeout":
            message = f"the request of tenant {refusal.tenant!r} waited past its queue bound"
        else:
            reason = "shrunk by a policy reload" if refusal.reason == "queue_shrunk" else "full"
            message = f"the queue of tenant {refusal.tenant!r} is {reason}"
        super().__init__(f"{message}; retry later")
        self.retry_after_s = refusal.retry_after_s
        self.reason = refusal.reason


@dataclass
class Ticket:
    """One request's slot on a profile; `done` once when the request ends."""

    queue: IngressQueue
    profile: str
    tenant: str
    charged: float
    waited_s: float
    position: int  # requests ahead of it when it was queued (0: it did not wait)
    queued: bool = False  # it waited in the queue (False: a slot was free at once)
    borrowed: bool = False  # it started beyond the batch slots (its tenant below its share)
    _open: bool = True
    _accounted: bool = False

    def done(self, prompt_tokens: int = 0, output_tokens: int | None = None) -> None:
        """Free the slot (the next waiter goes); with `output_tokens`, the tenant's share is
        corrected from the predicted to the actual tokens."""
        if not self._open:
            return
        self._open = False
        self.queue.finished(self, prompt_tokens, output_tokens)

    def account(self, prompt_tokens: int, output_tokens: int) -> None:
        """The tenant's share: the actual tokens replace what was charged (once)."""
        if self._accounted:
            return
        self._accounted = True
        self.queue.settle(self, prompt_tokens, output_tokens)


class IngressQueue:
    def __init__(
        self,
        settings: SchedulingSettings,
        capacity: Callable[[str], int],
        clock: Callable[[], float] = time.monotonic,
        seats: Callable[[str], int] | None = None,
    ) -> None:
        self.settings = settings
        self.capacity = capacity  # batch slots per profile (running replicas x batch)
        self.seats = seats or capacity  # engine seats per profile (the short lane's bound)
        self.clock = clock
        self._queues: dict[str, WaitQueue] = {}
        self.busy: dict[str, int] = defaultdict(int)  # slots taken per profile
        # slots taken per profile and tenant (fair headroom)
        self.held: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def _queue(self, profile: str) -> WaitQueue:
        found = self._queues.get(profile)
        if found is None:
            found = self._queues[profile] = WaitQueue(self.settings, self.clock)
        return found

    def _room(self, profile: str) -> bool:
        cap = self.capacity(profile)
        return cap <= 0 or self.busy[profile] < cap

    def _borrow(self, profile: str, item: Waiting, queue: WaitQueue) -> bool:
        """`item`'s tenant is below its fair share of the busy slots and headroom is left, or
        `item` is predicted short and an engine seat is free (`scheduling.headroom`)."""
        slots = self.capacity(profile)
        if item.background or slots <= 0:
            return False
        busy = self.busy[profile]
        return self.settings.may_borrow(
            item.tenant, slots, busy, self.held[profile], queue.waiting_tenants()
        ) or self.settings.may_start_short(item.work, busy, self.seats(profile))

    def _short_head(self, profile: str, queue: WaitQueue) -> bool:
        """The request `pop` releases next is predicted short and an engine seat is free."""
        head = queue.peek()
        return (
            head is not None
            and not head.background
            and self.settings.may_start_short(head.work, self.busy[profile], self.seats(profile))
        )

    def _take(self, profile: str, tenant: str) -> None:
        self.busy[profile] += 1
        self.held[profile][tenant] += 1

    async def turn(self, profile: str, item: Waiting) -> Ticket:
        """A slot on `profile` for `item` (at once when one is free and nobody waits, or when
        its tenant may borrow one beyond the batch)."""
        queue = self._queue(profile)
        free = not len(queue) and self._room(profile)
        if free or self._borrow(profile, item, queue):
            self._take(profile, item.tenant)
            charged = queue.admit_now(item.tenant, item.charge)
            return Ticket(self, profile, item.tenant, charged, 0.0, 0, borrowed=not free)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        got = queue.push(
            Waiting(
                item.request_id,
                item.tenant,
                item.prompt_tokens,
                item.predicted_tokens,
                item.request_class,
                future,
                item.background,
            )
        )
        if isinstance(got, QueueRefusal):
            raise QueueFull(got)
        try:
            if got.max_wait_s is not None:
                await asyncio.wait((future,), timeout=got.max_wait_s)
                if not future.done() and (late := queue.time_out(item.request_id)) is not None:
                    raise QueueFull(late)
            released = await future
        except asyncio.CancelledError:
            if queue.cancel(item.request_id) is None and future.done() and not future.cancelled():
                # released just as the client left: give the slot to the next one
                self._free(profile, item.tenant)
                self.release(profile)
            raise
        return Ticket(
            self, profile, item.tenant, released.charged, released.waited_s, got.position, True
        )

    def places(self, tenant: str, background: bool = False) -> dict[str, int]:
        """Per profile with requests waiting: those of a request's priority class and better
        (`WaitQueue.waiting_through`), what routing prices as its queue wait."""
        return {
            name: queue.waiting_through(tenant, background=background)
            for name, queue in self._queues.items()
            if len(queue)
        }

    def bounded(self) -> dict[str, int]:
        """Per profile: the requests this queue bounds (`admission.held_by_queue`: waiting
        here, or seated beyond the batch by the headroom), which admission does not count."""
        return {
            name: n
            for name, queue in self._queues.items()
            if (n := held_by_queue(len(queue), self.busy[name], self.capacity(name)))
        }

    def release(self, profile: str) -> None:
        """Hand free slots of `profile` to the next waiters, in key order (a short one at the
        head also takes a free engine seat: the short lane)."""
        queue = self._queue(profile)
        while len(queue) and (self._room(profile) or self._short_head(profile, queue)):
            released = queue.pop()
            self._take(profile, released.item.tenant)
            released.item.payload.set_result(released)

    def _free(self, profile: str, tenant: str) -> None:
        self.busy[profile] -= 1
        self.held[profile][tenant] -= 1

    def finished(self, ticket: Ticket, prompt_tokens: int, output_tokens: int | None) -> None:
        self._free(ticket.profile, ticket.tenant)
        if output_tokens is not None:
            ticket.account(prompt_tokens, output_tokens)
        self.release(ticket.profile)

    def settle(self, ticket: Ticket, prompt_tokens: int, output_tokens: int) -> None:
        self._queue(ticket.profile).settle(
            ticket.tenant, ticket.charged, prompt_tokens, output_tokens
        )

    def reconfigure(self, settings: SchedulingSettings) -> int:
        """A policy reload: the new settings for every queue; waiters over a shrunk bound get
        429 with Retry-After (none is lost). Returns how many were refused (the settings
        in force again: none, at no cost)."""
        if settings is self.settings:
            return 0
        self.settings = settings
        refused = 0
        for queue in self._queues.values():
            for refusal in queue.reconfigure(settings):
                refusal.payload.set_exception(QueueFull(refusal))
                refused += 1
        return refused

    def evict(self, profile: str, startup_s: float) -> int:
        """`profile` lost its engine: every request waiting for it gets `ProfileLost` (its run
        plans it again; handed back, it is told to retry after the profile's `startup_s`, at
        least 1 s). Returns how many."""
        queue = self._queues.get(profile)
        if queue is None:
            return 0
        lost = queue.drain()
        retry_after_s = max(1, math.ceil(startup_s))
        for item in lost:
            item.payload.set_exception(ProfileLost(profile, retry_after_s))
        return len(lost)

    def snapshot(self) -> dict[str, dict]:
        """Per profile: slots taken and, per tenant, requests waiting and the oldest wait."""
        return {
            name: {"busy": self.busy[name], "waiting": len(q), "tenants": q.by_tenant()}
            for name, q in self._queues.items()
        }
