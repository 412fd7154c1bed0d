"""The simulator's scheduler is the product's (`orchestrator.scheduling`): the profile's queue
in key order, the engines' waiting order by priority, replicas by predicted outstanding work."""

from __future__ import annotations

import numpy as np

from orchestrator.scheduling import SchedulingSettings, TenantShare
from orchestrator.simulate.cluster import Cluster, Routed
from orchestrator.simulate.controllers import StaticController
from orchestrator.simulate.replica import ReplicaSpec
from orchestrator.simulate.traffic import SimRequest

from .conftest import GPU


class Fixed:
    """Every request to pool 0, predicted as `predict(req)` says."""

    def __init__(self, predict) -> None:
        self.predict = predict

    def route(self, req, cluster, now):
        return Routed(0, req.output_tokens, False, self.predict(req))


def burst(n: int = 1500, rate: float = 50.0, seed: int = 0, tenants=("default",), share=None):
    """Overload: arrivals faster than two replicas serve; short and long answers mixed."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(1.0 / rate, size=n))
    p = share or [1 / len(tenants)] * len(tenants)
    return [
        SimRequest(
            i,
            float(t[i] - t[0]),
            {},
            200,
            int(rng.choice([20, 2000], p=[0.8, 0.2])),
            tenant=str(rng.choice(tenants, p=p)),
        )
        for i in range(n)
    ]


def run(requests, predict, scheduling, replicas: int = 1):
    spec = ReplicaSpec.of(GPU.profiles[0])
    cluster = Cluster([spec], [(replicas, replicas)], scheduling=scheduling, queue_timeout_s=1e6)
    return cluster.run(requests, Fixed(predict), StaticController([replicas]))


def truth(req):
    return req.output_tokens


def constant(req):
    return 420.0


BIG = SchedulingSettings(default=TenantShare(max_queued=100_000))


def test_predicted_work_order_lowers_the_mean_latency_and_loses_nothing():
    reqs = burst()
    fifo = run(reqs, truth, None)
    sched = run(reqs, truth, BIG)
    blind = run(reqs, constant, BIG)
    for out in (fifo, sched, blind):
        assert out.served_twice == 0 and (out.profile >= 0).all()
    assert np.nanmean(sched.e2e_s) < 0.7 * np.nanmean(fifo.e2e_s)
    assert np.nanmean(blind.e2e_s) > 0.9 * np.nanmean(fifo.e2e_s)  # no prediction, no gain


def test_a_full_tenant_queue_refuses_with_queue_full():
    reqs = burst(n=1500, rate=500.0)
    out = run(reqs, truth, SchedulingSettings(default=TenantShare(max_queued=5)), replicas=1)
    reasons = {r for r in out.reject_reason if r is not None}
    assert reasons == {"queue_full"}
    assert ((out.profile >= 0) ^ np.array([r is not None for r in out.reject_reason])).all()


def test_a_tenant_at_ten_times_the_rate_does_not_starve_the_other():
    """The heavy tenant alone overloads the replica; the light one still gets a batch slot
    first whenever it waits (its TTFT is a slot's turnover, not the heavy tenant's queue)."""
    mixed = burst(n=700, tenants=("heavy", "light"), share=[10 / 11, 1 / 11])
    light = np.array([r.tenant == "light" for r in mixed])
    fair = SchedulingSettings(
        tenants={"heavy": TenantShare(max_queued=100_000), "light": TenantShare(max_queued=100_000)}
    )
    shared = run(mixed, truth, fair)
    fifo = run(mixed, truth, None)
    light_p95 = np.nanpercentile(shared.ttft_s[light], 95)
    assert light_p95 < np.nanpercentile(shared.ttft_s[~light], 95) / 5
    assert light_p95 < np.nanpercentile(fifo.ttft_s[light], 95) / 5


def test_fair_headroom_starts_the_light_tenant_at_once_beside_a_saturating_one():
    """The heavy tenant keeps every batch slot busy; with fair headroom the light tenant's
    requests start beyond the batch (its TTFT: a prefill, not a slot's turnover)."""
    mixed = burst(n=700, tenants=("heavy", "light"), share=[10 / 11, 1 / 11])
    light = np.array([r.tenant == "light" for r in mixed])
    shares = {"heavy": TenantShare(max_queued=100_000), "light": TenantShare(max_queued=100_000)}
    without = run(mixed, truth, SchedulingSettings(tenants=shares))
    lent = run(mixed, truth, SchedulingSettings(tenants=shares, fair_headroom=0.25))
    assert (lent.profile >= 0).all() and (without.profile >= 0).all()
    p95 = {k: np.nanpercentile(o.ttft_s[light], 95) for k, o in (("off", without), ("on", lent))}
    assert p95["on"] < p95["off"] / 2, p95


def test_the_short_lane_starts_short_answers_beside_a_batch_of_long_ones():
    """Short answers (20 tokens) start in free engine seats instead of waiting for a long
    answer (2000 tokens) to end: their TTFT p95 falls several-fold, with the true lengths;
    a constant prediction (above the lane's bound) gets no lane at all."""
    reqs = burst()
    short = np.array([r.output_tokens == 20 for r in reqs])
    lane = SchedulingSettings(default=TenantShare(max_queued=100_000), short_work_tokens=64)
    without = run(reqs, truth, BIG)
    with_lane = run(reqs, truth, lane)
    blind = run(reqs, constant, lane)
    for out in (without, with_lane, blind):
        assert out.served_twice == 0 and (out.profile >= 0).all()
    p95 = {
        k: np.nanpercentile(o.ttft_s[short], 95)
        for k, o in (("off", without), ("on", with_lane), ("blind", blind))
    }
    assert p95["on"] < p95["off"] / 3, p95
    assert p95["blind"] > p95["on"] * 3, p95


class Counting(Fixed):
    """`Fixed`, told of each routed request the cluster refuses before a replica takes it
    (ours hands it back to its tenant's quality account: `DecideRouter.dropped`)."""

    def __init__(self, predict) -> None:
        super().__init__(predict)
        self.dropped_rids: list[int] = []

    def dropped(self, rid: int) -> None:
        self.dropped_rids.append(rid)


def test_the_router_hears_of_each_routed_request_the_queue_refuses():
    reqs = burst(n=600, rate=500.0)
    router = Counting(truth)
    spec = ReplicaSpec.of(GPU.profiles[0])
    settings = SchedulingSettings(default=TenantShare(max_queued=5))
    cluster = Cluster([spec], [(1, 1)], scheduling=settings, queue_timeout_s=1e6)
    out = cluster.run(reqs, router, StaticController([1]))
    refused = sorted(i for i, r in enumerate(out.reject_reason) if r is not None)
    assert refused and sorted(router.dropped_rids) == refused


def test_the_outcome_records_each_served_requests_wait_in_the_ingress_queue():
    reqs = burst(n=400, rate=200.0)
    out = run(reqs, truth, BIG)
    served = out.profile >= 0
    assert served.all()
    waited = out.queued_s[served]
    assert (waited >= 0).all() and (waited <= out.ttft_s[served] + 1e-9).all()
    assert waited[0] == 0.0  # the first request finds a free slot
    assert (waited > 1.0).sum() > 50  # an overload: many wait for a slot
    calm = run(burst(n=20, rate=0.5), truth, BIG)
    assert (calm.queued_s == 0.0).all()
