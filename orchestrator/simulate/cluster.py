"""The simulated cluster: one pool of replicas per profile, driven by a heap of events.

`Cluster.run` replays the requests in virtual time for ONE policy (a router + a controller).
Events: replica ready, first token, finish (stale ones skipped by version), controller tick;
arrivals are merged from the sorted request list. Invariants checked by the tests: every
request ends exactly once, either served (`profile >= 0`) or rejected with a reason; a replica
is billed from its scale-up decision until it stops; a draining replica takes no new request.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from orchestrator.routing.affinity import ReplicaLoad, rank_replicas
from orchestrator.simulate.replica import (
    DRAINING,
    READY,
    STARTING,
    STOPPED,
    Job,
    Replica,
    ReplicaSpec,
)
from orchestrator.simulate.traffic import SimRequest

_READY, _FIRST, _FINISH, _TICK = 0, 1, 2, 3


@dataclass(slots=True)
class Routed:
    profile: int  # index into the cluster's pools
    tokens: int  # tokens it will generate (true length, capped by the decision)
    truncated: bool = False


@dataclass(slots=True)
class Rejected:
    reason: str


class Router(Protocol):
    def route(self, req: SimRequest, cluster: Cluster, now: float) -> Routed | Rejected: ...


class Controller(Protocol):
    """Called every cluster tick; returns replica targets per pool, or None for no change."""

    def initial(self, cluster: Cluster) -> list[int]: ...

    def tick(self, cluster: Cluster, now: float) -> list[int] | None: ...


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
    pending: deque = field(default_factory=deque)  # jobs waiting for a ready replica
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
    in_flight: int = 0  # admitted + waiting on replicas
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


@dataclass
class Outcome:
    """Per-request results of one policy (arrays indexed by rid)."""

    profile: np.ndarray  # int16, -1 = rejected
    ttft_s: np.ndarray
    e2e_s: np.ndarray
    tokens: np.ndarray  # tokens generated
    truncated: np.ndarray
    reject_reason: list  # str or None
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
    ) -> None:
        self.pools = [
            Pool(i, s, lo, hi) for i, (s, (lo, hi)) in enumerate(zip(specs, bounds, strict=True))
        ]
        self.by_name = {p.name: p for p in self.pools}
        self.rng = np.random.default_rng([seed, 11])
        self.queue_timeout_s = queue_timeout_s
        self._heap: list = []
        self._seq = 0
        self._replica_ids = 0
        self.now = 0.0

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
    def _pick(self, pool: Pool, job: Job | None = None) -> Replica | None:
        """Serve's default request router: the less loaded of two random ready replicas, among
        those under `max_ongoing_requests` (None: every ready replica is full). A job with
        prefix blocks goes where the product's replica router sends it (`_pick_affine`)."""
        ready = pool.serving
        if not ready:
            return None
        limit = pool.spec.max_ongoing
        if job is not None and job.blocks and len(ready) > 1:
            return _pick_affine(ready, job, limit)
        if len(ready) == 1:
            r = ready[0]
            return r if r.load < limit else None
        i, j = self.rng.integers(len(ready), size=2)
        a, b = ready[i], ready[j]
        r = a if a.load <= b.load else b
        if r.load < limit:
            return r
        r = min(ready, key=lambda x: x.load)
        return r if r.load < limit else None

    def _place(self, pool: Pool, r: Replica, job: Job, now: float) -> None:
        pool.in_flight += 1
        if r.admitted < r.spec.cap:
            self._push(r.admit(job, now), _FIRST, r, job)
        else:
            r.waiting.append(job)

    def dispatch(self, pool: Pool, job: Job, now: float) -> None:
        """To a replica with room, else Serve's queue (FIFO: behind any request already there)."""
        r = self._pick(pool, job) if not pool.pending else None
        if r is None:
            pool.pending.append(job)
        else:
            self._place(pool, r, job, now)

    def _drain_pending(self, pool: Pool, now: float) -> None:
        while pool.pending:
            r = self._pick(pool, pool.pending[0])
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
        )
        done = np.zeros(n, dtype=bool)

        def finish_reject(rid: int, reason: str) -> None:
            if done[rid]:
                out.served_twice += 1
            done[rid] = True
            out.reject_reason[rid] = reason
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
                    finish_reject(req.rid, res.reason)
                    continue
                pool = self.pools[res.profile]
                pool.arrivals += 1
                pool.arrived_tokens += res.tokens
                pool.arrived_prompt_tokens += req.prompt_tokens
                out.profile[req.rid] = res.profile
                out.truncated[req.rid] = res.truncated
                live += 1
                job = Job(req.rid, req.prompt_tokens, res.tokens, t, blocks=req.prefix_blocks)
                self.dispatch(pool, job, t)
            elif kind == _FIRST:
                r, job = a, b
                if r.state == STOPPED:  # cannot happen: stopped replicas are empty
                    raise AssertionError("first token on a stopped replica")
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
                rid = job.rid
                if done[rid]:
                    out.served_twice += 1
                done[rid] = True
                out.ttft_s[rid] = job.first_s - job.arrival_s
                out.e2e_s[rid] = t - job.arrival_s
                out.tokens[rid] = job.tokens
                if len(pool.window_ttft_ms) < 4096:  # a sample is enough for percentiles
                    pool.window_ttft_ms.append(1000.0 * (job.first_s - job.arrival_s))
                    if job.tokens > 1:
                        pool.window_tpot_ms.append(1000.0 * (t - job.first_s) / (job.tokens - 1))
                live -= 1
                finished += 1
                while r.waiting and r.admitted < r.spec.cap:
                    nxt = r.waiting.popleft()
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
        return out

    def _expire(self, now: float, reject: Callable[[int, str], None]) -> int:
        """Reject jobs that waited for a ready replica longer than the queue timeout."""
        n = 0
        for pool in self.pools:
            while pool.pending and now - pool.pending[0].arrival_s > self.queue_timeout_s:
                reject(pool.pending.popleft().rid, "queue_timeout")
                n += 1
        return n


def _pick_affine(ready: list[Replica], job: Job, limit: int) -> Replica | None:
    """The product's prefix-affinity choice (`routing.affinity.rank_replicas`, the Serve
    request router's core): the home replica of the request's first prefix block by
    rendezvous hashing, unless it is full or much busier than the lightest."""
    loads = [ReplicaLoad(str(r.rid), in_flight=r.load, max_ongoing=limit) for r in ready]
    order, _why = rank_replicas(str(job.blocks[0]), loads)
    by_id = {str(r.rid): r for r in ready}
    best = by_id[order[0]]
    return best if best.load < limit else None
