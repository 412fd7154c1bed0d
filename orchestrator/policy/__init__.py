"""Policy files (policies/*.yaml): the SRE's contract for cost, budgets, latency SLOs,
quality floors and scaling bounds. Schema, loading with catalog cross-checks, pricing,
explain/diff, and a hot-reload watcher."""

from orchestrator.policy.limits import EffectiveLimits
from orchestrator.policy.loader import (
    catalog_path_for,
    default_policy,
    load_policy,
    load_policy_for_cli,
    load_policy_text,
)
from orchestrator.policy.model import Policy, ScalingBounds, TenantPolicy
from orchestrator.policy.schema import PolicySpec, policy_json_schema
from orchestrator.policy.watch import PolicyWatcher, WatchStatus

__all__ = [
    "EffectiveLimits",
    "Policy",
    "PolicySpec",
    "PolicyWatcher",
    "ScalingBounds",
    "TenantPolicy",
    "WatchStatus",
    "catalog_path_for",
    "default_policy",
    "load_policy",
    "load_policy_for_cli",
    "load_policy_text",
    "policy_json_schema",
]
