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
