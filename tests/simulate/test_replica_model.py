"""The replica model against the shared latency model, on a one-profile cluster."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator import replica_model as est
from orchestrator.simulate.cluster import Cluster, Routed
from orchestrator.simulate.controllers import StaticController
from orchestrator.simulate.replica import Job, Replica, ReplicaSpec
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
def test_prompts_share_the_prefill_rate_when_the_threshold_is_set(catalog, threshold):
    """vLLM's `long_prefill_token_threshold` (the profile's engine_args): set, every request's
    chunk is capped, so prompts admitted while a long prefill runs share the prefill rate with
    it (processor sharing): each ends after twice its own compute, and the long one later by
    their work (the total is conserved); unset, each waits for the prefills before it."""
    profile = catalog.profiles[0]
    args = {**profile.engine_args, "long_prefill_token_threshold": threshold}
    spec = ReplicaSpec.of(profile.model_copy(update={"engine_args": args}))
    assert spec.long_prefill_tokens == threshold
    rate = spec.perf.prefill_tokens_per_s
    cluster = Cluster([spec], [(1, 1)])
    reqs = [_req(0, 0.0, prompt=30_000), _req(1, 0.01, prompt=100), _req(2, 0.02, prompt=3000)]
    out = cluster.run(reqs, _To0(), StaticController([1]))
    long_alone = est.ttft_ms(spec.perf, 30_000, 1) / 1000
    short_alone = est.ttft_ms(spec.perf, 100, 2) / 1000
    if threshold:
        assert out.ttft_s[1] == pytest.approx(short_alone + 100 / rate)
        # the 100-token prompt has ended: the 3000-token one shares with the long one only
        assert out.ttft_s[2] == pytest.approx(est.ttft_ms(spec.perf, 3000, 3) / 1000 + 3000 / rate)
        assert out.ttft_s[0] == pytest.approx(long_alone + 3100 / rate)
    else:
        assert out.ttft_s[0] == pytest.approx(long_alone)
        assert out.ttft_s[1] >= 30_000 / rate - 0.01 + short_alone
        assert out.ttft_s[2] >= 30_100 / rate - 0.02


@pytest.mark.parametrize(("budget", "chunks"), [(8192, 2), (16384, 4)])
def test_a_prompt_waits_for_a_chunk_when_the_step_budget_is_full(catalog, budget, chunks):
    """At most `max_num_batched_tokens` / threshold prefills advance at once: beyond them a
    prompt waits for one to end, however short it is."""
    profile = catalog.profiles[0]
    args = {**profile.engine_args, "long_prefill_token_threshold": 4096,
            "max_num_batched_tokens": budget}  # fmt: skip
    spec = ReplicaSpec.of(profile.model_copy(update={"engine_args": args}))
    assert spec.prefill_chunks == chunks
    rate = spec.perf.prefill_tokens_per_s
    reqs = [_req(0, 0.0, prompt=30_000), _req(1, 0.0, prompt=30_000), _req(2, 0.01, prompt=100)]
    out = Cluster([spec], [(1, 1)]).run(reqs, _To0(), StaticController([1]))
    if chunks == 2:  # both long prefills hold the chunks until they end together
        assert out.ttft_s[2] >= 2 * 30_000 / rate - 0.01
    else:
        assert out.ttft_s[2] < 0.05


def test_waiting_prefills_take_a_chunk_in_priority_order(catalog):
    """Prompts waiting for a chunk go in vLLM's waiting order: priority, then arrival."""
    profile = catalog.profiles[0]
    args = {**profile.engine_args, "long_prefill_token_threshold": 8192}
    spec = ReplicaSpec.of(profile.model_copy(update={"engine_args": args}))
    assert spec.prefill_chunks == 1
    r = Replica(spec, 0, 0.0, 0.0)
    r.admit(Job(0, 20_000, 10, 0.0), 0.0)
    late = Job(1, 20_000, 10, 0.001, priority=5)
    urgent = Job(2, 100, 10, 0.002, priority=1)
    r.admit(late, 0.001)
    r.admit(urgent, 0.002)
    assert urgent.due_s < late.due_s
    same = Job(3, 20_000, 10, 0.003, priority=5)
    r.admit(same, 0.003)
    assert late.due_s < same.due_s


def test_the_prefill_backlog_counts_what_is_still_to_prefill(catalog):
    """Tokens still to prefill: the shared stage's remaining work brought to `now` (chunked
    prefill), the FIFO stage's without the threshold, and waiting requests whole."""
    profile = catalog.profiles[0]
    args = {**profile.engine_args, "long_prefill_token_threshold": 2048}
    spec = ReplicaSpec.of(profile.model_copy(update={"engine_args": args}))
    rate = spec.perf.prefill_tokens_per_s
    r = Replica(spec, 0, 0.0, 0.0)
    assert r.prefill_backlog_tokens(0.0) == 0.0
    r.admit(Job(0, 40_000, 10, 0.0), 0.0)
    r.admit(Job(1, 20_000, 10, 0.0), 0.0)
    assert r.prefill_backlog_tokens(0.0) == pytest.approx(60_000)
    # both share the rate: after t seconds 2 x (t/2) x rate tokens are done
    t = 10_000 / rate
    assert r.prefill_backlog_tokens(t) == pytest.approx(50_000)
    assert r.prefill_backlog_tokens(1e6) == pytest.approx(0.0)
    fifo = Replica(dataclasses.replace(spec, long_prefill_tokens=0, prefill_chunks=1), 1, 0, 0)
    fifo.admit(Job(2, 30_000, 10, 0.0), 0.0)
    assert fifo.prefill_backlog_tokens(15_000 / rate) == pytest.approx(15_000)
    fifo.waiting.append((0, 0, Job(3, 7_000, 10, 0.0)))
    assert fifo.prefill_backlog_tokens(15_000 / rate) == pytest.approx(22_000)


def test_a_shared_prompt_leaves_a_home_far_behind_in_prefill(catalog):
    """The product's replica choice in the simulator: a prompt whose prefix home is
    prefilling long prompts while another replica is idle goes to the idle one."""
    import numpy as np

    from orchestrator.routing.affinity import rendezvous_order
    from orchestrator.simulate.pool import Pool
    from orchestrator.simulate.replica_choice import pick_replica

    profile = catalog.profiles[0]
    args = {**profile.engine_args, "long_prefill_token_threshold": 2048}
    spec = ReplicaSpec.of(profile.model_copy(update={"engine_args": args}))
    pool = Pool(0, spec, 2, 2)
    reps = [Replica(spec, i, 0.0, 0.0, state="ready") for i in (1, 2)]
    pool.active, pool.serving = list(reps), list(reps)
    job = Job(9, 30_000, 10, 0.0, blocks=(77, 78))
    home_id = rendezvous_order("77", ["1", "2"])[0]
    home = next(r for r in reps if str(r.rid) == home_id)
    other = next(r for r in reps if r is not home)
    rng = np.random.default_rng(0)
    assert pick_replica(pool, job, rng, True, 0.0) is home
    for i in range(2):  # two 40k prompts start on the home: 80k tokens behind the other
        home.admit(Job(i, 40_000, 10, 0.0), 0.0)
    assert pick_replica(pool, job, rng, True, 0.0) is other
