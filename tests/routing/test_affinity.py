"""Replica choice inside a profile: prefix affinity, load bounds, stats and prompt extraction."""

from __future__ import annotations

from types import SimpleNamespace

from orchestrator.routing.affinity import (
    AffinityConfig,
    ReplicaLoad,
    ReplicaStats,
    extract_prompt_text,
    prefix_key,
    rank_replicas,
    rendezvous_order,
)

IDS = ["r-a", "r-b", "r-c"]


def _loads(**running: int) -> list[ReplicaLoad]:
    return [
        ReplicaLoad(rid, stats=ReplicaStats(running=running.get(rid.replace("-", "_"), 0)))
        for rid in IDS
    ]


def _home(key: str) -> str:
    return rendezvous_order(key, IDS)[0]


def test_same_prefix_same_home_whatever_the_replica_order():
    key = prefix_key("system: you are terse\nuser: hi", 1024)
    order, reason = rank_replicas(key, _loads())
    assert reason == "affinity" and order[0] == _home(key)
    reversed_order, _ = rank_replicas(key, list(reversed(_loads())))
    assert reversed_order[0] == order[0]
    assert sorted(order) == sorted(IDS)


def test_keys_spread_and_removal_moves_only_the_removed_replicas_keys():
    keys = [prefix_key(f"prompt {i}", 1024) for i in range(300)]
    homes = {k: _home(k) for k in keys}
    counts = {rid: sum(h == rid for h in homes.values()) for rid in IDS}
    assert all(60 <= n <= 140 for n in counts.values()), counts
    survivors = ["r-a", "r-c"]
    for k in keys:
        new_home = rendezvous_order(k, survivors)[0]
        if homes[k] != "r-b":
            assert new_home == homes[k]


def test_much_busier_home_is_skipped_for_least_loaded():
    key = prefix_key("x" * 50, 1024)
    home = _home(key)
    others = [r for r in IDS if r != home]
    busy = {
        home.replace("-", "_"): 9,
        others[0].replace("-", "_"): 3,
        others[1].replace("-", "_"): 5,
    }
    order, reason = rank_replicas(key, _loads(**busy), AffinityConfig(imbalance_threshold=4))
    assert reason == "imbalanced"
    assert order == [others[0], others[1], home]
    # within the threshold the home keeps the request
    order, reason = rank_replicas(key, _loads(**busy), AffinityConfig(imbalance_threshold=6))
    assert reason == "affinity" and order[0] == home and order[1] == others[0]


def test_local_in_flight_counts_when_stats_are_stale():
    key = prefix_key("y" * 50, 1024)
    home = _home(key)
    loads = [ReplicaLoad(rid, in_flight=10 if rid == home else 0) for rid in IDS]
    order, reason = rank_replicas(key, loads, AffinityConfig(imbalance_threshold=4))
    assert reason == "imbalanced" and order[-1] == home
    assert ReplicaLoad("r", in_flight=2, stats=ReplicaStats(running=3, waiting=4)).load == 7


def test_full_kv_cache_or_full_replica_moves_the_request():
    key = prefix_key("z" * 50, 1024)
    home = _home(key)
    kv = [
        ReplicaLoad(rid, stats=ReplicaStats(kv_cache_usage=0.97 if rid == home else 0.3))
        for rid in IDS
    ]
    order, reason = rank_replicas(key, kv)
    assert reason == "kv_full" and order[0] != home
    all_full = [ReplicaLoad(rid, stats=ReplicaStats(kv_cache_usage=0.99)) for rid in IDS]
    assert rank_replicas(key, all_full)[1] == "affinity"
    capped = [ReplicaLoad(rid, in_flight=4 if rid == home else 3, max_ongoing=4) for rid in IDS]
    order, reason = rank_replicas(key, capped)
    assert reason == "replica_full" and order[-1] == home


def test_no_key_goes_least_loaded_with_spread_ties():
    order, reason = rank_replicas(None, _loads(r_a=3, r_b=1, r_c=2))
    assert reason == "no_key" and order == ["r-b", "r-c", "r-a"]
    firsts = {rank_replicas(None, _loads(), tiebreak=f"req-{i}")[0][0] for i in range(30)}
    assert firsts == set(IDS)
    assert rank_replicas(None, []) == ([], "no_replicas")


def test_prefix_key_uses_only_the_prefix():
    assert prefix_key("a" * 10 + "b", 10) == prefix_key("a" * 10 + "c", 10)
    assert prefix_key("a" * 10 + "b", 11) != prefix_key("a" * 10 + "c", 11)
    assert prefix_key("", 10) is None and prefix_key(None, 10) is None


def test_stats_round_trip_and_tolerance():
    stats = ReplicaStats(running=2, waiting=1, kv_cache_usage=0.5, ttft_ms=80.0, tpot_ms=12.5)
    assert ReplicaStats.from_dict(stats.to_dict()) == stats
    assert ReplicaStats.from_dict(None) == ReplicaStats()
    odd = ReplicaStats.from_dict(
        {"running": "3", "waiting": "many", "kv_cache_usage": "x", "new": 1}
    )
    assert odd == ReplicaStats(running=3)


def test_chat_text_is_system_and_first_user_turn():
    turn1 = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}]}
    turn2 = {
        "messages": [
            *turn1["messages"],
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "U2"},
        ]
    }
    t1 = extract_prompt_text([turn1], {})
    assert t1 == "system\nS\nuser\nU1\n"
    assert extract_prompt_text([turn2], {}) == t1  # the conversation keeps its home


def test_prompt_extraction_forms():
    parts = SimpleNamespace(
        messages=[
            SimpleNamespace(
                role="user", content=[{"type": "text", "text": "hi"}, {"type": "image_url"}]
            )
        ]
    )
    assert extract_prompt_text([parts], {}) == "user\nhi\n"
    assert extract_prompt_text([], {"request": {"prompt": "complete me"}}) == "complete me"
    assert extract_prompt_text([SimpleNamespace(prompt=[1, 2, 3])], {}) == "1,2,3,"
    assert extract_prompt_text(["plain", 3], {"prefix_key": "tenant-a:doc-7"}) == "tenant-a:doc-7"
    assert extract_prompt_text([{"routing_key": "k1", "prompt": "p"}], {}) == "k1"
    assert extract_prompt_text(["just a string"], {"n": 1}) is None
    assert extract_prompt_text([{"messages": []}], {}) is None
