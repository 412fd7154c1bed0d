"""Cluster-size limits for a rate-scaled replay.

A catalog and a policy describe a cluster for some traffic; replaying that traffic at X times
its rate on the same replica maxima, cost ceiling, budgets and per-tenant bounds only
measures the limits. With `scale_limits(catalog, policy, X)` every profile's `replicas.max`,
every policy `max_replicas`, the `max_cost_per_hour_usd` ceiling, every tenant budget, every
tenant's in-flight bound (`requests.max_concurrent_requests`, the built-in 256 included) and
ingress queue bound (`scheduling.max_queued`) are multiplied by X (rounded up; a bound at
most its schema's maximum); minima, SLOs, prices and everything else stay as written. The
result is validated exactly as the files are (the same loaders).
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from orchestrator.catalog.schema import Catalog
from orchestrator.policy import Policy, load_policy_text
from orchestrator.policy.schema_tenants import BUILTIN_BOUNDS

MAX_QUEUED = 100_000  # the schema's bound on scheduling.max_queued


def _scale_budgets(block: dict[str, Any] | None, x: float) -> None:
    budgets = (block or {}).get("budgets")
    if budgets:
        for key, value in budgets.items():
            if value is not None:
                budgets[key] = value * x


def _scale_in_flight(block: dict[str, Any] | None, x: float) -> None:
    bound = ((block or {}).get("requests") or {}).get("max_concurrent_requests")
    if bound is not None:
        block["requests"]["max_concurrent_requests"] = math.ceil(bound * x)  # type: ignore[index]


def _scale_queues(scheduling: dict[str, Any], x: float) -> None:
    scheduling["max_queued"] = min(MAX_QUEUED, math.ceil(scheduling.get("max_queued", 1000) * x))
    for share in (scheduling.get("tenants") or {}).values():
        if share.get("max_queued") is not None:
            share["max_queued"] = min(MAX_QUEUED, math.ceil(share["max_queued"] * x))


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
    defaults = spec.setdefault("defaults", {})
    requests = defaults.setdefault("requests", {})
    if requests.get("max_concurrent_requests") is None:  # the built-in bound, made explicit
        requests["max_concurrent_requests"] = BUILTIN_BOUNDS.max_concurrent_requests
    for block in (defaults, spec.get("default_tenant"), *(spec.get("tenants") or [])):
        _scale_budgets(block, x)
        _scale_in_flight(block, x)
    _scale_queues(spec.setdefault("scheduling", {}), x)
    text = yaml.safe_dump(spec, sort_keys=False)
    scaled_policy = load_policy_text(
        text, f"{policy.source} (limits x{x:g})", scaled_catalog, resolve_secrets=False
    )
    return scaled_catalog, scaled_policy
