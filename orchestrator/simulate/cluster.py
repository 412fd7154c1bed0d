"""The simulated cluster: one pool of replicas per profile, driven by a heap of events.

`Cluster.run` replays the requests in virtual time for ONE policy (a router + a controller).
Events: replica ready, first token, finish (stale ones skipped by version), controller tick;
arrivals are merged from the sorted request list. Invariants checked by the tests: every
request ends exactly once, either served (`profile >= 0`) or rejected with a reason; a replica
is billed from its scale-up decision until it stops; a draining replica takes no new request.
A pool's replicas and queue: `pool.py`; which replica takes a request: `replica_choice.py`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from orchestrator.scheduling import SchedulingSettings
from orchestrator.scheduling.key import predicted_work
from orchestrator.simulate.pool import Pool, ScheduledQueue
from orchestrator.simulate.replica import (
    DRAINING,
    READY,
    STARTING,
    STOPPED,
    Job,
    Replica,
    ReplicaSpec,
)
from orchestrator.simulate.replica_choice import pick_replica
from orchestrator.simulate.traffic import SimRequest

_READY, _FIRST, _FINISH, _TICK = 0, 1, 2, 3


@dataclass(slots=True)
class Routed:
    profile: int  # index into the cluster's pools
    tokens: int  # tokens it will generate (true length, capped by the decision)
    truncated: bool = False
    predicted: float | None = None  # predicted output tokens (scheduling; None: unknown)
    request_class: str = "standard"
    sized: float = 0.0  # output tokens the planner sized it at (0: not sized; planning/level)


@dataclass(slots=True)
class Rejected:
    reason: str
    status: int = 503  # the HTTP status the server answers it with (attainment.judged)


class Router(Protocol):
    def route(self, req: SimRequest, cluster: Cluster, now: float) -> Routed | Rejected: ...


class Controller(Protocol):
    """Called every cluster tick; returns replica targets per pool, or None for no change."""

    def initial(self, cluster: Cluster) -> list[int]: ...

    def tick(self, cluster: Cluster, now: float) -> list[int] | None: ...


@dataclass
class Outcome:
    """Per-request results of one policy (arrays indexed by rid)."""

    profile: np.ndarray  # int16, -1 = rejected
    ttft_s: np.ndarray
    e2e_s: np.ndarray
    tokens: np.ndarray  # tokens generated
    truncated: np.ndarray
    reject_reason: list  # str or None
    reject_status: np.ndarray | None = None  # int16 HTTP status of a refusal (0: served)
    # seconds from arrival to a replica (the ingress queue's wait; NaN: not served)
    queued_s: np.ndarray | None = None
    served_twice: int = 0
    timeline: list = field(default_factory=list)  # (t, replicas per pool, ongoing per pool)
    replica_cost: np.ndarray | None = None  # USD per pool
    replica_hours: np.ndarray | None = None
    end_s: float = 0.0


class Cluster:
    def __init__(
        self,
        specs: Sequence[ReplicaSpec],
        bounds: Sequence[tuple[int, int]],
        *,
        seed: int = 0,
        queue_timeout_s: float = 600.0,
        scheduling: SchedulingSettings | None = None,
    ) -> None:
        """`scheduling`: the product's scheduler (ingress queue in key order, engines by
        priority, replicas by predicted outstanding work); None: Serve's and vLLM's defaults
        (FIFO queues, the less loaded of two random replicas)."""
        self.pools = [
            Pool(i, s, lo, hi) for i, (s, (lo, hi)) in enumerate(zip(specs, bounds, strict=True))
        ]
        self.scheduling = scheduling
        if scheduling is not None:
            for pool in self.pools:
                pool.pending = ScheduledQueue(scheduling, lambda: self.now)
        self.by_name = {p.name: p for p in self.pools}
        self.rng = np.random.default_rng([seed, 11])
        self.queue_timeout_s = queue_timeout_s
        self._heap: list = []
        self._seq = 0
        self._replica_ids = 0
        self.now = 0.0
        self.done = np.zeros(0, dtype=bool)  # per request of the run: served or refused

    # ------------------------------------------------------------------ scheduling
    def _push(self, t: float, kind: int, a: Any, b: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, a, b))

    def _reschedule(self, r: Replica) -> None:
        t = r.next_finish_s()
        if t is not None:
            self._push(t, _FINISH, r, r.version)

    # ------------------------------------------------------------------ scaling
    def scale(self, pool: Pool, target: int, now: float) -> None:
        """Start or stop replicas until `target` are starting or ready (bounds applied)."""
        target = max(pool.min_replicas, min(pool.max_replicas, target))
        while pool.target < target:
            self._replica_ids += 1
            r = Replica(pool.spec, self._replica_ids, now, now + pool.spec.startup_s)
            pool.active.append(r)
            pool.starting += 1
            self._push(r.ready_s, _READY, r, pool)
        while pool.target > target:
            starting = [r for r in pool.active if r.state == STARTING]
            if starting:  # cancel the youngest start first
                r = max(starting, key=lambda x: x.started_s)
                pool.starting -= 1
                self._stop(pool, r, now)
                continue
            r = min(pool.serving, key=lambda x: x.load)
            pool.serving.remove(r)
            pool.ready -= 1
            if r.load == 0:
                self._stop(pool, r, now)
            else:
                r.state = DRAINING
                pool.draining += 1

    def start_warm(self, pool: Pool, n: int) -> None:
        """Replicas already running at t=0 (billed from 0)."""
        for _ in range(max(0, n)):
            self._replica_ids += 1
            r = Replica(pool.spec, self._replica_ids, 0.0, 0.0, state=READY)
            pool.active.append(r)
            pool.serving.append(r)
            pool.ready += 1

    def _stop(self, pool: Pool, r: Replica, now: float) -> None:
        if r.state == DRAINING:
            pool.draining -= 1
        r.state = STOPPED
        r.stopped_s = now
        r.version += 1
        pool.active.remove(r)
        pool.retired.append(r)

    # ------------------------------------------------------------------ dispatch
    def _place(self, pool: Pool, r: Replica, job: Job, now: float) -> None:
        job.placed_s = now
        pool.in_flight += 1
        r.outstanding += job.work
        if self.scheduling is not None:
            pool.held[job.tenant] = pool.held.get(job.tenant, 0) + 1
        if r.admitted < r.spec.cap or (job.borrowed and r.admitted < r.spec.engine_cap):
            self._push(r.admit(job, now), _FIRST, r, job)
        else:  # the engine's waiting queue: by priority, then arrival (vLLM's order)
            self._seq += 1
            heapq.heappush(r.waiting, (job.priority, self._seq, job))

    def dispatch(self, pool: Pool, job: Job, now: float) -> bool:
        """To a replica with room, else the profile's queue (behind any request already
        there); False when the queue refuses it (its tenant's queue is full)."""
        r = (
            pick_replica(pool, job, self.rng, self.scheduling is not None, now)
            if not pool.pending
            else None
        )
        if r is None:
            r = self._borrowed(pool, job)
        if r is None:
            return pool.pending.push(job)
        pool.pending.admitted(job)
        self._place(pool, r, job, now)
        return True

    def _short_seat(self, pool: Pool, job: Job) -> Replica | None:
        """The short lane for the queue's head (as the server's `IngressQueue.release`): a job
        predicted short starts in a free engine seat when no batch slot is free."""
        if self.scheduling is None or not pool.serving:
            return None
        seats = len(pool.serving) * pool.spec.engine_cap
        if not self.scheduling.may_start_short(job.work, pool.in_flight, seats):
            return None
        return _beyond_batch(pool, job)

    def _borrowed(self, pool: Pool, job: Job) -> Replica | None:
        """The ingress's headroom (`scheduling.headroom`): a job whose tenant holds less than
        its share of the pool's busy slots, or a job predicted short while engine seats are
        free (the short lane), starts on the least loaded replica with room."""
        if self.scheduling is None or not pool.serving:
            return None
        slots = len(pool.serving) * pool.spec.cap
        held, waiting = pool.held, pool.pending.waiting_tenants()
        if self.scheduling.may_borrow(job.tenant, slots, pool.in_flight, held, waiting):
            return _beyond_batch(pool, job)
        return self._short_seat(pool, job)

    def _drain_pending(self, pool: Pool, now: float) -> None:
        while pool.pending:
            head = pool.pending.peek()
            r = pick_replica(pool, head, self.rng, self.scheduling is not None, now)
            if r is None:
                r = self._short_seat(pool, head)
            if r is None:
                return
            job = pool.pending.popleft()
            self._place(pool, r, job, now)

    # ------------------------------------------------------------------ the loop
    def run(
        self,
        requests: Sequence[SimRequest],
        router: Router,
        controller: Controller,
        *,
        progress: Callable[[int], None] | None = None,
        tick_s: float = 10.0,
        billed_from_s: float = 0.0,
    ) -> Outcome:
        """Replay `requests`; replica time before `billed_from_s` (a warm-up) is not counted."""
        n = len(requests)
        out = Outcome(
            profile=np.full(n, -1, dtype=np.int16),
            ttft_s=np.full(n, np.nan),
            e2e_s=np.full(n, np.nan),
            tokens=np.zeros(n, dtype=np.int64),
            truncated=np.zeros(n, dtype=bool),
            reject_reason=[None] * n,
            reject_status=np.zeros(n, dtype=np.int16),
            queued_s=np.full(n, np.nan),
        )
        done = np.zeros(n, dtype=bool)
        dropped = getattr(router, "dropped", None)  # ours: the tenant's quality account
        self.done = done

        def finish_reject(rid: int, reason: str, status: int = 503) -> None:
            if dropped is not None and out.profile[rid] >= 0 and not done[rid]:
                dropped(rid)  # routed, then refused before a replica took it
            if done[rid]:
                out.served_twice += 1
            done[rid] = True
            out.reject_reason[rid] = reason
            out.reject_status[rid] = status
            out.profile[rid] = -1  # routed, then dropped before a replica took it
            out.truncated[rid] = False

        for pool, k in zip(self.pools, controller.initial(self), strict=True):
            self.start_warm(pool, max(pool.min_replicas, min(pool.max_replicas, k)))
        self._push(0.0, _TICK, None)
        i = 0
        finished = 0
        heap = self._heap
        live = 0  # requests routed and not finished
        step = max(1, n // 200)
        while True:
            next_arrival = requests[i].arrival_s if i < n else math.inf
            if heap and heap[0][0] <= next_arrival:
                t, _, kind, a, b = heapq.heappop(heap)
            elif i < n:
                t, kind = next_arrival, -1
            else:
                break
            self.now = t
            if kind == -1:  # arrival
                req = requests[i]
                i += 1
                if progress is not None and i % step == 0:
                    progress(i)
                res = router.route(req, self, t)
                if isinstance(res, Rejected):
                    finish_reject(req.rid, res.reason, res.status)
                    continue
                pool = self.pools[res.profile]
                pool.arrivals += 1
                pool.arrived_tokens += res.tokens
                pool.arrived_prompt_tokens += req.prompt_tokens
                out.profile[req.rid] = res.profile
                out.truncated[req.rid] = res.truncated
                live += 1
                job = Job(req.rid, req.prompt_tokens, res.tokens, t, blocks=req.prefix_blocks)
                job.sized = res.sized
                if self.scheduling is not None:
                    self._schedule(job, req.tenant, res)
                if not self.dispatch(pool, job, t):
                    finish_reject(req.rid, "queue_full", 429)  # the ingress queue's bound
                    live -= 1
            elif kind == _FIRST:
                r, job = a, b
                if r.state == STOPPED:  # cannot happen: stopped replicas are empty
                    raise AssertionError("first token on a stopped replica")
                if job.due_s > t:  # prefills admitted beside it since moved it later
                    self._push(job.due_s, _FIRST, r, job)
                    continue
                job.first_s = t
                self._seq += 1
                r.start_decoding(job, t, self._seq)
                self._reschedule(r)
            elif kind == _FINISH:
                r = a
                if b != r.version:
                    continue
                job = r.pop_finished(t)
                pool = self.by_name[r.spec.name]
                pool.in_flight -= 1
                r.outstanding -= job.work
                pool.pending.settle(job)
                if self.scheduling is not None:
                    pool.held[job.tenant] -= 1
                rid = job.rid
                if done[rid]:
                    out.served_twice += 1
                done[rid] = True
                out.ttft_s[rid] = job.first_s - job.arrival_s
                out.e2e_s[rid] = t - job.arrival_s
                out.queued_s[rid] = job.placed_s - job.arrival_s
                out.tokens[rid] = job.tokens
                if job.sized > 0.0:  # the planner's demand level learns it (ran to its end)
                    pool.window_settled.append((job.sized, job.tokens))
                if len(pool.window_ttft_ms) < 4096:  # a sample is enough for percentiles
                    pool.window_ttft_ms.append(1000.0 * (job.first_s - job.arrival_s))
                    tpot = (t - job.first_s) / (job.tokens - 1) if job.tokens > 1 else None
                    if tpot is not None:
                        pool.window_tpot_ms.append(1000.0 * tpot)
                    pool.window_judged.append((rid, job.first_s - job.arrival_s, tpot))
                live -= 1
                finished += 1
                while r.waiting and r.admitted < r.spec.cap:
                    nxt = heapq.heappop(r.waiting)[2]
                    self._push(r.admit(nxt, t), _FIRST, r, nxt)
                if pool.pending and r.state == READY:  # a slot freed: Serve's queue moves
                    self._drain_pending(pool, t)
                if r.state == DRAINING and r.load == 0:
                    self._stop(pool, r, t)
                else:
                    self._reschedule(r)
            elif kind == _READY:
                r, pool = a, b
                if r.state != STARTING:
                    continue  # cancelled before it was ready
                r.state = READY
                pool.serving.append(r)
                pool.starting -= 1
                pool.ready += 1
                r.v_at = t
                self._drain_pending(pool, t)
            else:  # controller tick
                expired = self._expire(t, finish_reject)
                live -= expired
                out.timeline.append(
                    (
                        t,
                        [p.target + p.draining for p in self.pools],
                        [p.ongoing for p in self.pools],
                    )
                )
                targets = controller.tick(self, t)
                if targets is not None:
                    for pool, k in zip(self.pools, targets, strict=True):
                        self.scale(pool, k, t)
                for pool in self.pools:
                    pool.arrivals = pool.arrived_tokens = pool.arrived_prompt_tokens = 0
                    pool.predicted_tokens = 0.0
                    pool.refused = pool.refused_prompt_tokens = 0.0
                    pool.refused_predicted_tokens = 0.0
                if i >= n and live == 0:
                    break
                self._push(t + tick_s, _TICK, None)
        end = self.now
        for pool in self.pools:  # anything left (never reached a replica) is rejected
            while pool.pending:
                finish_reject(pool.pending.popleft().rid, "no_replica")
        out.end_s = end
        hours = [
            sum(r.hours(billed_from_s, end) for r in (*p.active, *p.retired)) for p in self.pools
        ]
        out.replica_hours = np.array(hours)
        out.replica_cost = np.array(
            [h * p.spec.price_per_hour for h, p in zip(hours, self.pools, strict=True)]
        )
        missing = np.flatnonzero(~done)
        for rid in missing:  # must not happen; kept visible rather than silent
            out.reject_reason[rid] = "lost"
            out.reject_status[rid] = 500
        return out

    def _expire(self, now: float, reject: Callable[[int, str, int], None]) -> int:
        """Reject jobs that waited past their wait bound or the clients' timeout (checked
        every tick)."""
        n = 0
        for pool in self.pools:
            for job, reason, status in pool.pending.expired(now, self.queue_timeout_s):
                reject(job.rid, reason, status)
                n += 1
        return n

    def _schedule(self, job: Job, tenant: str, routed: Routed) -> None:
        """Give the job what the scheduler orders by: tenant, predicted work, vLLM priority."""
        settings = self.scheduling
        predicted = routed.predicted if routed.predicted is not None else job.tokens
        job.tenant = tenant
        job.request_class = routed.request_class
        job.predicted = predicted
        job.work = predicted_work(job.prompt_tokens, predicted)
        job.priority = settings.engine_priority(
            tenant, routed.request_class, job.work, job.arrival_s
        )


def _beyond_batch(pool: Pool, job: Job) -> Replica | None:
    """The least loaded ready replica, for a job started beyond the batch slots (marked
    `borrowed`), or None when even its engine seats are all taken."""
    r = min(pool.serving, key=lambda x: (x.load, x.outstanding))
    if r.load >= r.spec.engine_cap:
        return None
    job.borrowed = True
    return r
