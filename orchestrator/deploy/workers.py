"""Derive the chart's catalog facts (worker groups) from a profile catalog. Pure functions.

Invariants:
- one naming scheme from catalog to cluster: a node type is a worker group; its name is the
  value of the `orchestrator.io/node-type` node label its pods start with (`ray start --labels`),
  the label a profile pins itself to in `placement.node_labels`;
- one GPU worker group per node type of the catalog's GPU profiles: the profile's node-type
  label, else `gpu-<type>` (lowercase accelerator type); one accelerator type per group;
- a group's pods carry the union of its profiles' node labels (conflicting values are an error);
- CPU profiles run on the `cpu` worker group (node type `cpu`; the head is node type `head`);
- a pod holds `gpusPerPod` = the largest `accelerator.count` of that type's profiles, so every
  replica fits on one pod (tensor parallelism stays inside a pod);
- `minReplicas`/`maxReplicas` are the pods needed for every profile's min/max replicas when
  replicas of one profile are packed `gpusPerPod // count` to a pod;
- CPU profiles run on the CPU worker group, which the values size (not the catalog).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from orchestrator.catalog import Catalog, Profile
from orchestrator.catalog.schema import NODE_TYPE_LABEL
from orchestrator.deploy.values import GeneratedValues, GeneratedWorkerGroup


def catalog_sha256(text: str) -> str:
    """SHA-256 of the catalog file's text (what the chart's `sha256sum` computes)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


CPU_GROUP = "cpu"
HEAD_NODE_TYPE = "head"


def group_name(accelerator_type: str) -> str:
    """Default worker group name for an accelerator type: `H100` -> `gpu-h100`."""
    return "gpu-" + accelerator_type.lower()


def node_type(profile: Profile) -> str:
    """The node type (= worker group) a profile's replicas run on."""
    if profile.placement.node_type:
        return profile.placement.node_type
    return group_name(profile.accelerator.type) if profile.accelerator.is_gpu else CPU_GROUP


def ray_labels(labels: dict[str, str]) -> str:
    """`ray start --labels` value: `k=v` pairs sorted by key, comma-separated (what the chart's
    `orchestrator.rayLabels` helper writes)."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def group_labels(group: str, profiles: list[Profile]) -> dict[str, str]:
    """Node labels of a group's pods: its node type plus every label its profiles require."""
    labels = {NODE_TYPE_LABEL: group}
    for p in profiles:
        for key, value in p.placement.node_labels.items():
            if labels.setdefault(key, value) != value:
                raise ValueError(
                    f"node type {group!r}: profile {p.name!r} needs label {key}={value}, "
                    f"another profile of the group needs {key}={labels[key]}"
                )
    return labels


def cpu_quantity(cpus: float) -> str:
    """A Kubernetes CPU quantity string: whole numbers without a decimal point."""
    return str(int(cpus)) if float(cpus).is_integer() else f"{cpus:g}"


def _gpu_group(
    group: str, profiles: list[Profile], min_replicas: Mapping[str, int]
) -> GeneratedWorkerGroup:
    types = sorted({p.accelerator.type for p in profiles})
    if len(types) > 1:
        raise ValueError(f"node type {group!r} mixes accelerator types {', '.join(types)}")
    accelerator_type = types[0]
    gpus_per_pod = max(p.accelerator.count for p in profiles)
    cpus = 0.0
    pods_min = pods_max = 0
    for p in profiles:
        per_pod = gpus_per_pod // p.accelerator.count
        cpus = max(cpus, per_pod * p.accelerator.cpus)
        pods_min += math.ceil(min_replicas.get(p.name, p.replicas.min) / per_pod)
        pods_max += math.ceil(p.replicas.max / per_pod)
    return GeneratedWorkerGroup(
        groupName=group,
        acceleratorType=accelerator_type,
        gpusPerPod=gpus_per_pod,
        cpusPerPod=cpu_quantity(math.ceil(cpus * 1000) / 1000),
        minReplicas=pods_min,
        maxReplicas=pods_max,
        profiles=[p.name for p in profiles],
        nodeLabels=group_labels(group, profiles),
    )


def derive_generated(
    catalog: Catalog, catalog_text: str, min_replicas: Mapping[str, int] | None = None
) -> GeneratedValues:
    """The chart's `generated` values for a catalog and the exact text it was read from;
    `min_replicas` = the policy's effective minimum per profile where it lowers the catalog's
    (a worker group keeps only the pods those minimum replicas need)."""
    mins = min_replicas or {}
    by_group: dict[str, list[Profile]] = {}
    cpu_profiles = [p for p in catalog.profiles if not p.accelerator.is_gpu]
    for p in catalog.profiles:
        group = node_type(p)
        if not p.accelerator.is_gpu and group != CPU_GROUP:
            raise ValueError(
                f"profile {p.name!r}: the chart runs CPU profiles on its {CPU_GROUP!r} worker "
                f"group; node type {group!r} has no group"
            )
        if p.accelerator.is_gpu:
            if group in (CPU_GROUP, HEAD_NODE_TYPE):
                raise ValueError(f"profile {p.name!r}: node type {group!r} has no GPUs")
            by_group.setdefault(group, []).append(p)
    return GeneratedValues(
        catalogSha256=catalog_sha256(catalog_text),
        cpuProfiles=[p.name for p in cpu_profiles],
        cpuNodeLabels=group_labels(CPU_GROUP, cpu_profiles),
        gpuWorkerGroups=[_gpu_group(g, ps, mins) for g, ps in sorted(by_group.items())],
    )
