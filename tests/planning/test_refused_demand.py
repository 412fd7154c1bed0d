"""Demand refused for capacity enters the plan: a shedding profile grows with it, not without."""

from __future__ import annotations

from planning_helpers import catalog, load, observe, policy, profile

from orchestrator.planning import ScalingTickState, plan

ONE = catalog(profile("solo", replicas={"min": 1, "max": 20, "startup_s": 60}))
# one replica carries ~757 out tok/s with the default 20 % headroom (see test_plan.py)


def shedding(refused_share: float, target: int = 3) -> object:
    """Three ready replicas carrying what fits (2000 out tok/s, no queue, no SLO breach
    measured; `target - 3` more starting) while the router refuses `refused_share` more of the
    same requests for capacity."""
    routed = 2000.0
    extra = routed * refused_share
    return load(
        routed,
        replicas_current=target,
        replicas_ready=3,
        replicas_starting=target - 3,
        requests_running=30,
        refused_rps=extra / 250,
        refused_input_tokens_per_s=2 * extra,
        refused_output_tokens_per_s=extra,
    )


def targets_over(refused_share: float, ticks: int = 6) -> list[int]:
    """Targets tick after tick; the new replicas are still starting (60 s start-up)."""
    pol = policy(ONE)
    state = ScalingTickState.model_validate({"profiles": {"solo": {"target": 3}}})
    out = [3]
    for k in range(ticks):
        d, state = plan(observe(10.0 * k, solo=shedding(refused_share, out[-1])), pol, state)
        out.append(d.targets["solo"].target)
    return out[1:]


def test_shedding_profile_scales_up_with_refused_demand_and_not_without():
    with_refused = targets_over(2.0)  # 6000 out tok/s offered
    without = targets_over(0.0)
    assert without == [3] * 6  # the routed load fits the 3 it has: nothing to do
    # refusals are pressure: the cheapest mix for the offered load applies at once, with no
    # scale-up delay (6000 out + 12000 in tok/s at ~757 out tok/s a replica: 8)
    assert with_refused == [8] * 6


def test_refusals_read_as_pressure_with_a_reason():
    d, _ = plan(observe(0.0, solo=shedding(0.5)), policy(ONE), None)
    t = d.targets["solo"]
    assert t.pressure and t.reason == "4 req/s refused for capacity on 3 replica(s); 3 -> 4"


def test_refused_demand_wakes_a_profile_scaled_to_zero():
    cat = catalog(profile("solo", replicas={"min": 0, "max": 5, "startup_s": 60}))
    o = load(0.0, refused_rps=2.0, refused_input_tokens_per_s=1000, refused_output_tokens_per_s=500)
    d, _ = plan(observe(0.0, solo=o), policy(cat), ScalingTickState())
    assert d.targets["solo"].target == 1 and "no replica (cold start)" in d.targets["solo"].reason
    idle, _ = plan(observe(0.0, solo=load(0.0)), policy(cat), ScalingTickState())
    assert idle.targets["solo"].target == 0
