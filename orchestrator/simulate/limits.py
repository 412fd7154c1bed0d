"""Cluster-size limits for a rate-scaled replay.

A catalog and a policy describe a cluster for some traffic; replaying that traffic at X times
its rate on the same replica maxima, cost ceiling and budgets only measures the limits. With
`scale_limits(catalog, policy, X)` every profile's `replicas.max`, every policy
`max_replicas`, the `max_cost_per_hour_usd` ceiling and every tenant budget are multiplied by
X (rounded up); minima, SLOs, prices and everything else stay as written. The result is
validated exactly as the files are (the same loaders).
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from orchestrator.catalog.schema import Catalog
from orchestrator.policy import Policy, load_policy_text


def _scale_budgets(block: dict[str, Any] | None, x: float) -> None:
    budgets = (block or {}).get("budgets")
    if budgets:
        for key, value in budgets.items():
            if value is not None:
                budgets[key] = value * x


def scale_limits(catalog: Catalog, policy: Policy, x: float) -> tuple[Catalog, Policy]:
    """The catalog and policy with maxima, ceiling and budgets multiplied by `x` (> 1)."""
    if x <= 1:
        return catalog, policy
    cat = catalog.model_dump(mode="json", exclude_unset=True)
    for p in cat["profiles"]:
        replicas = p.setdefault("replicas", {})
        current = catalog.profile(p["name"]).replicas.max
        replicas["max"] = math.ceil(current * x)
    scaled_catalog = Catalog.model_validate(cat)

    spec = policy.spec.model_dump(mode="json", exclude_unset=True)
    spec.pop("catalog", None)  # the scaled catalog is passed in, not read from the hint
    auto = spec.setdefault("autoscaling", {})
    if auto.get("max_cost_per_hour_usd") is not None:
        auto["max_cost_per_hour_usd"] *= x
    for bounds in (auto.get("profiles") or {}).values():
        if bounds.get("max_replicas"):
            bounds["max_replicas"] = math.ceil(bounds["max_replicas"] * x)
    _scale_budgets(spec.get("defaults"), x)
    _scale_budgets(spec.get("default_tenant"), x)
    for tenant in spec.get("tenants") or []:
        _scale_budgets(tenant, x)
    text = yaml.safe_dump(spec, sort_keys=False)
    scaled_policy = load_policy_text(
        text, f"{policy.source} (limits x{x:g})", scaled_catalog, resolve_secrets=False
    )
    return scaled_catalog, scaled_policy
