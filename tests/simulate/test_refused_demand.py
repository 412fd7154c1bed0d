"""Ours in the simulator plans for the requests its router refused for capacity, as the
server's controller does: a shedding profile grows faster with them and refuses fewer."""

from __future__ import annotations

import pytest

from orchestrator.policy import load_policy_text
from orchestrator.simulate import simulate
from tests.planning.planning_helpers import catalog, profile

from .conftest import make_requests

SOLO = catalog(
    profile(
        "solo",
        family="solo",
        replicas={"min": 1, "max": 12, "startup_s": 20},
        quality={"tier": "frontier"},
    )
)
# refuse (503) what would miss the TTFT target rather than queue it; the tenant's concurrency
# bound lifted above the scenario's backlog, so only the SLO refusals this test is about shed
POLICY = """\
apiVersion: orchestrator/v1
kind: Policy
default_tenant:
  name: default
  latency: {ttft_p95_ms: 1500, tpot_p95_ms: 60, e2e_p95_ms: 60000}
  actions: {on_cost_cap: [reject], on_slo_unmeetable: [reject]}
  requests: {max_concurrent_requests: 100000}
"""


@pytest.fixture(scope="module")
def runs(predictor):
    policy = load_policy_text(POLICY, "policy.yaml", SOLO)
    out = {}
    for counted in (True, False):
        reqs = make_requests(n=1200, rate=16.0, seed=7)  # 75 s at ~3x what one replica carries
        res = simulate(SOLO, policy, reqs, predictor=predictor, policies=("ours",),
                       count_refused=counted)  # fmt: skip
        out[counted] = (res.policies["ours"].outcome, [r.arrival_s for r in reqs])
    return out


def refused(run, after_s: float = 0.0) -> int:
    outcome, arrivals = run
    return sum(
        r == "latency_slo_unmeetable" and t >= after_s
        for r, t in zip(outcome.reject_reason, arrivals, strict=True)
    )


def replicas_at(run, t: float) -> int:
    return next(reps[0] for when, reps, _ in run[0].timeline if when >= t)


def test_shedding_profile_grows_with_refused_demand_and_not_without(runs):
    with_, without = runs[True], runs[False]
    # the first 30 s are alike: one planning interval, then a 20 s start-up
    assert refused(without) > refused(without, 30.0) > 100, "the scenario must shed load"
    assert refused(with_, 30.0) < 0.25 * refused(without, 30.0)
    assert replicas_at(with_, 30.0) >= replicas_at(without, 30.0) + 2
    for outcome, _ in runs.values():
        assert outcome.served_twice == 0
