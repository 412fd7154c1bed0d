"""Ours in the simulator corrects its planner's sized demand by the level it learns from its
own finished requests (`planning/level.py`), as the server does from its settlements."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.policy import load_policy_text
from orchestrator.routing.types import TokenBudget
from orchestrator.simulate import simulate
from orchestrator.simulate.policies import Prepared
from tests.planning.planning_helpers import catalog, profile

from .conftest import make_requests

SOLO = catalog(
    profile("solo", family="solo", replicas={"min": 1, "max": 12, "startup_s": 20},
            quality={"tier": "frontier"})
)  # fmt: skip
POLICY = """\
apiVersion: orchestrator/v1
kind: Policy
default_tenant:
  name: default
autoscaling: {demand_level: {enabled: %s}}
"""
TRUE, SIZED = 300, 200  # every answer is 1.5x what the planner sizes it at


def sized_short(prepared: Prepared) -> Prepared:
    one = TokenBudget(p50_output_tokens=SIZED, p90_output_tokens=SIZED)
    return Prepared([one] * len(prepared.budgets))


@pytest.fixture(scope="module")
def forecasts(predictor):
    out = {}
    for enabled in (True, False):
        policy = load_policy_text(POLICY % str(enabled).lower(), "policy.yaml", SOLO)
        reqs = [dataclasses.replace(r, output_tokens=TRUE) for r in make_requests(n=900, rate=6.0)]
        res = simulate(SOLO, policy, reqs, predictor=predictor, policies=("ours-constant",),
                       constant_feed=sized_short)  # fmt: skip
        decisions = res.policies["ours-constant"].planner
        assert len(decisions) > 10
        out[enabled] = [d.targets["solo"].assigned_output_tps for d in decisions]
    return out


def test_the_planner_plans_for_what_the_requests_generated_with_the_level(forecasts):
    on, off = forecasts[True], forecasts[False]
    late = slice(len(on) // 2, None)  # the level learned, the forecast settled
    ratio = sum(on[late]) / sum(off[late])
    assert ratio == pytest.approx(TRUE / SIZED, rel=0.05)
    assert on[0] == off[0]  # nothing settled before the first tick: the sizing alone
