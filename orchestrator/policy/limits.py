"""Merge the layers of a policy into the effective limits of one (tenant, request class).

Precedence, least to most specific (a tenant's own settings beat anything under `defaults`):
    built-in < defaults < defaults.classes[c] < tenant < tenant.classes[c]
Merging is field by field: only fields written in a block (pydantic's `model_fields_set`)
override, nested blocks (latency, quality_floor, quality_target, actions, reasoning, budgets) merge per field,
and lists are replaced whole. Writing `null` clears an inherited value. Every effective
value remembers the YAML location it came from, so cross-checks can report the right line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from orchestrator.concepts import LatencySLO
from orchestrator.policy.schema_base import Strict
from orchestrator.policy.schema_tenants import (
    BUILTIN_BOUNDS,
    Actions,
    BatchSettings,
    Budgets,
    Failover,
    Limits,
    QualityFloor,
    QualityTarget,
    ReasoningLimits,
    RequestBounds,
)

Loc = tuple[str | int, ...]
LeafPath = tuple[str, ...]


class EffectiveLimits(Strict):
    """Limits with every layer applied: nested blocks are always present (empty = no limit)."""

    cost_target_usd: float | None = None
    cost_cap_usd: float | None = None
    latency: LatencySLO = Field(default_factory=LatencySLO)
    quality_floor: QualityFloor = Field(default_factory=QualityFloor)
    quality_target: QualityTarget = Field(default_factory=QualityTarget)
    actions: Actions = Field(default_factory=Actions)
    reasoning: ReasoningLimits = Field(default_factory=ReasoningLimits)
    max_tokens: int | None = None
    allowed_profiles: tuple[str, ...] | None = None
    denied_profiles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layer:
    """One block of settings and where it sits in the YAML (None = built-in, no line)."""

    model: BaseModel | None
    loc: Loc | None
    skip: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Merged:
    """Merged leaf values and, per leaf, the YAML location that set it."""

    values: dict[LeafPath, Any]
    origins: dict[LeafPath, Loc | None]

    def nested(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path, value in self.values.items():
            cursor = out
            for part in path[:-1]:
                cursor = cursor.setdefault(part, {})
            cursor[path[-1]] = value
        return out

    def origin(self, dotted: str) -> Loc | None:
        """YAML location of an effective field (`"latency.ttft_p95_ms"`) or, for a block
        (`"latency"`), of the block that set its most recently merged field; None if built-in."""
        path = tuple(dotted.split("."))
        for p in (path[:i] for i in range(len(path), 0, -1)):
            if p in self.origins:
                return self.origins[p]
        for p, loc in reversed(self.origins.items()):  # latest merged first
            if p[: len(path)] == path and loc is not None:
                return loc[: len(loc) - (len(p) - len(path))]
        return None


def _set_leaf(merged: Merged, path: LeafPath, value: Any, loc: Loc | None) -> None:
    for existing in [p for p in merged.values if p[: len(path)] == path or path[: len(p)] == p]:
        del merged.values[existing]
        merged.origins.pop(existing, None)
    merged.values[path] = value
    merged.origins[path] = loc


def _collect(
    model: BaseModel, path: LeafPath, loc: Loc | None, merged: Merged, skip: Iterable[str]
) -> None:
    for name in sorted(model.model_fields_set - set(skip)):
        value = getattr(model, name)
        sub_loc = None if loc is None else loc + (name,)
        if isinstance(value, BaseModel):
            _collect(value, path + (name,), sub_loc, merged, ())
        else:
            _set_leaf(merged, path + (name,), value, sub_loc)


def merge_layers(layers: Sequence[Layer]) -> Merged:
    """Apply layers in order (later wins, field by field)."""
    merged = Merged(values={}, origins={})
    for layer in layers:
        if layer.model is not None:
            _collect(layer.model, (), layer.loc, merged, layer.skip)
    return merged


_TENANT_ONLY = frozenset(
    {
        "budgets",
        "requests",
        "priority",
        "failover",
        "batch",
        "classes",
        "name",
        "description",
        "api_keys",
    }
)
_NESTED = ("latency", "quality_floor", "quality_target", "actions", "reasoning")


def effective_limits(layers: Sequence[Layer]) -> tuple[EffectiveLimits, Merged]:
    """Merge Limits-shaped layers (tenant-only fields are ignored) into EffectiveLimits."""
    merged = merge_layers([Layer(lay.model, lay.loc, lay.skip | _TENANT_ONLY) for lay in layers])
    data = merged.nested()
    for key in _NESTED:
        if data.get(key) is None:
            data.pop(key, None)
    if data.get("denied_profiles") is None:
        data.pop("denied_profiles", None)
    return EffectiveLimits.model_validate(data), merged


def effective_budgets(layers: Sequence[Layer]) -> tuple[Budgets, Merged]:
    """Merge the `budgets` blocks of tenant-shaped layers."""
    only_budgets = [
        Layer(lay.model, lay.loc, frozenset(type(lay.model).model_fields) - {"budgets"})
        for lay in layers
        if lay.model is not None
    ]
    merged = merge_layers(only_budgets)
    return Budgets.model_validate(merged.nested().get("budgets") or {}), merged


def tenant_field(layers: Sequence[Layer], name: str) -> tuple[Any, Merged]:
    """Merge one tenant-only field (`requests`, `priority`, `failover`) of tenant-shaped
    layers, field by field for blocks; the merged value is None when no layer sets it."""
    only = [
        Layer(lay.model, lay.loc, frozenset(type(lay.model).model_fields) - {name})
        for lay in layers
        if lay.model is not None
    ]
    merged = merge_layers(only)
    return merged.nested().get(name), merged


BUILTIN_BATCH = BatchSettings(
    price_factor=0.5,
    max_completion_window="24h",
    max_concurrent_lines=8,
    yield_to_interactive_s=10.0,
)


def effective_batch(layers: Sequence[Layer]) -> BatchSettings:
    """The tenant's batch settings, built-in values where no layer sets a field."""
    batch, _ = tenant_field(layers, "batch")
    set_here = {k: v for k, v in (batch or {}).items() if v is not None}
    return BatchSettings.model_validate({**BUILTIN_BATCH.model_dump(), **set_here})


def effective_tenant_settings(
    layers: Sequence[Layer],
) -> tuple[RequestBounds, int, Failover]:
    """Request bounds (built-in values where unset), shedding priority and failover rules."""
    bounds, _ = tenant_field(layers, "requests")
    priority, _ = tenant_field(layers, "priority")
    failover, _ = tenant_field(layers, "failover")
    filled = {**BUILTIN_BOUNDS.model_dump(), **{k: v for k, v in (bounds or {}).items() if v}}
    rules = {k: v for k, v in (failover or {}).items() if v is not None}
    return (
        RequestBounds.model_validate(filled),
        int(priority or 0),
        Failover.model_validate({"retry": True, "migrate_streams": True, **rules}),
    )


BUILTIN = Limits(
    cost_target_usd=None,
    cost_cap_usd=None,
    latency=LatencySLO(),
    quality_floor=QualityFloor(),
    quality_target=QualityTarget(),
    actions=Actions(
        on_cost_cap=["downgrade", "cap_tokens", "reject"],
        on_budget_exhausted=["reject"],
        on_cost_target=[],
        on_slo_unmeetable=[],
        cap_tokens_floor=16,
    ),
    reasoning=ReasoningLimits(allowed=True, max_reasoning_tokens=None),
    max_tokens=None,
    allowed_profiles=None,
    denied_profiles=None,
)
