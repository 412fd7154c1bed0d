"""Where each profile's replicas run, and why a profile cannot be placed. Pure functions.

Inputs are snapshots of the Ray cluster (`Node`s and the placement groups of profile replicas,
`ReplicaGroup`s); the output is one `ProfilePlacement` per profile:

- `placed`: at least one replica's placement group is created on a live node;
- `pending`: replicas are being placed (or the profile runs no replica right now);
- `unplaceable`: no replica is placed and the cluster cannot host one; `reason` says why in
  the words an operator needs ("unplaceable: no node with label orchestrator.io/node-type=cpu-b").

Invariants: a profile is `unplaceable` only when none of its replicas is placed and the reason
names the first unmet requirement in the order labels -> accelerator -> size -> free capacity;
node types are named by their `orchestrator.io/node-type` label (else a short node id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from orchestrator.catalog.schema import NODE_TYPE_LABEL, Catalog, Profile

PlacementState = Literal["placed", "pending", "unplaceable"]
_EPS = 1e-9


@dataclass(frozen=True)
class Node:
    """One Ray node as the GCS reports it."""

    node_id: str
    alive: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    total: Mapping[str, float] = field(default_factory=dict)
    available: Mapping[str, float] | None = None  # None: unknown (treated as free)

    @property
    def node_type(self) -> str:
        return self.labels.get(NODE_TYPE_LABEL) or self.node_id[:8]


@dataclass(frozen=True)
class ReplicaGroup:
    """The placement group of one replica of a profile."""

    profile: str
    state: str  # Ray's: PENDING, CREATED, RESCHEDULING, REMOVED
    node_ids: tuple[str, ...] = ()


class ProfilePlacement(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    state: PlacementState
    nodes: list[str] = []  # node types hosting placed replicas (one entry per replica)
    reason: str | None = None


def replica_demand(profile: Profile) -> dict[str, float]:
    """Ray resources one replica reserves (the sum of its placement bundles, as
    `engines.config.llm_config_dict` asks for them)."""
    acc = profile.accelerator
    if not acc.is_gpu:
        return {"CPU": acc.cpus}
    # the replica actor itself (Serve's default 1 CPU) sits in the first bundle
    return {
        "CPU": 1.0,
        "GPU": float(acc.count),
        f"accelerator_type:{acc.type}": 0.001 * acc.count,
    }


def _fits(resources: Mapping[str, float], demand: Mapping[str, float]) -> bool:
    return all(resources.get(k, 0.0) + _EPS >= v for k, v in demand.items())


def _labels_text(labels: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items())


def _demand_text(demand: Mapping[str, float]) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in demand.items() if not k.startswith("accelerator_"))


def unplaceable_reason(profile: Profile, nodes: Iterable[Node]) -> str | None:
    """Why no live node can take one more replica of `profile` (None: some node can)."""
    alive = [n for n in nodes if n.alive]
    wanted = profile.placement.node_labels
    where = f"label {_labels_text(wanted)}" if wanted else "the right accelerator"
    matching = [n for n in alive if all(n.labels.get(k) == v for k, v in wanted.items())]
    if not matching:
        for key, value in wanted.items():
            if not any(n.labels.get(key) == value for n in alive):
                return f"unplaceable: no node with label {key}={value}"
        return f"unplaceable: no node with labels {_labels_text(wanted)}"
    demand = replica_demand(profile)
    acc = profile.accelerator
    if acc.is_gpu:
        key = f"accelerator_type:{acc.type}"
        matching = [n for n in matching if n.total.get(key, 0.0) > 0]
        if not matching:
            with_labels = f" with label {_labels_text(wanted)}" if wanted else ""
            return f"unplaceable: no node{with_labels} has {acc.type} GPUs"
        where = f"{acc.type} node" + (f" with label {_labels_text(wanted)}" if wanted else "")
    else:
        where = "node" + (f" with label {_labels_text(wanted)}" if wanted else "")
    big = [n for n in matching if _fits(n.total, demand)]
    if not big:
        return f"unplaceable: no {where} is large enough for {_demand_text(demand)}"
    free = [n for n in big if n.available is None or _fits(n.available, demand)]
    if not free:
        return f"unplaceable: every {where} is full (a replica needs {_demand_text(demand)})"
    return None


def placement_report(
    catalog: Catalog, nodes: Iterable[Node], groups: Iterable[ReplicaGroup]
) -> dict[str, ProfilePlacement]:
    """The placement of every catalog profile from one cluster snapshot."""
    nodes = list(nodes)
    alive = {n.node_id: n for n in nodes if n.alive}
    by_profile: dict[str, list[ReplicaGroup]] = {}
    for g in groups:
        by_profile.setdefault(g.profile, []).append(g)
    report: dict[str, ProfilePlacement] = {}
    for profile in catalog.profiles:
        mine = [g for g in by_profile.get(profile.name, []) if g.state != "REMOVED"]
        placed = [
            g
            for g in mine
            if g.state == "CREATED" and g.node_ids and all(i in alive for i in g.node_ids)
        ]
        waiting = len(mine) - len(placed)
        reason = unplaceable_reason(profile, nodes) if waiting else None
        node_types = [alive[g.node_ids[0]].node_type for g in placed]
        if placed:
            note = f"{waiting} replica(s) waiting: {reason}" if reason else None
            report[profile.name] = ProfilePlacement(state="placed", nodes=node_types, reason=note)
        elif reason:
            report[profile.name] = ProfilePlacement(state="unplaceable", reason=reason)
        else:
            report[profile.name] = ProfilePlacement(state="pending")
    return report
