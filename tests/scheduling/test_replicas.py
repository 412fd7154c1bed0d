"""Replica choice: least predicted outstanding work, prefix affinity as a score."""

from __future__ import annotations

from orchestrator.scheduling import ReplicaLoad, choose_replica


def test_the_least_outstanding_work_wins_not_the_fewest_requests():
    # r1 holds one long generation, r2 three short ones: r2 has less work left
    loads = [ReplicaLoad("r1", 2000.0), ReplicaLoad("r2", 3 * 50.0)]
    assert choose_replica(loads)[0] == "r2"


def test_the_home_replica_keeps_its_prefix_within_the_request_count_bound():
    # home holds more predicted work (a long shared prompt's prefill) but only 2 requests more
    near = [ReplicaLoad("a", 300.0, requests=1), ReplicaLoad("home", 4000.0, requests=3)]
    assert choose_replica(near, home="home", imbalance_requests=4)[0] == "home"
    # beyond the bound the least outstanding work wins
    busy = [ReplicaLoad("a", 300.0, requests=1), ReplicaLoad("home", 4000.0, requests=6)]
    assert choose_replica(busy, home="home", imbalance_requests=4) == ["a", "home"]
    # a full home yields whatever its counts
    full = [ReplicaLoad("a", 300.0, requests=1), ReplicaLoad("home", 0.0, full=True, requests=1)]
    assert choose_replica(full, home="home")[0] == "a"
    # no home (no shared prefix): least work, the given order on ties
    assert choose_replica(near) == ["a", "home"]
    assert choose_replica([ReplicaLoad("x", 5.0), ReplicaLoad("y", 5.0)]) == ["x", "y"]


def test_the_home_yields_when_its_prefill_backlog_beyond_the_least_exceeds_the_prompt():
    # Mooncake's miss (session 17): the home is prefilling two 40k prompts, the other replica
    # nothing; a 30k prompt is faster elsewhere even if the home held all of it in cache
    behind = [
        ReplicaLoad("a", 500.0, requests=1),
        ReplicaLoad("home", 5500.0, requests=3, prefill_tokens=80_000),
    ]
    assert choose_replica(behind, home="home", prompt_tokens=30_000) == ["a", "home"]
    # a backlog within the prompt's own prefill: the cache may still win, the home keeps it
    near = [
        ReplicaLoad("a", 500.0, requests=1, prefill_tokens=60_000),
        ReplicaLoad("home", 5500.0, requests=3, prefill_tokens=80_000),
    ]
    assert choose_replica(near, home="home", prompt_tokens=30_000)[0] == "home"
    # the prompt unknown (an engine request without the ingress's prediction): counts only
    assert choose_replica(behind, home="home")[0] == "home"


def test_pending_prefill_is_the_whole_prompt_until_the_first_token():
    from orchestrator.scheduling.replicas import pending_prefill

    assert pending_prefill(40_000, 0) == 40_000
    assert pending_prefill(40_000, 1) == 0


def test_full_replicas_come_last():
    loads = [ReplicaLoad("full", 0.0, full=True), ReplicaLoad("busy", 9000.0)]
    assert choose_replica(loads) == ["busy", "full"]


def test_the_prediction_travels_in_vllm_xargs_and_is_read_back():
    from orchestrator.scheduling.replicas import remaining_work, request_work, work_xargs

    xargs = work_xargs(1600, 249.6)
    assert request_work({"vllm_xargs": xargs}) == (1600, 250)
    assert request_work(type("Req", (), {"vllm_xargs": xargs})()) == (1600, 250)
    assert request_work({"messages": []}) is None
    assert remaining_work(1600, 250, 0) == 100 + 250  # prefill (1/16 per prompt token) + decode
    assert remaining_work(1600, 250, 200) == 50
    assert remaining_work(1600, 250, 400) == 0
