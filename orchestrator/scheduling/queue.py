"""The ingress wait queue: requests a profile cannot take now, released in key order.

One `WaitQueue` per profile. Pure and synchronous, with an injected clock: the server wraps it
in asyncio (a released request's future is set) and the simulator calls it in virtual time.
Release order: the best priority class with anyone waiting; in it, the tenant with the least
virtual token counter (`fairness.py`); of that tenant, the smallest `OrderKey` (`key.py`).
Invariants: every pushed request leaves exactly once, released by `pop`, removed by `cancel`
(charged nothing), or refused (`QueueRefusal`: 429 with Retry-After) by `push` over the
tenant's bound or by `reconfigure` when a hot reload shrinks the bound (the latest in key
order go first; none is lost).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.scheduling.fairness import VirtualTokenCounter
from orchestrator.scheduling.key import OrderKey, order_work, predicted_work
from orchestrator.scheduling.settings import SchedulingSettings

_WAIT_EMA = 0.2
# predicted output tokens charged up front: a long request charged whole at release would hold
# its tenant back while it runs (measured: a light tenant's TTFT p95 12 s instead of 1.6 s
# beside a tenant at 10x its rate, tests/simulate/test_scheduling.py)
CHARGE_QUANTUM = 256  # weight of the newest release in the typical wait (Retry-After)


@dataclass(frozen=True)
class Waiting:
    """A request that waits: who sent it, what it is predicted to need, and the caller's
    handle (`payload`: the simulator's job, the server's future), returned untouched."""

    request_id: str
    tenant: str
    prompt_tokens: int = 0
    predicted_tokens: float = 0.0  # predicted output tokens
    request_class: str = "standard"
    payload: Any = None
    background: bool = False  # a batch line: after every tenant's interactive requests

    @property
    def work(self) -> float:
        return predicted_work(self.prompt_tokens, self.predicted_tokens)

    @property
    def order_work(self) -> float:
        """Its work for the order (`key.order_work`: how long it holds a batch slot)."""
        return order_work(self.prompt_tokens, self.predicted_tokens)

    @property
    def charge(self) -> float:
        """What its tenant's counter is charged when it leaves the queue: the prefill and at
        most `CHARGE_QUANTUM` predicted output tokens (the rest when it settles, as served)."""
        return predicted_work(self.prompt_tokens, min(self.predicted_tokens, CHARGE_QUANTUM))


@dataclass(frozen=True)
class Enqueued:
    request_id: str
    key: OrderKey
    position: int  # requests that would leave before it, when it was queued
    enqueued_s: float
    max_wait_s: float | None = None  # its wait bound (None: none)


@dataclass(frozen=True)
class QueueRefusal:
    """429 with Retry-After: the tenant's queue is at its bound (`queue_full`), shrunk by a
    reload (`queue_shrunk`), or the request waited past its bound (`queue_timeout`)."""

    request_id: str
    tenant: str
    retry_after_s: int
    payload: Any = None
    reason: str = "queue_full"


@dataclass(frozen=True)
class Released:
    item: Waiting
    key: OrderKey
    waited_s: float
    charged: float  # work charged to the tenant's counter (correct it with `settle`)


@dataclass(slots=True)
class _Tenant:
    heap: list = field(default_factory=list)  # (OrderKey, request_id)
    count: int = 0
    # its waiting requests' keys in order and the running sums of their charges (prefix[0]
    # = 0); built on demand, dropped whenever one of its requests comes or goes
    view: tuple[list[OrderKey], list[float]] | None = None


class WaitQueue:
    def __init__(self, settings: SchedulingSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.counter = VirtualTokenCounter()
        self._classes: dict[int, dict[str, _Tenant]] = {}  # class_rank -> tenant -> queue
        self._items: dict[str, tuple[Waiting, OrderKey, float]] = {}  # id -> item, key, since
        self._due: dict[str, float] = {}  # id -> when its wait bound ends (bounded ones only)
        self._seq = 0
        self._typical_wait_s = 0.0

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._items

    def waiting_tenants(self) -> set[str]:
        """The tenants with a request waiting."""
        return {t for c in self._classes.values() for t, q in c.items() if q.count}

    def queued(self, tenant: str) -> int:
        return sum(c[tenant].count for c in self._classes.values() if tenant in c)

    def by_tenant(self) -> dict[str, dict[str, float]]:
        """Per tenant: requests waiting, its priority class, and its oldest wait in seconds."""
        now = self.clock()
        out: dict[str, dict[str, float]] = {}
        for item, key, since in self._items.values():
            row = out.setdefault(
                item.tenant, {"queued": 0, "priority": -key.class_rank, "oldest_wait_s": 0.0}
            )
            row["queued"] += 1
            row["oldest_wait_s"] = max(row["oldest_wait_s"], now - since)
        return out

    def ahead_of(
        self, tenant: str, request_class: str, work: float, *, background: bool = False
    ) -> int:
        """About how many waiting requests would leave before a new one of `tenant` with
        `work` for the order (`key.order_work`): its place in the release order, not the
        queue's length (see `_ahead`). 0 when nothing waits."""
        if not self._items:
            return 0
        key = self.settings.key_for(
            tenant, request_class, work, self.clock(), self._seq + 1, background=background
        )
        return self._ahead(tenant, key)

    def waiting_through(self, tenant: str, *, background: bool = False) -> int:
        """Waiting requests of a new request's priority class and every better one: the wait
        routing prices (`PlanState.ahead`). Not its place in the fair order (`ahead_of`):
        that place is where it would leave were nothing else to arrive, but a fair share
        in another tenant's backlog is capacity taken from that tenant, and a short
        predicted place is overtaken by later shorter arrivals; priced as a place, it drew
        a tenant's short requests into another's one-replica pool while it saturated (Azure
        x10 cold: 442 chat/internal requests, their TTFT 5.6 s priced 4.8, the batch
        tenant's TTFT 20 -> 56 s; docs/benchmark.md, session 17). Worse classes never count:
        they leave after it whatever comes."""
        if not self._items:
            return 0
        rank = -self.settings.priority(tenant, background=background)
        return sum(q.count for r, c in self._classes.items() if r <= rank for q in c.values())

    def _ahead(self, tenant: str, key: OrderKey) -> int:
        """Waiting requests released before one of `tenant` with `key`: every request of a
        better class, the tenant's own with a smaller key, and of each other tenant of its
        class those released while that tenant's virtual counter stays below this tenant's
        (after the lift a tenant gets when it starts waiting, and its own earlier requests'
        charges). O(tenants x log waiting) on each tenant's cached `_view`."""
        ahead = sum(
            q.count
            for rank, c in self._classes.items()
            if rank < key.class_rank
            for q in c.values()
        )
        tenants = self._classes.get(key.class_rank, {})
        waiting = [t for t, q in tenants.items() if q.count]
        mine = self.counter.served(tenant)
        if tenant not in waiting:
            floor = min((self.counter.served(t) for t in waiting), default=mine)
            mine = max(mine, floor)
        else:  # its own requests with a smaller key leave first, each charge raising it
            keys, charges = self._view(tenants[tenant])
            before = bisect.bisect_left(keys, key)
            ahead += before
            mine += charges[before] / self.settings.weight(tenant)
        for other in waiting:
            if other == tenant:
                continue
            keys, charges = self._view(tenants[other])
            # its i-th request leaves first while (served + charges[i] / weight, other) is
            # below (mine, tenant): charges only grow, so the count is a bisection
            room = (mine - self.counter.served(other)) * self.settings.weight(other)
            side = bisect.bisect_right if other < tenant else bisect.bisect_left
            ahead += min(len(keys), side(charges, room))
        return ahead

    def _view(self, queue: _Tenant) -> tuple[list[OrderKey], list[float]]:
        """`queue`'s waiting keys in order with the running sums of their charges."""
        if queue.view is None:
            live = sorted(
                (key, max(0.0, found[0].charge))
                for key, rid in queue.heap
                if (found := self._items.get(rid)) is not None and found[1] == key
            )
            charges = [0.0]
            for _, charge in live:
                charges.append(charges[-1] + charge)
            queue.view = ([key for key, _ in live], charges)
        return queue.view

    def retry_after_s(self) -> int:
        """Seconds a refused client should wait: the typical recent wait (at least 1)."""
        return max(1, math.ceil(self._typical_wait_s))

    # ------------------------------------------------------------------ changing
    def push(self, item: Waiting) -> Enqueued | QueueRefusal:
        """Queue `item`, or refuse it when its tenant already has `max_queued` waiting."""
        share = self.settings.share(item.tenant)
        if self.queued(item.tenant) >= share.max_queued:
            return QueueRefusal(item.request_id, item.tenant, self.retry_after_s(), item.payload)
        now = self.clock()
        self._seq += 1
        key = self.settings.key_for(
            item.tenant,
            item.request_class,
            item.order_work,
            now,
            self._seq,
            background=item.background,
        )
        position = self._ahead(item.tenant, key)
        tenants = self._classes.setdefault(key.class_rank, {})
        queue = tenants.get(item.tenant)
        if queue is None or queue.count == 0:
            self.counter.lift(item.tenant, [t for t, q in tenants.items() if q.count])
            queue = tenants.setdefault(item.tenant, _Tenant())
        heapq.heappush(queue.heap, (key, item.request_id))
        queue.count += 1
        queue.view = None
        self._items[item.request_id] = (item, key, now)
        bound = self.settings.max_wait_s(item.tenant, item.request_class)
        if bound is not None:
            self._due[item.request_id] = now + bound
        return Enqueued(item.request_id, key, position, now, bound)

    def _head(self) -> tuple[str, _Tenant] | None:
        """The tenant whose request leaves next, its queue's head cleaned of stale entries."""
        for rank in sorted(self._classes):
            tenants = self._classes[rank]
            tenant = self.counter.least(t for t, q in tenants.items() if q.count)
            if tenant is None:
                continue
            queue = tenants[tenant]
            while queue.heap:
                key, rid = queue.heap[0]
                found = self._items.get(rid)
                if found is not None and found[1] == key:
                    return tenant, queue
                heapq.heappop(queue.heap)  # cancelled or refused earlier (lazy deletion)
        return None

    def peek(self) -> Waiting | None:
        """The request `pop` would release now, left in place."""
        head = self._head()
        return None if head is None else self._items[head[1].heap[0][1]][0]

    def pop(self) -> Released | None:
        """The next request to release (None: nothing waits); charges its tenant."""
        head = self._head()
        if head is None:
            return None
        tenant, queue = head
        key, rid = heapq.heappop(queue.heap)
        item, _, since = self._items.pop(rid)
        self._due.pop(rid, None)
        queue.count -= 1
        queue.view = None
        waited = self.clock() - since
        self._typical_wait_s += _WAIT_EMA * (waited - self._typical_wait_s)
        return Released(item, key, waited, self.admit_now(tenant, item.charge))

    def admit_now(self, tenant: str, work: float) -> float:
        """A request of `tenant` went straight through (nothing waited): it is charged like a
        released one, so shares count every token served. Returns the charge (see `settle`)."""
        self.counter.charge(tenant, work, self.settings.share(tenant).weight)
        return work

    def older_than(self, seconds: float) -> list[str]:
        """Ids of the requests that have waited longer than `seconds` (for a wait timeout)."""
        limit = self.clock() - seconds
        return [rid for rid, (_, _, since) in self._items.items() if since < limit]

    def overdue(self) -> list[str]:
        """Ids of the requests past their wait bound (`scheduling.max_wait_s`, fixed when
        each was queued): each should leave with 429 `queue_timeout` (`time_out`)."""
        now = self.clock()
        return [rid for rid, due in self._due.items() if due < now]

    def time_out(self, request_id: str) -> QueueRefusal | None:
        """`request_id` waited past its bound: it leaves, charged nothing; its refusal (429
        `queue_timeout` with Retry-After), or None when it no longer waits."""
        item = self.cancel(request_id)
        if item is None:
            return None
        return QueueRefusal(
            request_id, item.tenant, self.retry_after_s(), item.payload, "queue_timeout"
        )

    def cancel(self, request_id: str) -> Waiting | None:
        """The client went away: the request leaves at once and is charged nothing."""
        found = self._items.pop(request_id, None)
        if found is None:
            return None
        self._due.pop(request_id, None)
        item, key, _ = found
        queue = self._classes[key.class_rank][item.tenant]
        queue.count -= 1
        queue.view = None
        return item

    def drain(self) -> list[Waiting]:
        """Everything waiting leaves, in key order, charged nothing (the profile it waits for
        was lost: each goes back to its request to be planned again)."""
        order = sorted((key, rid) for rid, (_, key, _) in self._items.items())
        return [item for _, rid in order if (item := self.cancel(rid)) is not None]

    def settle(self, tenant: str, charged: float, prompt_tokens: int, output_tokens: int) -> None:
        """A released request finished: its counter holds the actual work, not the predicted."""
        actual = predicted_work(prompt_tokens, output_tokens)
        self.counter.correct(tenant, charged, actual, self.settings.share(tenant).weight)

    def reconfigure(self, settings: SchedulingSettings) -> list[QueueRefusal]:
        """A hot reload: new settings for what comes next (queued keys stay); a tenant over
        its new bound loses its latest requests in key order, refused with Retry-After."""
        self.settings = settings
        refused: list[QueueRefusal] = []
        retry = self.retry_after_s()
        for tenant in {item.tenant for item, _, _ in self._items.values()}:
            excess = self.queued(tenant) - settings.share(tenant).max_queued
            if excess <= 0:
                continue
            mine = sorted(
                (key, rid) for rid, (item, key, _) in self._items.items() if item.tenant == tenant
            )
            for _, rid in mine[-excess:]:
                item = self.cancel(rid)
                if item is not None:
                    refused.append(QueueRefusal(rid, tenant, retry, item.payload, "queue_shrunk"))
        return refused
