"""Which ready replica of a pool takes a request in the simulator: the same choices the
server makes, by the same code.

Invariant: a replica is returned only when it is under its limit (`max_ongoing_requests`;
with the scheduler also its batch slots); None means the request waits in the pool's queue.
"""

from __future__ import annotations

import numpy as np

from orchestrator.routing.affinity import ReplicaLoad, rank_replicas, rendezvous_order
from orchestrator.scheduling import ReplicaLoad as WorkLoad
from orchestrator.scheduling import choose_replica
from orchestrator.simulate.pool import Pool
from orchestrator.simulate.replica import Job, Replica


def pick_replica(
    pool: Pool, job: Job | None, rng: np.random.Generator, scheduled: bool, now: float
) -> Replica | None:
    """Serve's default request router: the less loaded of two random ready replicas, among
    those under `max_ongoing_requests` (None: every ready replica is full). A job with
    prefix blocks goes where the product's replica router sends it (`_pick_affine`).
    Scheduled: the product's choice (`scheduling.choose_replica`): the prefix's home replica
    unless it is full, much busier by request count or further behind in prefill than the
    request's own prompt, else least predicted outstanding work,
    among replicas with a free batch slot (the rest wait in the ingress queue, in key order)."""
    ready = pool.serving
    if not ready:
        return None
    limit = pool.spec.max_ongoing
    if scheduled:
        # the ingress holds what the engines cannot batch now, in its own order and shares
        limit = min(limit, pool.spec.cap)
        by_id = {str(r.rid): r for r in ready}  # replica ids, as `_pick_affine` hashes them
        home = None
        if job is not None and job.blocks and len(ready) > 1:
            home = rendezvous_order(str(job.blocks[0]), list(by_id))[0]
        # the prefill backlog only matters against a home (costly: skipped without one)
        loads = [
            WorkLoad(rid, r.outstanding, r.load >= limit, r.load,
                     r.prefill_backlog_tokens(now) if home is not None else 0.0)
            for rid, r in by_id.items()
        ]  # fmt: skip
        prompt = job.prompt_tokens if home is not None and job is not None else None
        r = by_id[choose_replica(loads, home=home, prompt_tokens=prompt)[0]]
        return r if r.load < limit else None
    if job is not None and job.blocks and len(ready) > 1:
        return _pick_affine(ready, job, limit)
    if len(ready) == 1:
        r = ready[0]
        return r if r.load < limit else None
    i, j = rng.integers(len(ready), size=2)
    a, b = ready[i], ready[j]
    r = a if a.load <= b.load else b
    if r.load < limit:
        return r
    r = min(ready, key=lambda x: x.load)
    return r if r.load < limit else None


def _pick_affine(ready: list[Replica], job: Job, limit: int) -> Replica | None:
    """The product's prefix-affinity choice (`routing.affinity.rank_replicas`, the Serve
    request router's core): the home replica of the request's first prefix block by
    rendezvous hashing, unless it is full or much busier than the lightest."""
    loads = [ReplicaLoad(str(r.rid), in_flight=r.load, max_ongoing=limit) for r in ready]
    order, _why = rank_replicas(str(job.blocks[0]), loads)
    by_id = {str(r.rid): r for r in ready}
    best = by_id[order[0]]
    return best if best.load < limit else None
