"""Resolve a PolicySpec against a Catalog: effective limits, eligible profiles, scaling bounds.

Pure and total: it never raises on a structurally valid spec (unknown profile names simply
match nothing); `checks.py` reports such problems with file and line. The `Merged` records
kept here tell the checks which YAML line set each effective value.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.concepts import QUERY_CLASSES, TIER_RANK, QueryClass
from orchestrator.policy.limits import (
    BUILTIN,
    EffectiveLimits,
    Layer,
    Loc,
    Merged,
    effective_batch,
    effective_budgets,
    effective_limits,
    effective_tenant_settings,
)
from orchestrator.policy.model import ScalingBounds, TenantPolicy
from orchestrator.policy.schema import PolicySpec
from orchestrator.policy.schema_tenants import QualityFloor, TenantDefaults


def meets_quality_floor(profile: Profile, floor: QualityFloor) -> bool:
    """Tier at least min_tier and, when min_score is set, a score at least min_score."""
    if floor.min_tier is not None and (TIER_RANK[profile.quality.tier] < TIER_RANK[floor.min_tier]):
        return False
    if floor.min_score is not None:
        return profile.quality.score is not None and profile.quality.score >= floor.min_score
    return True


def eligible_profiles(
    limits: EffectiveLimits, catalog: Catalog, scaling: dict[str, ScalingBounds]
) -> tuple[str, ...]:
    """Catalog profiles (catalog order) allowed, not denied, above the floor, max_replicas > 0."""
    out = []
    for p in catalog.profiles:
        if limits.allowed_profiles is not None and p.name not in limits.allowed_profiles:
            continue
        if p.name in limits.denied_profiles:
            continue
        if not meets_quality_floor(p, limits.quality_floor):
            continue
        if scaling[p.name].max_replicas <= 0:
            continue
        out.append(p.name)
    return tuple(out)


def scaling_bounds(spec: PolicySpec, catalog: Catalog) -> dict[str, ScalingBounds]:
    """Effective bounds per catalog profile; conflicts are clamped here and reported by checks.

    The catalog's replicas.min is a default the policy may lower (to 0, so always-on replicas
    no tenant uses can be removed): a profile's `min_replicas`, or its `scale_to_zero: true`
    without a `min_replicas`, replaces it. The catalog's replicas.max stays a ceiling.
    A profile starts with the catalog's `replicas.initial` when set, else its minimum: a
    profile the policy lets scale to zero starts cold (warm only where the policy asks)."""
    auto = spec.autoscaling
    out = {}
    for p in catalog.profiles:
        own = auto.profiles.get(p.name)
        lo = p.replicas.min
        if own is not None and own.min_replicas is not None:
            lo = own.min_replicas
        elif own is not None and own.scale_to_zero:
            lo = 0
        hi = own.max_replicas if own and own.max_replicas is not None else p.replicas.max
        to_zero = own.scale_to_zero if own and own.scale_to_zero is not None else auto.scale_to_zero
        headroom = own.headroom if own and own.headroom is not None else auto.headroom
        hi = min(hi, p.replicas.max)
        if not to_zero and hi > 0:
            lo = max(lo, 1)
        lo = min(lo, hi)
        initial = lo if p.replicas.initial is None else min(max(p.replicas.initial, lo), hi)
        zero_delay = own.scale_to_zero_delay_s if own and own.scale_to_zero_delay_s else 0.0
        out[p.name] = ScalingBounds(
            p.name, lo, hi, headroom, to_zero and lo == 0, initial, zero_delay
        )
    return out


@dataclass(frozen=True)
class ResolvedTenant:
    tenant: TenantPolicy
    limits_merged: dict[QueryClass, Merged]
    budgets_merged: Merged
    loc: Loc


def _class_layer(block: TenantDefaults, loc: Loc, rc: QueryClass) -> Layer:
    return Layer(block.classes.get(rc), loc + ("classes", rc))


def resolve_tenant(
    spec: PolicySpec,
    catalog: Catalog,
    scaling: dict[str, ScalingBounds],
    block: TenantDefaults,
    loc: Loc,
    *,
    is_default: bool,
) -> ResolvedTenant:
    """Effective limits of one tenant block for every request class."""
    classes: dict[QueryClass, EffectiveLimits] = {}
    merges: dict[QueryClass, Merged] = {}
    eligible: dict[QueryClass, tuple[str, ...]] = {}
    for rc in QUERY_CLASSES:
        layers = [
            Layer(BUILTIN, None),
            Layer(spec.defaults, ("defaults",)),
            _class_layer(spec.defaults, ("defaults",), rc),
            Layer(block, loc),
            _class_layer(block, loc, rc),
        ]
        classes[rc], merges[rc] = effective_limits(layers)
        eligible[rc] = eligible_profiles(classes[rc], catalog, scaling)
    budgets, budgets_merged = effective_budgets(
        [Layer(spec.defaults, ("defaults",)), Layer(block, loc)]
    )
    bounds, priority, failover = effective_tenant_settings(
        [Layer(spec.defaults, ("defaults",)), Layer(block, loc)]
    )
    batch = effective_batch([Layer(spec.defaults, ("defaults",)), Layer(block, loc)])
    tenant = TenantPolicy(
        name=getattr(block, "name", "default"),
        is_default=is_default,
        budgets=budgets,
        classes=classes,
        eligible=eligible,
        key_refs=tuple(getattr(block, "api_keys", ()) or ()),
        description=getattr(block, "description", None),
        bounds=bounds,
        priority=priority,
        failover=failover,
        batch=batch,
    )
    return ResolvedTenant(tenant, merges, budgets_merged, loc)


def resolve_tenants(
    spec: PolicySpec, catalog: Catalog, scaling: dict[str, ScalingBounds]
) -> list[ResolvedTenant]:
    """The default tenant first, then the named tenants in file order."""
    out = [
        resolve_tenant(
            spec, catalog, scaling, spec.default_tenant, ("default_tenant",), is_default=True
        )
    ]
    for i, t in enumerate(spec.tenants):
        out.append(resolve_tenant(spec, catalog, scaling, t, ("tenants", i), is_default=False))
    return out
