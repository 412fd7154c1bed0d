"""The replica model against the shared latency model, on a one-profile cluster."""

from __future__ import annotations

import pytest

from orchestrator import replica_model as est
from orchestrator.simulate.cluster import Cluster, Routed
from orchestrator.simulate.controllers import StaticController
from orchestrator.simulate.replica import ReplicaSpec
from orchestrator.simulate.traffic import SimRequest


class _To0:
    def route(self, req, cluster, now):
        return Routed(0, req.output_tokens)


def _req(rid: int, at: float, prompt: int = 1000, out: int = 101) -> SimRequest:
    return SimRequest(rid, at, {}, prompt, out)


def _run(catalog, reqs, replicas=1):
    spec = ReplicaSpec.of(catalog.profiles[0])
    cluster = Cluster([spec], [(replicas, replicas)])
    return spec, cluster.run(reqs, _To0(), StaticController([replicas]))


def test_rates_come_from_the_shared_latency_model(catalog):
    p = catalog.profiles[0]
    spec = ReplicaSpec.of(p)
    for n in (1, 2, spec.cap // 2, spec.cap):
        assert spec.rate[n] == pytest.approx(est.stream_tokens_per_s(spec.perf, n))
        assert est.tpot_ms(spec.perf, n) == pytest.approx(1000 / spec.rate[n])


def test_one_request_alone_takes_the_modelled_ttft_and_tpot(catalog):
    spec, out = _run(catalog, [_req(0, 0.0)])
    ttft = est.ttft_ms(spec.perf, 1000, 1) / 1000
    assert out.ttft_s[0] == pytest.approx(ttft)
    assert out.e2e_s[0] == pytest.approx(ttft + 100 / spec.rate[1])


def test_two_streams_share_the_replica(catalog):
    spec, out = _run(catalog, [_req(0, 0.0, prompt=10), _req(1, 0.0, prompt=10)])
    # both decode together at rate[2] (slower per stream than alone)
    assert spec.rate[2] < spec.rate[1]
    assert out.e2e_s[1] - out.ttft_s[1] == pytest.approx(100 / spec.rate[2], rel=1e-3)


def test_batch_is_bounded_by_kv_capacity(catalog):
    spec = ReplicaSpec.of(catalog.profiles[0])
    n = spec.cap + 5
    _, out = _run(catalog, [_req(i, 0.0, prompt=10) for i in range(n)])
    # the last five wait for a slot: their first token comes after the first finish
    first_finish = out.e2e_s[: spec.cap].min()
    assert (out.ttft_s[spec.cap :] >= first_finish).all()
    assert (out.ttft_s[: spec.cap] < first_finish).all()


def test_replica_is_billed_while_it_runs(catalog):
    spec, out = _run(catalog, [_req(0, 0.0), _req(1, 3600.0)], replicas=2)
    assert out.replica_hours[0] == pytest.approx(2 * out.end_s / 3600)
    assert out.replica_cost[0] == pytest.approx(out.replica_hours[0] * spec.price_per_hour)


def test_serve_queue_holds_requests_over_max_ongoing(catalog):
    import dataclasses

    spec = dataclasses.replace(ReplicaSpec.of(catalog.profiles[0]), max_ongoing=2)
    cluster = Cluster([spec], [(1, 1)])
    out = cluster.run([_req(i, 0.0, prompt=10) for i in range(4)], _To0(), StaticController([1]))
    first_finish = out.e2e_s[:2].min()
    assert (out.ttft_s[2:] >= first_finish).all()  # waited in Serve's queue, not the engine's


def test_max_ongoing_is_the_products_setting(catalog):
    from orchestrator.engines.config import llm_config_dict

    p = catalog.profiles[0]
    want = llm_config_dict(p, p.model)["deployment_config"]["max_ongoing_requests"]
    assert ReplicaSpec.of(p).max_ongoing == want


def test_warmup_is_neither_measured_nor_billed(catalog):
    spec, out = _run(catalog, [_req(0, 0.0), _req(1, 100.0)])
    cluster = Cluster([spec], [(1, 1)])
    late = cluster.run(
        [_req(0, 0.0), _req(1, 100.0)], _To0(), StaticController([1]), billed_from_s=50.0
    )
    assert late.replica_hours[0] == pytest.approx(out.replica_hours[0] - 50.0 / 3600)


@pytest.mark.parametrize("threshold", [0, 2048])
def test_a_short_prompt_waits_behind_a_long_prefill_unless_the_threshold_is_set(catalog, threshold):
    """vLLM's `long_prefill_token_threshold` (the profile's engine_args): a prompt within it is
    prefilled beside a long prefill in progress; unset, it waits for that prefill to end. A
    prompt over it waits for every prefill before it either way."""
    profile = catalog.profiles[0]
    args = {**profile.engine_args, "long_prefill_token_threshold": threshold}
    spec = ReplicaSpec.of(profile.model_copy(update={"engine_args": args}))
    assert spec.long_prefill_tokens == threshold
    long_prefill = 30_000 / spec.perf.prefill_tokens_per_s
    cluster = Cluster([spec], [(1, 1)])
    # a long prompt, a short one while it prefills, then a long one: over the threshold, it
    # waits for both prefills before it
    reqs = [_req(0, 0.0, prompt=30_000), _req(1, 0.01, prompt=100), _req(2, 0.02, prompt=3000)]
    out = cluster.run(reqs, _To0(), StaticController([1]))
    short_alone = est.ttft_ms(spec.perf, 100, 2) / 1000
    if threshold:
        assert out.ttft_s[1] == pytest.approx(short_alone)
    else:
        assert out.ttft_s[1] >= long_prefill - 0.01 + short_alone
    both = (30_000 + 100) / spec.perf.prefill_tokens_per_s
    assert out.ttft_s[2] >= both - 0.02
