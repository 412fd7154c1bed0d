"""Ours in the simulator sheds overload as the server does (`request.admission`): requests
beyond a profile's slots plus the queue the tenant's priority allows get a 429
`server_overloaded` at once instead of waiting in Serve's queue, and the shed load is demand the
planner sees."""

from __future__ import annotations

import math

import pytest

from orchestrator.policy import load_policy_text
from orchestrator.request.admission import QUEUE_FACTOR
from orchestrator.simulate import simulate
from tests.planning.planning_helpers import catalog, profile

from .conftest import make_requests

SLOTS = 16  # planning_helpers.profile's max_concurrency
# no latency targets: the router itself never refuses, so every refusal here is admission's
POLICY = """\
apiVersion: orchestrator/v1
kind: Policy
default_tenant:
  name: default
"""


def _solo(max_replicas: int):
    return catalog(
        profile(
            "solo",
            family="solo",
            replicas={"min": 1, "max": max_replicas, "startup_s": 20},
            quality={"tier": "frontier"},
        )
    )


def _run(predictor, max_replicas: int, *, counted: bool = True):
    solo = _solo(max_replicas)
    policy = load_policy_text(POLICY, "policy.yaml", solo)
    reqs = make_requests(n=1200, rate=16.0, seed=7)  # ~3x what one replica carries
    res = simulate(
        solo, policy, reqs, predictor=predictor, policies=("ours",), count_refused=counted
    )
    return res.policies["ours"].outcome


@pytest.fixture(scope="module")
def capped(predictor):
    return _run(predictor, max_replicas=1)


def test_overload_is_shed_at_once_not_queued(capped):
    reasons = [r for r in capped.reject_reason if r is not None]
    assert reasons and set(reasons) == {"server_overloaded"}, set(reasons)
    # one replica: never more requests on the profile than its slots plus the allowed queue
    bound = SLOTS + math.ceil(SLOTS * QUEUE_FACTOR)
    assert max(ongoing[0] for _, _, ongoing in capped.timeline) <= bound
    assert capped.served_twice == 0
    served = capped.profile >= 0
    assert served.sum() + len(reasons) == len(capped.profile)


def test_shed_load_is_demand_the_planner_sees(predictor):
    grown = {counted: _run(predictor, 12, counted=counted) for counted in (True, False)}

    def replicas_at(outcome, t: float) -> int:
        return next(reps[0] for when, reps, _ in outcome.timeline if when >= t)

    def shed(outcome) -> int:
        return sum(r == "server_overloaded" for r in outcome.reject_reason)

    assert shed(grown[False]) > 100, "the scenario must shed load"
    assert replicas_at(grown[True], 30.0) > replicas_at(grown[False], 30.0)
    assert shed(grown[True]) < shed(grown[False])
