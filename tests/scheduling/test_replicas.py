"""Replica choice: least predicted outstanding work, prefix affinity as a score."""

from __future__ import annotations

from orchestrator.scheduling import ReplicaLoad, choose_replica


def test_the_least_outstanding_work_wins_not_the_fewest_requests():
    # r1 holds one long generation, r2 three short ones: r2 has less work left
    loads = [ReplicaLoad("r1", 2000.0), ReplicaLoad("r2", 3 * 50.0)]
    assert choose_replica(loads)[0] == "r2"


def test_affinity_wins_between_near_equal_replicas_and_yields_to_a_busy_home():
    near = [ReplicaLoad("a", 300.0), ReplicaLoad("home", 400.0)]
    assert choose_replica(near, home="home", affinity_tokens=256)[0] == "home"
    busy = [ReplicaLoad("a", 300.0), ReplicaLoad("home", 5000.0)]
    assert choose_replica(busy, home="home", affinity_tokens=256)[0] == "a"


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
