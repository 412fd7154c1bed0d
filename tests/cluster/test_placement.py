"""Placement report: where profiles run and the plain reason when they cannot be placed."""

from __future__ import annotations

import pytest

from orchestrator.catalog import Catalog, load_catalog
from orchestrator.catalog.schema import NODE_TYPE_LABEL
from orchestrator.cluster import Node, ReplicaGroup, placement_report, unplaceable_reason
from orchestrator.cluster.placement import replica_demand
from orchestrator.cluster.snapshot import profile_of_group
from orchestrator.paths import PROJECT_ROOT

LOCAL = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")
GPU = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")


def _pinned(catalog: Catalog, **node_types: str) -> Catalog:
    data = catalog.model_dump(mode="json")
    for p in data["profiles"]:
        if p["name"] in node_types:
            p["placement"] = {"node_labels": {NODE_TYPE_LABEL: node_types[p["name"]]}}
    return Catalog.model_validate(data)


CAT = _pinned(LOCAL, **{"smollm2-cpu": "cpu-a", "smollm2-cpu-ngram": "cpu-b"})
A = Node("a" * 56, True, {NODE_TYPE_LABEL: "cpu-a"}, {"CPU": 2.0}, {"CPU": 1.25})
B = Node("b" * 56, True, {NODE_TYPE_LABEL: "cpu-b"}, {"CPU": 1.0}, {"CPU": 0.5})
B_DEAD = Node(B.node_id, False, B.labels, B.total, {})


def test_each_profile_is_placed_on_its_node_type():
    groups = [
        ReplicaGroup("smollm2-cpu", "CREATED", (A.node_id,)),
        ReplicaGroup("smollm2-cpu-ngram", "CREATED", (B.node_id,)),
    ]
    report = placement_report(CAT, [A, B], groups)
    assert report["smollm2-cpu"].state == "placed" and report["smollm2-cpu"].nodes == ["cpu-a"]
    assert (
        report["smollm2-cpu-ngram"].nodes == ["cpu-b"]
        and report["smollm2-cpu-ngram"].reason is None
    )


def test_node_loss_makes_the_pinned_profile_unplaceable_and_says_which_label():
    groups = [
        ReplicaGroup("smollm2-cpu", "CREATED", (A.node_id,)),
        ReplicaGroup("smollm2-cpu-ngram", "RESCHEDULING", ()),
    ]
    report = placement_report(CAT, [A, B_DEAD], groups)
    assert report["smollm2-cpu"].state == "placed"
    lost = report["smollm2-cpu-ngram"]
    assert lost.state == "unplaceable" and lost.nodes == []
    assert lost.reason == f"unplaceable: no node with label {NODE_TYPE_LABEL}=cpu-b"
    # a CREATED group still pointing at the dead node is not placed either
    stale = [ReplicaGroup("smollm2-cpu-ngram", "CREATED", (B.node_id,))]
    assert placement_report(CAT, [A, B_DEAD], stale)["smollm2-cpu-ngram"].state == "unplaceable"


def test_pending_while_a_fitting_node_exists_and_removed_groups_ignored():
    groups = [
        ReplicaGroup("smollm2-cpu-ngram", "PENDING", ()),
        ReplicaGroup("smollm2-cpu", "REMOVED", (A.node_id,)),
    ]
    report = placement_report(CAT, [A, B], groups)
    assert report["smollm2-cpu-ngram"].state == "pending"
    assert report["smollm2-cpu"].state == "pending" and report["smollm2-cpu"].reason is None


@pytest.mark.parametrize(
    ("nodes", "reason"),
    [
        ([A], "no node with label orchestrator.io/node-type=cpu-b"),
        (
            [Node("c" * 56, True, {NODE_TYPE_LABEL: "cpu-b"}, {"CPU": 0.25}, None)],
            "no node with label orchestrator.io/node-type=cpu-b is large enough for 0.5 CPU",
        ),
        (
            [Node("c" * 56, True, {NODE_TYPE_LABEL: "cpu-b"}, {"CPU": 4.0}, {"CPU": 0.25})],
            "every node with label orchestrator.io/node-type=cpu-b is full (a replica needs 0.5 CPU)",
        ),
    ],
    ids=["missing-label", "too-small", "full"],
)
def test_reason_names_the_first_unmet_requirement(nodes, reason):
    assert unplaceable_reason(CAT.profile("smollm2-cpu-ngram"), nodes) == f"unplaceable: {reason}"
    assert unplaceable_reason(CAT.profile("smollm2-cpu-ngram"), [*nodes, B]) is None


def test_gpu_profile_needs_its_accelerator_type():
    profile = GPU.profiles[0]
    acc = profile.accelerator
    cpu_only = Node("c" * 56, True, {}, {"CPU": 64.0})
    assert unplaceable_reason(profile, [cpu_only]) == f"unplaceable: no node has {acc.type} GPUs"
    gpu = Node("g" * 56, True, {}, {"CPU": 64.0, "GPU": 8.0, f"accelerator_type:{acc.type}": 1.0})
    assert unplaceable_reason(profile, [gpu]) is None
    assert replica_demand(profile)["GPU"] == acc.count


def test_serve_group_names_map_to_profiles():
    assert (
        profile_of_group("SERVE_REPLICA::orchestrator#profile:smollm2-cpu#ab12", "orchestrator")
        == "smollm2-cpu"
    )
    assert profile_of_group("SERVE_REPLICA::orchestrator#ingress#ab12", "orchestrator") is None
    assert profile_of_group("SERVE_REPLICA::other#profile:x#ab12", "orchestrator") is None
    assert profile_of_group("mine", "orchestrator") is None
