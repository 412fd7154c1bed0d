"""Derive the chart's catalog facts (worker groups) from a profile catalog. Pure functions.

Invariants:
- one GPU worker group per accelerator type in the catalog, named `gpu-<type>` (lowercase);
- a pod holds `gpusPerPod` = the largest `accelerator.count` of that type's profiles, so every
  replica fits on one pod (tensor parallelism stays inside a pod);
- `minReplicas`/`maxReplicas` are the pods needed for every profile's min/max replicas when
  replicas of one profile are packed `gpusPerPod // count` to a pod;
- CPU profiles run on the CPU worker group, which the values size (not the catalog).
"""

from __future__ import annotations

import hashlib
import math

from orchestrator.catalog import Catalog, Profile
from orchestrator.deploy.values import GeneratedValues, GeneratedWorkerGroup


def catalog_sha256(text: str) -> str:
    """SHA-256 of the catalog file's text (what the chart's `sha256sum` computes)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def group_name(accelerator_type: str) -> str:
    """Worker group name for an accelerator type: `H100` -> `gpu-h100`."""
    return "gpu-" + accelerator_type.lower()


def cpu_quantity(cpus: float) -> str:
    """A Kubernetes CPU quantity string: whole numbers without a decimal point."""
    return str(int(cpus)) if float(cpus).is_integer() else f"{cpus:g}"


def _gpu_group(accelerator_type: str, profiles: list[Profile]) -> GeneratedWorkerGroup:
    gpus_per_pod = max(p.accelerator.count for p in profiles)
    cpus = 0.0
    pods_min = pods_max = 0
    for p in profiles:
        per_pod = gpus_per_pod // p.accelerator.count
        cpus = max(cpus, per_pod * p.accelerator.cpus)
        pods_min += math.ceil(p.replicas.min / per_pod)
        pods_max += math.ceil(p.replicas.max / per_pod)
    return GeneratedWorkerGroup(
        groupName=group_name(accelerator_type),
        acceleratorType=accelerator_type,
        gpusPerPod=gpus_per_pod,
        cpusPerPod=cpu_quantity(math.ceil(cpus * 1000) / 1000),
        minReplicas=pods_min,
        maxReplicas=pods_max,
        profiles=[p.name for p in profiles],
    )


def derive_generated(catalog: Catalog, catalog_text: str) -> GeneratedValues:
    """The chart's `generated` values for a catalog and the exact text it was read from."""
    by_type: dict[str, list[Profile]] = {}
    for p in catalog.profiles:
        if p.accelerator.is_gpu:
            by_type.setdefault(p.accelerator.type, []).append(p)
    return GeneratedValues(
        catalogSha256=catalog_sha256(catalog_text),
        cpuProfiles=[p.name for p in catalog.profiles if not p.accelerator.is_gpu],
        gpuWorkerGroups=[_gpu_group(t, ps) for t, ps in sorted(by_type.items())],
    )
