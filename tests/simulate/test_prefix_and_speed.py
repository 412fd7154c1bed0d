"""Mooncake traces: prefix blocks a replica holds skip their prefill, the product's prefix
affinity keeps a conversation on one replica; and a profile's real speed against its figures."""

from __future__ import annotations

import json

import pytest

from orchestrator import replica_model as est
from orchestrator.simulate.cluster import Cluster, Routed
from orchestrator.simulate.controllers import StaticController
from orchestrator.simulate.replica import BLOCK_TOKENS, PrefixCache, ReplicaSpec
from orchestrator.simulate.traffic import SimRequest, load_traffic, sniff


class _To0:
    def route(self, req, cluster, now):
        return Routed(0, req.output_tokens)


def _req(rid, at, blocks, prompt=4 * BLOCK_TOKENS, out=11):
    return SimRequest(rid, at, {}, prompt, out, prefix_blocks=tuple(blocks))


def _run(catalog, reqs, replicas=1, speed=1.0):
    spec = ReplicaSpec.of(catalog.profiles[0], speed=speed)
    cluster = Cluster([spec], [(replicas, replicas)])
    return spec, cluster.run(reqs, _To0(), StaticController([replicas]))


def test_held_blocks_skip_their_prefill(catalog):
    # the second request shares three of its four blocks with the first, long finished
    spec, out = _run(catalog, [_req(0, 0.0, [1, 2, 3, 4]), _req(1, 100.0, [1, 2, 3, 9])])
    cold = est.ttft_ms(spec.perf, 4 * BLOCK_TOKENS, 1) / 1000
    warm = est.ttft_ms(spec.perf, BLOCK_TOKENS, 1) / 1000
    assert out.ttft_s[0] == pytest.approx(cold)
    assert out.ttft_s[1] == pytest.approx(warm)


def test_only_a_leading_match_counts_and_the_cache_is_bounded():
    cache = PrefixCache(capacity=3)
    cache.hold((1, 2, 3))
    assert cache.leading_hits((1, 2, 9)) == 2
    assert cache.leading_hits((9, 1)) == 0  # a prefix: the first miss ends it
    cache.hold((4,))  # evicts the least recently used block (1)
    assert cache.leading_hits((1, 2)) == 0


def test_affinity_keeps_a_conversation_on_the_replica_holding_it(catalog):
    # eight conversations of five turns each on four replicas: every later turn hits
    reqs = [_req(10 * t + c, 30.0 * t + c, [c * 100 + k for k in range(t + 1)], prompt=(t + 1) * BLOCK_TOKENS)
            for t in range(5) for c in range(8)]  # fmt: skip
    reqs.sort(key=lambda r: r.arrival_s)
    for i, r in enumerate(reqs):
        r.rid = i
    spec, out = _run(catalog, reqs, replicas=4)
    later = [i for i, r in enumerate(reqs) if len(r.prefix_blocks) > 1]
    cold = [est.ttft_ms(spec.perf, reqs[i].prompt_tokens, 1) / 1000 for i in later]
    hits = sum(out.ttft_s[i] < c * 0.9 for i, c in zip(later, cold, strict=True))
    assert hits == len(later)


def test_speed_scales_the_real_replica_not_the_figures(catalog):
    p = catalog.profiles[0]
    slow = ReplicaSpec.of(p, speed=0.5)
    base = ReplicaSpec.of(p)
    assert slow.perf.output_tokens_per_s == pytest.approx(0.5 * base.perf.output_tokens_per_s)
    assert slow.rate[1] == pytest.approx(0.5 * base.rate[1])
    _, fast = _run(catalog, [_req(0, 0.0, [])], speed=1.0)
    _, half = _run(catalog, [_req(0, 0.0, [])], speed=0.5)
    assert half.e2e_s[0] > 1.5 * fast.e2e_s[0]
    with pytest.raises(ValueError):
        ReplicaSpec.of(p, speed=0)


def test_mooncake_trace_is_told_apart_by_its_fields(tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_text(
        "\n".join(
            json.dumps(
                {"timestamp": t, "input_length": 1200, "output_length": 7, "hash_ids": [0, 1, 2]}
            )  # fmt: skip
            for t in (0, 1500)
        )
        + "\n"
    )
    assert sniff(f) == "mooncake"
    reqs = load_traffic(f)
    assert [r.arrival_s for r in reqs] == [0.0, 1.5]  # milliseconds
    assert reqs[1].prefix_blocks == (0, 1, 2) and reqs[1].prompt_tokens == 1200
    assert reqs[0].output_tokens == 7 and reqs[0].body["messages"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"timestamp": 0, "input_length": 5, "output_length": 1,
                               "hash_ids": "x"}) + "\n")  # fmt: skip
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_traffic(bad)
