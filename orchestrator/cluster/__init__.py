"""The Ray cluster as the orchestrator sees it: nodes, where profiles run, what cannot be placed."""

from orchestrator.cluster.placement import (
    Node,
    ProfilePlacement,
    ReplicaGroup,
    placement_report,
    unplaceable_reason,
)

__all__ = ["Node", "ProfilePlacement", "ReplicaGroup", "placement_report", "unplaceable_reason"]
