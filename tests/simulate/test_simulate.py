"""The whole simulator on small traffic: determinism, conservation, baselines, oracle."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest

import orchestrator.predict
import orchestrator.replica_model
import orchestrator.request.route_inputs
from orchestrator.simulate import ALL_POLICIES, simulate
from orchestrator.simulate import policies as sim_policies
from orchestrator.simulate import replica as sim_replica
from orchestrator.simulate import run as sim_run
from orchestrator.simulate.cluster import Cluster
from orchestrator.simulate.controllers import QueueLengthController

from .conftest import make_requests


@pytest.fixture(scope="module")
def result(catalog, policy, predictor):
    return simulate(catalog, policy, make_requests(), predictor=predictor, seed=3)


def test_same_seed_same_result(catalog, policy, predictor, result):
    again = simulate(catalog, policy, make_requests(), predictor=predictor, seed=3)

    def strip(j):
        return {k: {m: v for m, v in p.items() if m != "wall_s"} for k, p in j["policies"].items()}

    assert json.dumps(strip(again.to_json())) == json.dumps(strip(result.to_json()))


def test_every_request_ends_once(result):
    assert set(result.policies) == set(ALL_POLICIES)
    for name, run in result.policies.items():
        out = run.outcome
        assert out.served_twice == 0, name
        served = out.profile >= 0
        reasons = np.array([r is not None for r in out.reject_reason])
        assert (served ^ reasons).all(), name  # served xor rejected-with-a-reason
        assert "lost" not in run.metrics["rejected_by_reason"], name
        assert np.isfinite(out.e2e_s[served]).all() and (out.tokens[served] >= 1).all()
        assert run.metrics["served"] + run.metrics["rejected"] == len(result.requests)


def test_json_has_the_documented_keys(result):
    j = result.to_json()
    for name in ("ours", "static", "oracle", "queue", "round-robin", "routellm", "dynamo"):
        p = j["policies"][name]
        for key in (
            "cost_usd",
            "cost_per_million_output_tokens",
            "slo_attainment",
            "quality",
            "requests",
            "rejected",
        ):
            assert key in p, (name, key)
        assert p["cost_usd"] > 0


def test_oracle_is_not_beaten_beyond_noise(result):
    ours, oracle = result.policies["ours"].metrics, result.policies["oracle"].metrics
    assert oracle["quality"] >= ours["quality"] - 0.02
    assert oracle["slo_attainment"] >= ours["slo_attainment"] - 0.02


def test_static_never_scales(result):
    tl = result.policies["static"].outcome.timeline
    counts = {tuple(x[1]) for x in tl}
    assert len(counts) == 1
    assert sum(next(iter(counts))) >= 1


def test_queue_baseline_scales_with_queue_length(catalog, policy, predictor):
    # a burst far above one replica's target: Serve's policy adds replicas after 30 s
    reqs = make_requests(n=1500, rate=25.0, seed=4)
    res = simulate(catalog, policy, reqs, predictor=predictor, policies=("queue",))
    reps = [sum(x[1]) for x in res.policies["queue"].outcome.timeline]
    assert max(reps) > reps[0]


def test_queue_length_controller_follows_ray_serve_defaults(catalog):
    from orchestrator.simulate.replica import ReplicaSpec

    spec = ReplicaSpec.of(catalog.profiles[0])
    cluster = Cluster([spec], [(1, 10)])
    cluster.start_warm(cluster.pools[0], 1)
    ctl = QueueLengthController([1], [4.0])
    pool = cluster.pools[0]
    pool.in_flight = 20  # 20 ongoing / target 4 -> wants 5 replicas
    assert ctl.tick(cluster, 0.0) == [1]
    assert ctl.tick(cluster, 10.0) == [1]
    assert ctl.tick(cluster, 20.0) == [1]
    assert ctl.tick(cluster, 30.0) == [5]  # the wish held for upscale_delay_s (30 s)
    cluster.scale(pool, 5, 30.0)
    pool.in_flight = 0
    wants = [ctl.tick(cluster, 40.0 + 10 * k)[0] for k in range(61)]
    assert wants[:60] == [5] * 60 and wants[60] == 1  # down only after 600 s


def test_uses_the_products_own_functions():
    """The simulator must call the product's predictor, router and latency model, not copies."""
    assert sim_policies.plan is importlib.import_module("orchestrator.request.plan").plan
    assert sim_policies.route_inputs is orchestrator.request.route_inputs
    assert sim_run.route_inputs is orchestrator.request.route_inputs
    assert sim_run.Predictor is orchestrator.predict.Predictor
    assert sim_replica.est is orchestrator.replica_model


def test_ours_scales_with_the_products_planner(catalog, policy):
    from orchestrator import planning
    from orchestrator.simulate import controllers as ctl

    controller = sim_run.our_controller(policy, [1] * len(catalog.profiles))
    assert isinstance(controller, ctl.PlannerController)
    assert controller.planning.plan is planning.plan


def test_dynamo_planner_sizes_for_the_observed_rate(catalog):
    from orchestrator.concepts import LatencySLO
    from orchestrator.simulate.controllers import DynamoSLAController
    from orchestrator.simulate.replica import ReplicaSpec

    spec = ReplicaSpec.of(catalog.profiles[0])
    cluster = Cluster([spec], [(1, 50)])
    slo = LatencySLO(ttft_p95_ms=1000, tpot_p95_ms=50)
    ctl = DynamoSLAController([1], slo, interval_s=60.0)
    pool = cluster.pools[0]
    _, per_replica = spec.capacity(slo, 500, 200)
    for t in range(10, 70, 10):  # 6 ticks: 10 req/s of 500 in / 200 out
        pool.arrivals, pool.arrived_tokens, pool.arrived_prompt_tokens = 100, 20000, 50000
        out = ctl.tick(cluster, float(t))
    want = 10 * 200 / per_replica + 10 * 500 / spec.perf.prefill_tokens_per_s
    assert out == [max(1, -int(-want // 1))]


def test_overload_ends_in_timeouts_not_lost_requests(catalog, policy, predictor):
    # static at one replica of the strong profile, far beyond its capacity: long waits, then
    # queue timeouts; every request is still accounted for exactly once
    from orchestrator.simulate import run as r

    reqs = make_requests(n=3000, rate=80.0, seed=5)
    res = simulate(
        catalog, policy, reqs, predictor=predictor, policies=("queue",), queue_timeout_s=20.0
    )
    out = res.policies["queue"].outcome
    assert out.served_twice == 0
    assert ((out.profile >= 0) ^ np.array([x is not None for x in out.reject_reason])).all()
    assert r.DESCRIPTIONS["queue"]


def test_planner_decisions_are_kept_for_ours_only(result):
    """`PolicyRun.planner`: ours' planner decision per tick, whose targets the cluster ran."""
    assert result.policies["static"].planner == []
    decisions = result.policies["ours"].planner
    assert len(decisions) > 1
    times = [d.now_s for d in decisions]
    assert times == sorted(set(times))
    assert all(set(d.targets) == set(result.profiles) for d in decisions)
    ticks = {t: reps for t, reps, _ in result.policies["ours"].outcome.timeline}
    later = sorted(ticks)
    for d in decisions:
        after = next((t for t in later if t > d.now_s), None)
        if after is not None:  # replicas (target + draining) at the next tick hold the target
            assert all(
                ticks[after][i] >= d.target_of(name) for i, name in enumerate(result.profiles)
            )


def test_constant_feed_is_what_ours_constant_reads(catalog, policy):
    """Fed the predictor's own budgets, ours-constant replays exactly as ours does; fed one
    long constant, it does not."""
    from orchestrator.simulate.policies import Prepared
    from orchestrator.simulate.run import constant_prediction

    def long_constant(prepared):
        one = constant_prediction(prepared).budgets[0]
        long = one.model_copy(update={"p50_output_tokens": 4000, "p90_output_tokens": 8000})
        return Prepared([long] * len(prepared.budgets))

    runs = {}
    for name, feed in (("same", lambda prepared: prepared), ("long", long_constant)):
        res = simulate(
            catalog,
            policy,
            make_requests(n=150),
            predictor=orchestrator.predict.Predictor(store=None),
            policies=("ours", "ours-constant"),
            seed=3,
            constant_feed=feed,
        )
        runs[name] = {k: r.metrics for k, r in res.policies.items()}
    assert runs["same"]["ours-constant"] == runs["same"]["ours"]
    assert runs["long"]["ours-constant"] != runs["long"]["ours"]


def test_ours_plans_on_expected_tokens_not_medians(catalog, policy):
    """A skewed prediction (p90 = 8 x p50): the planner's first loaded tick sees the
    lognormal's mean per request (`planning.expected`), the p50 ablation the median."""
    from orchestrator.planning.expected import expected_output_tokens
    from orchestrator.simulate.policies import Prepared
    from orchestrator.simulate.run import constant_prediction

    def skewed(prepared):
        one = constant_prediction(prepared).budgets[0]
        one = one.model_copy(update={"p50_output_tokens": 200, "p90_output_tokens": 1600,
                                     "reasoning_probability": 0.0})  # fmt: skip
        return Prepared([one] * len(prepared.budgets))

    seen = {}
    for demand in ("expected", "p50"):
        res = simulate(
            catalog,
            policy,
            make_requests(n=150),
            predictor=orchestrator.predict.Predictor(store=None),
            policies=("ours-constant",),
            seed=3,
            constant_feed=skewed,
            demand_tokens=demand,
        )
        first = next(
            d for d in res.policies["ours-constant"].planner
            if sum(t.assigned_output_tps for t in d.targets.values()) > 0
        )  # fmt: skip
        seen[demand] = sum(t.assigned_output_tps for t in first.targets.values())
    want = expected_output_tokens(200, 1600, 10_000) / 200  # the cap hardly binds here
    assert seen["expected"] / seen["p50"] == pytest.approx(want, rel=0.25)
    with pytest.raises(ValueError, match="demand_tokens"):
        simulate(catalog, policy, make_requests(n=5), policies=("ours",), demand_tokens="p90")
