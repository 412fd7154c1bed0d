"""Ours in the simulator sheds overload as the server does (`request.admission`), counting only
what no queue bounds: requests the ingress queue holds wait there up to their tenant's
`scheduling.max_queued` (then 429 `queue_full`), while requests for a pool with no ready
replica (Serve's queue in the server, which nothing bounds) beyond its slots plus the queue the
tenant's priority allows get a 429 `server_overloaded` at once."""

from __future__ import annotations

import math

from orchestrator.policy import load_policy_text
from orchestrator.request.admission import QUEUE_FACTOR
from orchestrator.simulate import simulate
from tests.planning.planning_helpers import catalog, profile

from .conftest import make_requests

SLOTS = 16  # planning_helpers.profile's max_concurrency
MAX_QUEUED = 24
# no latency targets: the router itself never refuses, so every refusal here is a bound's
POLICY = f"""\
apiVersion: orchestrator/v1
kind: Policy
default_tenant:
  name: default
scheduling: {{max_queued: {MAX_QUEUED}}}
"""


def _solo(min_replicas: int, max_replicas: int):
    return catalog(
        profile(
            "solo",
            family="solo",
            replicas={"min": min_replicas, "max": max_replicas, "startup_s": 20},
            quality={"tier": "frontier"},
        )
    )


def _run(predictor, min_replicas: int, max_replicas: int):
    solo = _solo(min_replicas, max_replicas)
    policy = load_policy_text(POLICY, "policy.yaml", solo)
    reqs = make_requests(n=1200, rate=16.0, seed=7)  # ~3x what one replica carries
    res = simulate(solo, policy, reqs, predictor=predictor, policies=("ours",))
    return reqs, res.policies["ours"].outcome


def test_overload_waits_in_the_ingress_queue_up_to_the_tenant_bound(predictor):
    """One replica at ~3x its load: admission sheds nothing the queue holds; the tenant's
    queue bound refuses the excess (429 `queue_full`), beyond what admission alone allowed."""
    _, out = _run(predictor, 1, 1)
    reasons = [r for r in out.reject_reason if r is not None]
    assert reasons and set(reasons) == {"queue_full"}, set(reasons)
    ongoing = max(o[0] for _, _, o in out.timeline)
    assert ongoing > SLOTS + math.ceil(SLOTS * QUEUE_FACTOR)  # admission's old bound
    seats = _solo(1, 1).profiles[0].engine_seats
    assert ongoing <= seats + MAX_QUEUED
    assert out.served_twice == 0
    assert (out.profile >= 0).sum() + len(reasons) == len(out.profile)


def test_what_no_queue_holds_is_shed_at_once(predictor):
    """The pool starts from none: what waits for its first replica is Serve's queue in the
    server (nothing bounds it), so admission sheds beyond one replica's slots plus the allowed
    queue, with 429 `server_overloaded`; only while no replica is ready."""
    reqs, out = _run(predictor, 0, 12)
    shed = [reqs[i].arrival_s for i, r in enumerate(out.reject_reason) if r == "server_overloaded"]
    assert shed, "the scenario must shed load"
    first_ready = min(t for t, reps, o in out.timeline if reps[0] > 0) + 20.0  # startup_s
    assert max(shed) <= first_ready
    during = [o[0] for t, _, o in out.timeline if t < first_ready]
    assert max(during) <= SLOTS + math.ceil(SLOTS * QUEUE_FACTOR)
