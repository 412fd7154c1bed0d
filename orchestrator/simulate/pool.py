"""One profile's pool in the simulated cluster: its replicas by state, the counters the
controller reads each tick, and the queue requests wait in for a replica.

Invariants: `ready + starting` is the pool's replica target; `serving` holds exactly the ready
replicas (dispatch picks from these; a draining replica is in `active` only); the waiting
queue is Serve's FIFO, or the product's ingress queue (`ScheduledQueue`) when the cluster
runs the scheduler; either refuses nothing but a tenant over its queue bound.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.scheduling import Enqueued, SchedulingSettings, Waiting, WaitQueue
from orchestrator.simulate.replica import STARTING, Job, ReplicaSpec


class FifoQueue(deque):
    """Serve's own queue for a full profile: first come, first served, unbounded."""

    def peek(self) -> Job:
        return self[0]

    def push(self, job: Job) -> bool:
        self.append(job)
        return True

    def admitted(self, job: Job) -> None:
        pass

    def settle(self, job: Job) -> None:
        pass

    def expired(self, now: float, timeout_s: float) -> list[tuple[Job, str, int]]:
        """Jobs past the clients' `timeout_s`, with the reason and HTTP status (as
        `ScheduledQueue.expired`)."""
        out = []
        while self and now - self[0].arrival_s > timeout_s:
            out.append((self.popleft(), "client_timeout", 503))
        return out


class ScheduledQueue:
    """The product's ingress queue (`orchestrator.scheduling.WaitQueue`) in virtual time."""

    def __init__(self, settings: SchedulingSettings, clock: Callable[[], float]) -> None:
        self.queue = WaitQueue(settings, clock)

    def __len__(self) -> int:
        return len(self.queue)

    def waiting_tenants(self) -> set[str]:
        return self.queue.waiting_tenants()

    @property
    def settings(self) -> SchedulingSettings:
        return self.queue.settings

    @staticmethod
    def _item(job: Job) -> Waiting:
        return Waiting(
            str(job.rid), job.tenant, job.prompt_tokens, job.predicted, job.request_class, job
        )

    def waiting_through(self, tenant: str) -> int:
        """Waiting jobs of `tenant`'s priority class and better (`WaitQueue.waiting_through`)."""
        return self.queue.waiting_through(tenant)

    def push(self, job: Job) -> bool:
        """Queue the job; False when its tenant's queue is full (refused: 429)."""
        return isinstance(self.queue.push(self._item(job)), Enqueued)

    def peek(self) -> Job:
        return self.queue.peek().payload

    def popleft(self) -> Job:
        released = self.queue.pop()
        job = released.item.payload
        job.charged = released.charged
        return job

    def admitted(self, job: Job) -> None:
        """The job went straight to a replica: its tenant's share is charged all the same."""
        job.charged = self.queue.admit_now(job.tenant, self._item(job).charge)

    def settle(self, job: Job) -> None:
        self.queue.settle(job.tenant, job.charged, job.prompt_tokens, job.tokens)

    def expired(self, now: float, timeout_s: float) -> list[tuple[Job, str, int]]:
        """Jobs that leave unserved, with the reason and HTTP status: past their tenant's wait
        bound (`scheduling.max_wait_s`: the server's 429 `queue_timeout`), or past the
        clients' `timeout_s` (`client_timeout`, a miss the server never answers: 503)."""
        out = [(rid, "queue_timeout", 429) for rid in self.queue.overdue()]
        bounded = {rid for rid, _, _ in out}
        out += [
            (rid, "client_timeout", 503)
            for rid in self.queue.older_than(timeout_s)
            if rid not in bounded
        ]
        return [(self.queue.cancel(rid).payload, reason, status) for rid, reason, status in out]


@dataclass(slots=True, eq=False)
class Pool:
    """All replicas of one profile."""

    index: int
    spec: ReplicaSpec
    min_replicas: int
    max_replicas: int
    active: list = field(default_factory=list)  # starting, ready and draining replicas
    serving: list = field(default_factory=list)  # the ready ones (dispatch picks from these)
    retired: list = field(default_factory=list)  # stopped replicas (kept for billing)
    pending: FifoQueue | ScheduledQueue = field(default_factory=FifoQueue)  # for a replica
    arrivals: int = 0  # routed here since the last controller tick
    arrived_tokens: int = 0  # their true output tokens
    arrived_prompt_tokens: int = 0
    predicted_tokens: float = 0.0  # their predicted tokens (set by the router)
    # refused for capacity, meant for this pool (set by the router); a request admission shed
    # counts a share on each pool it could have used, so these are fractional
    refused: float = 0.0
    refused_prompt_tokens: float = 0.0
    refused_predicted_tokens: float = 0.0
    window_ttft_ms: list = field(default_factory=list)  # finished since the controller read them
    window_tpot_ms: list = field(default_factory=list)
    window_judged: list = field(default_factory=list)  # (rid, TTFT s, TPOT s or None)
    window_settled: list = field(default_factory=list)  # (sized, generated) output tokens
    in_flight: int = 0  # admitted + waiting on replicas
    held: dict = field(default_factory=dict)  # tenant -> its requests on replicas (scheduler)
    ready: int = 0
    starting: int = 0
    draining: int = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def ongoing(self) -> int:
        """Requests in the profile: on replicas plus waiting for one (Serve's ongoing)."""
        return self.in_flight + len(self.pending)

    @property
    def target(self) -> int:
        return self.ready + self.starting

    def first_ready_s(self) -> float:
        """When the first starting replica serves (inf: none starting)."""
        return min((r.ready_s for r in self.active if r.state == STARTING), default=math.inf)
