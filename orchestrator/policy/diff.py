"""`policy diff OLD NEW`: what changes for whom, computed on the resolved policies (pure).

Both policies are flattened to `subject -> {field: value}` (tenants per request class with
every effective limit and their eligible profiles; prices and scaling per profile; cluster
settings), so a change inherited from `defaults` shows up for every tenant it reaches.
Identical changes across request classes of a tenant are reported once; the limits of a
default tenant that is unreachable in both versions are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from orchestrator.concepts import QUERY_CLASSES
from orchestrator.policy.model import Policy

ALL_CLASSES = "all classes"
_MISSING = object()


@dataclass(frozen=True)
class Change:
    subject: (
        str  # "tenant acme", "pricing llama8b-fp8-ngram", "autoscaling ...", "cluster", "policy"
    )
    scope: str  # request class, "all classes", or "" for tenant/profile-wide fields
    field: str
    old: Any
    new: Any

    @property
    def kind(self) -> str:
        if self.old is _MISSING:
            return "added"
        if self.new is _MISSING:
            return "removed"
        return "changed"


def _leaves(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _leaves(getattr(value, name), f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(value, list | tuple):
        out[prefix] = tuple(value)
    else:
        out[prefix] = value


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def flatten(policy: Policy) -> dict[str, dict[tuple[str, str], Any]]:
    """subject -> {(scope, field): value} for everything a policy decides."""
    reachable = {t.name for t in policy.reachable_tenants()}
    out: dict[str, dict[tuple[str, str], Any]] = {}
    out["policy"] = {("", "unknown_keys"): policy.spec.unknown_keys}
    for rc in QUERY_CLASSES:
        ref = policy.spec.reference_request(rc)
        out["policy"][(rc, "reference_request")] = (ref.input_tokens, ref.output_tokens)
    for t in policy.tenants.values():
        fields: dict[tuple[str, str], Any] = {
            ("", "reachable"): t.name in reachable,
            ("", "api_keys"): tuple(k.describe() for k in t.key_refs),
        }
        budgets: dict[str, Any] = {}
        _leaves(t.budgets, "budgets", budgets)
        fields.update({("", k): v for k, v in budgets.items()})
        for rc in QUERY_CLASSES:
            limits: dict[str, Any] = {}
            _leaves(t.limits(rc), "", limits)
            fields.update({(rc, k): v for k, v in limits.items()})
            fields[(rc, "eligible_profiles")] = t.eligible_profiles(rc)
        out[f"tenant {t.name}"] = fields
    for name, prices in policy.prices.items():
        out[f"pricing {name}"] = {
            ("", "input_usd_per_1m"): _r(prices.input_usd_per_1m),
            ("", "cached_input_usd_per_1m"): _r(prices.cached_input_usd_per_1m),
            ("", "output_usd_per_1m"): _r(prices.output_usd_per_1m),
        }
    for name, b in policy.scaling.items():
        out[f"autoscaling {name}"] = {
            ("", "min_replicas"): b.min_replicas,
            ("", "max_replicas"): b.max_replicas,
            ("", "headroom"): b.headroom,
            ("", "scale_to_zero"): b.scale_to_zero,
            ("", "scale_to_zero_delay_s"): b.to_zero_delay_s,
        }
    out["cluster"] = {
        ("", "max_cost_per_hour_usd"): policy.spec.autoscaling.max_cost_per_hour_usd,
        ("", "min_replicas_usd_per_hour"): _r(policy.min_replicas_cost_per_hour()),
    }
    return out


def _rollup(subject: str, changes: list[Change]) -> list[Change]:
    """Merge per-class changes that are identical: scope becomes "all classes" or a list."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for c in changes:
        if c.scope in QUERY_CLASSES:
            groups.setdefault((c.field, repr(c.old), repr(c.new)), []).append(c.scope)
    out = []
    done: set[tuple[str, str, str]] = set()
    for c in changes:
        key = (c.field, repr(c.old), repr(c.new))
        if c.scope not in QUERY_CLASSES:
            out.append(c)
        elif key not in done:
            done.add(key)
            scopes = groups[key]
            scope = ALL_CLASSES if len(scopes) == len(QUERY_CLASSES) else ", ".join(scopes)
            out.append(Change(subject, scope, c.field, c.old, c.new))
    return out


def diff_policies(old: Policy, new: Policy) -> list[Change]:
    """Every difference between two resolved policies, subjects in a stable order."""
    a, b = flatten(old), flatten(new)
    changes: list[Change] = []
    for subject in list(a) + [s for s in b if s not in a]:
        if subject not in b:
            changes.append(Change(subject, "", "", None, _MISSING))
            continue
        if subject not in a:
            changes.append(Change(subject, "", "", _MISSING, None))
            continue
        per_subject = []
        hidden = subject.startswith("tenant ") and not (
            a[subject][("", "reachable")] or b[subject][("", "reachable")]
        )
        for key in list(a[subject]) + [k for k in b[subject] if k not in a[subject]]:
            va, vb = a[subject].get(key, _MISSING), b[subject].get(key, _MISSING)
            if hidden and key[0]:
                continue  # limits of a tenant nobody can reach in either version
            if va != vb:
                per_subject.append(Change(subject, key[0], key[1], va, vb))
        changes += _rollup(subject, per_subject)
    return changes


def _fmt(v: Any) -> str:
    if v is None:
        return "unset"
    if isinstance(v, tuple):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


def render_diff(changes: list[Change]) -> str:
    """One line per change; list changes show what was added (+) and removed (-)."""
    if not changes:
        return "no changes"
    lines = []
    for c in changes:
        where = c.subject + (f" ({c.scope})" if c.scope else "")
        if c.kind != "changed":
            lines.append(f"{where}: {c.kind}")
            continue
        if isinstance(c.old, tuple) and isinstance(c.new, tuple) and c.field != "reference_request":
            plus = [f"+{x}" for x in c.new if x not in c.old]
            minus = [f"-{x}" for x in c.old if x not in c.new]
            detail = " ".join(plus + minus) or f"{_fmt(c.old)} -> {_fmt(c.new)}"
            lines.append(f"{where}: {c.field} {detail}")
        else:
            lines.append(f"{where}: {c.field} {_fmt(c.old)} -> {_fmt(c.new)}")
    return "\n".join(lines)
