"""A loaded policy: the spec resolved against one catalog, ready for the router and server.

`Policy` is immutable; hot reload swaps whole objects (see `watch.py`). Invariants:
- every tenant (the default one included) has EffectiveLimits for all four request classes;
- `eligible_profiles` lists catalog profiles only, in catalog order, after allowed/denied
  lists, the quality floor and `max_replicas: 0` are applied;
- API keys are held only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestrator.catalog.schema import Catalog
from orchestrator.concepts import QueryClass
from orchestrator.config_files import ConfigIssue
from orchestrator.policy.limits import BUILTIN_BATCH, EffectiveLimits
from orchestrator.policy.schema import PolicySpec
from orchestrator.policy.schema_tenants import (
    BUILTIN_BOUNDS,
    BatchSettings,
    Budgets,
    Failover,
    KeyRef,
    RequestBounds,
)
from orchestrator.pricing import HOURS_PER_MONTH, TokenPrices


@dataclass(frozen=True)
class ScalingBounds:
    """Effective autoscaling settings of one profile (catalog bounds narrowed by the policy)."""

    profile: str
    min_replicas: int
    max_replicas: int
    headroom: float
    scale_to_zero: bool
    initial_replicas: int = 0  # deployed at start: the catalog's `initial`, else the minimum
    to_zero_delay_s: float = 0.0  # its last replica's extra hold (policy scale_to_zero_delay_s)


@dataclass(frozen=True)
class TenantPolicy:
    """Everything the router needs to know about one tenant."""

    name: str
    is_default: bool
    budgets: Budgets
    classes: Mapping[QueryClass, EffectiveLimits]
    eligible: Mapping[QueryClass, tuple[str, ...]]
    key_refs: tuple[KeyRef, ...] = ()
    description: str | None = None
    bounds: RequestBounds = BUILTIN_BOUNDS  # every field set (built-in values where unset)
    priority: int = 0  # overload shedding: lower priorities are refused first
    failover: Failover = Failover(retry=True, migrate_streams=True)  # both fields set
    batch: BatchSettings = BUILTIN_BATCH  # every field set (built-in values where unset)

    def limits(self, request_class: QueryClass = "standard") -> EffectiveLimits:
        """Effective limits for a request class (unknown classes get `standard`)."""
        return self.classes.get(request_class) or self.classes["standard"]

    def eligible_profiles(self, request_class: QueryClass = "standard") -> tuple[str, ...]:
        """Profiles this tenant may use for the class (before family / context-length filters)."""
        found = self.eligible.get(request_class)
        return found if found is not None else self.eligible["standard"]

    def all_eligible_profiles(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for names in self.eligible.values():
            seen.update(dict.fromkeys(names))
        return tuple(seen)


def key_digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Policy:
    """A validated policy resolved against `catalog`."""

    spec: PolicySpec
    catalog: Catalog
    tenants: Mapping[str, TenantPolicy]
    default_tenant: TenantPolicy
    prices: Mapping[str, TokenPrices]
    scaling: Mapping[str, ScalingBounds]
    version: str
    source: str
    secrets_resolved: bool
    key_files: tuple[str, ...] = ()
    warnings: tuple[ConfigIssue, ...] = ()  # legal but likely unintended (policy validate)
    _key_index: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def defines_keys(self) -> bool:
        return any(not t.is_default for t in self.tenants.values())

    def resolve_tenant(self, api_key: str | None) -> TenantPolicy | None:
        """The tenant a bearer token belongs to; None means "unknown key" (answer 401).

        Without keys in the policy everyone is the default tenant. With keys, an unknown or
        missing key is the default tenant only under `unknown_keys: default_tenant`.
        """
        if not self.defines_keys:
            return self.default_tenant
        if not self.secrets_resolved:
            raise RuntimeError("policy was loaded without resolving API keys (structure only)")
        if api_key:
            name = self._key_index.get(key_digest(api_key))
            if name is not None:
                return self.tenants[name]
        return self.default_tenant if self.spec.unknown_keys == "default_tenant" else None

    def tenant(self, name: str) -> TenantPolicy:
        return self.tenants[name]

    def reachable_tenants(self) -> list[TenantPolicy]:
        """Tenants a request can end up as (the default tenant only when it is reachable)."""
        named = [t for t in self.tenants.values() if not t.is_default]
        if not named or self.spec.unknown_keys == "default_tenant":
            return [self.default_tenant, *named]
        return named

    def last_replica_hold_s(self, profile: str) -> float:
        """Seconds a profile's last replica stays once its load is gone: the scale-down delay,
        or the profile's `scale_to_zero_delay_s` when longer (the planner holds it; an
        opening is priced for it)."""
        bounds = self.scaling.get(profile)
        extra = bounds.to_zero_delay_s if bounds is not None else 0.0
        return max(self.spec.autoscaling.scale_down_delay_s, extra)

    def min_replicas_cost_per_hour(self, profiles: tuple[str, ...] | None = None) -> float:
        """USD/hour of the always-on replicas of `profiles` (default: the whole catalog)."""
        names = profiles if profiles is not None else tuple(self.scaling)
        return sum(
            self.scaling[n].min_replicas * self.catalog.profile(n).price_per_replica_hour_usd
            for n in names
        )

    def min_replicas_cost_per_month(self, profiles: tuple[str, ...] | None = None) -> float:
        return self.min_replicas_cost_per_hour(profiles) * HOURS_PER_MONTH
