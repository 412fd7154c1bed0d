"""A snapshot of the cluster from Ray's GCS: nodes and our replicas' placement groups (the
edge of `orchestrator.cluster.placement`).

Must run inside a process connected to Ray (the ingress replica, the controller, a driver).
Serve names a replica's placement group after the replica:
`SERVE_REPLICA::<app>#<deployment>#<id>`; profile deployments are `profile:<name>`.
"""

from __future__ import annotations

from orchestrator.cluster.placement import Node, ReplicaGroup
from orchestrator.engines.config import DEPLOYMENT_PREFIX
from orchestrator.raycompat.node_resources import available_resources_per_node

_REPLICA_PREFIX = "SERVE_REPLICA::"


def profile_of_group(name: str, app_name: str) -> str | None:
    """The profile a Serve replica placement group belongs to (None: not one of ours)."""
    if not name.startswith(_REPLICA_PREFIX):
        return None
    parts = name[len(_REPLICA_PREFIX) :].split("#")
    if len(parts) != 3 or parts[0] != app_name or not parts[1].startswith(DEPLOYMENT_PREFIX):
        return None
    return parts[1][len(DEPLOYMENT_PREFIX) :]


def cluster_snapshot(app_name: str) -> tuple[list[Node], list[ReplicaGroup]]:
    """Every node (alive or dead) and the placement groups of the app's profile replicas."""
    import ray
    from ray.util.placement_group import placement_group_table

    available = available_resources_per_node()
    nodes = [
        Node(
            node_id=n["NodeID"],
            alive=bool(n["Alive"]),
            labels=dict(n.get("Labels") or {}),
            total=dict(n.get("Resources") or {}),
            available=available.get(n["NodeID"], {}) if n["Alive"] else {},
        )
        for n in ray.nodes()
    ]
    groups = []
    for pg in placement_group_table().values():
        profile = profile_of_group(pg.get("name") or "", app_name)
        if profile is None:
            continue
        node_ids = tuple(i for i in (pg.get("bundles_to_node_id") or {}).values() if i)
        groups.append(ReplicaGroup(profile=profile, state=pg["state"], node_ids=node_ids))
    return nodes, groups
