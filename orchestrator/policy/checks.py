"""Cross-checks of a structurally valid policy against its catalog, as located ConfigIssues.

Checked (each issue names file, line and field):
- tenant names are unique (and differ from the default tenant's);
- every profile name the policy mentions exists in the catalog;
- autoscaling maxima lie within the catalog's replicas.max (minima may go below the
  catalog's replicas.min, which is a default); scale-to-zero agrees with min_replicas;
- the cluster $/hour ceiling covers the always-on (minimum) replicas;
- per tenant and request class: cost target <= cost cap, max_reasoning_tokens <= max_tokens,
  at least one eligible profile, a latency SLO that some eligible profile meets on an
  idle replica for the class's reference request, and a max_tokens some eligible profile's
  context (max_model_len) can hold;
- per tenant: written request bounds (max_prompt_tokens, max_output_tokens) some eligible
  profile can serve; budget windows that agree (no day budget above the month's, ...);
- no API-key environment variable or key file is named twice (within or across tenants),
  checked from the names, without reading the secrets;
- the budgets of the tenants that may use always-on replicas cover their cost.
Tenants checked: every named tenant, and the default tenant when it is reachable or written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.concepts import QUERY_CLASSES
from orchestrator.config_files import ConfigIssue, LoadedYaml
from orchestrator.policy.limits import Loc, Merged
from orchestrator.policy.model import ScalingBounds
from orchestrator.policy.resolve import ResolvedTenant
from orchestrator.policy.schema import PolicySpec
from orchestrator.policy.schema_tenants import TenantDefaults
from orchestrator.pricing import HOURS_PER_DAY, HOURS_PER_MONTH
from orchestrator.replica_model import performance_of, request_latency

SLO_FIELDS = ("ttft_p95_ms", "tpot_p95_ms", "e2e_p95_ms")
PERIODS = (
    ("per_hour_usd", "hour", 1),
    ("per_day_usd", "day", HOURS_PER_DAY),
    ("per_month_usd", "month", HOURS_PER_MONTH),
)


def field_name(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + part
    return out or "<root>"


class _Reporter:
    """Collects issues; issues with the same location and reason are merged, listing whom
    they affect (so a bad default inherited by ten tenants is reported once). `who` is
    "tenant/class"; `detail` (optional) says how that tenant and class is affected."""

    MAX_TENANTS = 5

    def __init__(self, loaded: LoadedYaml):
        self.loaded = loaded
        self._who: dict[tuple[Loc, str], dict[str, list[str]]] = {}

    def add(self, loc: Loc, reason: str, who: str | None = None, detail: str = "") -> None:
        tenants = self._who.setdefault((loc, reason), {})
        if who:
            tenant, _, rc = who.partition("/")
            entry = rc + (f": {detail}" if detail else "")
            entries = tenants.setdefault(tenant, [])
            if entry not in entries:
                entries.append(entry)

    @staticmethod
    def _affects(tenants: dict[str, list[str]]) -> str:
        parts = []
        for tenant, entries in tenants.items():
            if not any(entries):  # a per-tenant issue, not per request class
                parts.append(f"tenant {tenant!r}")
            elif len(entries) == len(QUERY_CLASSES) and all(e in QUERY_CLASSES for e in entries):
                parts.append(f"tenant {tenant!r} (all classes)")
            else:
                parts.append(f"tenant {tenant!r} ({', '.join(entries)})")
        listed = parts[: _Reporter.MAX_TENANTS]
        more = len(parts) - len(listed)
        return "; ".join(listed) + (f"; and {more} more tenant(s)" if more else "")

    def issues(self) -> list[ConfigIssue]:
        out = []
        for (loc, reason), tenants in self._who.items():
            text = f"{reason}; affects {self._affects(tenants)}" if tenants else reason
            out.append(
                ConfigIssue(self.loaded.file, self.loaded.line_of(loc), field_name(loc), text)
            )
        return sorted(out, key=lambda i: i.line)


def _limit_blocks(spec: PolicySpec) -> Iterable[tuple[Loc, TenantDefaults | object]]:
    """Every Limits-shaped block with its location."""
    tops: list[tuple[Loc, TenantDefaults]] = [(("defaults",), spec.defaults)]
    if spec.default_tenant.model_fields_set:
        tops.append((("default_tenant",), spec.default_tenant))
    tops += [(("tenants", i), t) for i, t in enumerate(spec.tenants)]
    for loc, block in tops:
        yield loc, block
        for rc, sub in block.classes.items():
            yield loc + ("classes", rc), sub


def _check_names(spec: PolicySpec, catalog: Catalog, rep: _Reporter) -> None:
    names = {p.name for p in catalog.profiles}
    known = ", ".join(sorted(names))

    def unknown(loc: Loc, name: str) -> None:
        rep.add(loc, f"unknown profile {name!r} (catalog profiles: {known})")

    seen = {spec.default_tenant.name: ("default_tenant",)}
    for i, t in enumerate(spec.tenants):
        if t.name in seen:
            first = field_name(seen[t.name])
            rep.add(("tenants", i, "name"), f"tenant name {t.name!r} is already used by {first}")
        seen.setdefault(t.name, ("tenants", i))
    for loc, block in _limit_blocks(spec):
        for key in ("allowed_profiles", "denied_profiles"):
            for j, name in enumerate(getattr(block, key) or ()):
                if name not in names:
                    unknown(loc + (key, j), name)
    for section in ("pricing", "autoscaling"):
        for name in getattr(spec, section).profiles:
            if name not in names:
                unknown((section, "profiles", name), name)


def _check_scheduling_tenants(spec: PolicySpec, rep: _Reporter) -> None:
    """`scheduling.tenants` names tenants of this policy (a typo would silently not act)."""
    tenants = {spec.default_tenant.name, *(t.name for t in spec.tenants)}
    for name in spec.scheduling.tenants:
        if name not in tenants:
            rep.add(
                ("scheduling", "tenants", name),
                f"unknown tenant {name!r} (tenants: {', '.join(sorted(tenants))})",
            )


def _check_scaling(
    spec: PolicySpec, catalog: Catalog, scaling: dict[str, ScalingBounds], rep: _Reporter
) -> None:
    auto = spec.autoscaling
    for name, own in auto.profiles.items():
        if name not in scaling:
            continue
        cat = catalog.profile(name).replicas
        loc: Loc = ("autoscaling", "profiles", name)
        for key in ("min_replicas", "max_replicas"):
            value = getattr(own, key)
            if value is None:
                continue
            if value > cat.max:
                rep.add(
                    loc + (key,),
                    f"{value} is above the catalog's replicas.max ({cat.max}) for this profile",
                )
        if own.scale_to_zero and own.min_replicas is not None and own.min_replicas > 0:
            rep.add(
                loc + ("scale_to_zero",),
                f"min_replicas {own.min_replicas} keeps this profile from scaling to zero",
            )
        disabled = own.max_replicas == 0
        if (
            own.min_replicas == 0
            and own.scale_to_zero is None
            and not auto.scale_to_zero
            and not disabled
        ):
            rep.add(loc + ("min_replicas",), "0 contradicts autoscaling.scale_to_zero: false")
    floor = sum(
        b.min_replicas * catalog.profile(n).price_per_replica_hour_usd for n, b in scaling.items()
    )
    ceiling = auto.max_cost_per_hour_usd
    if ceiling is not None and ceiling < floor:
        always_on = ", ".join(
            f"{n} x{b.min_replicas}" for n, b in scaling.items() if b.min_replicas
        )
        rep.add(
            ("autoscaling", "max_cost_per_hour_usd"),
            f"${ceiling:g}/hour is below the ${floor:.2f}/hour the minimum replicas cost ({always_on})",
        )


def _origin(merged: Merged, dotted: str, fallback: Loc) -> Loc:
    found = merged.origin(dotted)
    return found if found is not None else fallback


def _check_tenant(spec: PolicySpec, catalog: Catalog, rt: ResolvedTenant, rep: _Reporter) -> None:
    t = rt.tenant
    for rc, lim in t.classes.items():
        merged = rt.limits_merged[rc]
        who = f"{t.name}/{rc}"
        if (
            lim.cost_target_usd is not None
            and lim.cost_cap_usd is not None
            and lim.cost_target_usd > lim.cost_cap_usd
        ):
            rep.add(
                _origin(merged, "cost_target_usd", rt.loc),
                f"cost target ${lim.cost_target_usd:g} is above the cost cap ${lim.cost_cap_usd:g}",
                who,
            )
        mrt = lim.reasoning.max_reasoning_tokens
        if mrt is not None and lim.max_tokens is not None and mrt > lim.max_tokens:
            rep.add(
                _origin(merged, "reasoning.max_reasoning_tokens", rt.loc),
                f"{mrt} exceeds max_tokens {lim.max_tokens} (reasoning tokens count as output)",
                who,
            )
        eligible = [catalog.profile(n) for n in t.eligible_profiles(rc)]
        if not eligible:
            loc = next(
                (
                    o
                    for o in (
                        merged.origin(k)
                        for k in (
                            "allowed_profiles",
                            "quality_floor.min_score",
                            "quality_floor.min_tier",
                            "denied_profiles",
                        )
                    )
                    if o is not None
                ),
                ("autoscaling", "profiles"),
            )
            rep.add(
                loc,
                "no profile is left after allowed/denied lists, the quality floor and max_replicas 0",
                who,
            )
            continue
        _check_context(lim.max_tokens, eligible, _origin(merged, "max_tokens", rt.loc), who, rep)
        reasoning_loc = _origin(merged, "reasoning.max_reasoning_tokens", rt.loc)
        _check_context(mrt, eligible, reasoning_loc, who, rep)
        ref = spec.reference_request(rc)
        n_in, n_out = ref.input_tokens, min(ref.output_tokens, lim.max_tokens or ref.output_tokens)
        estimates = {p.name: request_latency(performance_of(p), n_in, n_out) for p in eligible}
        set_fields = [f for f in SLO_FIELDS if getattr(lim.latency, f) is not None]
        failing = []
        for f in set_fields:
            target = getattr(lim.latency, f)
            best_name = min(estimates, key=lambda n, f=f: estimates[n].value(f))
            best = estimates[best_name].value(f)
            if best > target:
                failing.append(f)
                rep.add(
                    _origin(merged, f"latency.{f}", rt.loc),
                    f"{target:g} ms cannot be met by any eligible profile, even idle, for the "
                    "reference request of its class",
                    who,
                    f"best {best_name} {best:.0f} ms",
                )
        if set_fields and not failing and all(e.misses(lim.latency) for e in estimates.values()):
            rep.add(
                _origin(merged, "latency", rt.loc),
                f"no single eligible profile meets {', '.join(set_fields)} together",
                who,
            )


def _check_context(
    max_tokens: int | None, eligible: list[Profile], loc: Loc, who: str, rep: _Reporter
) -> None:
    """A max_tokens above every eligible profile's context length can never be served."""
    if max_tokens is None or not eligible:
        return
    widest = max(eligible, key=lambda p: p.max_model_len)
    if max_tokens > widest.max_model_len:
        rep.add(
            loc,
            f"{max_tokens} is above every eligible profile's context length (the largest is "
            f"{widest.name}'s max_model_len {widest.max_model_len}): no request can use it",
            who,
        )


def _check_bounds(spec: PolicySpec, catalog: Catalog, rt: ResolvedTenant, rep: _Reporter) -> None:
    """Request bounds written in the policy that no profile the tenant may use can serve."""
    names = rt.tenant.all_eligible_profiles()
    if not names:
        return
    widest = max((catalog.profile(n) for n in names), key=lambda p: p.max_model_len)
    context = widest.max_model_len
    bounds = rt.tenant.bounds
    for key, most in (
        ("max_prompt_tokens", context),
        ("max_output_tokens", context * (bounds.max_n or 1)),
    ):
        loc = _written_bound(spec, rt.loc, key)
        value = getattr(bounds, key)
        if loc is not None and value is not None and value > most:
            rep.add(
                loc,
                f"{value} is more than any profile tenant {rt.tenant.name!r} may use can serve "
                f"(largest context: {widest.name}'s max_model_len {context}"
                + (f", times max_n {bounds.max_n}" if key == "max_output_tokens" else "")
                + ")",
            )


def _written_bound(spec: PolicySpec, loc: Loc, key: str) -> Loc | None:
    """Where a request bound in force for the tenant at `loc` is written (None: built in)."""
    block = spec.default_tenant if loc == ("default_tenant",) else spec.tenants[int(loc[1])]
    for where, owner in ((loc, block), (("defaults",), spec.defaults)):
        req = owner.requests
        if req is not None and key in req.model_fields_set:
            return where + ("requests", key)
    return None


def _check_budget_windows(rt: ResolvedTenant, rep: _Reporter) -> None:
    """A shorter window's budget above a longer window's can never bind: a typo, refused."""
    budgets = rt.tenant.budgets
    for i, (short, short_name, _) in enumerate(PERIODS):
        for long, long_name, _ in PERIODS[i + 1 :]:
            a, b = getattr(budgets, short), getattr(budgets, long)
            if a is not None and b is not None and a > b:
                rep.add(
                    _budget_origin(rt, short),
                    f"${a:g} per {short_name} is above the ${b:g} per {long_name} "
                    f"(budgets.{long}): the {long_name}'s budget runs out first, so this one "
                    "can never apply",
                    f"{rt.tenant.name}/",
                )


def _check_key_refs(spec: PolicySpec, loaded: LoadedYaml, rep: _Reporter) -> None:
    """Each key environment variable or key file belongs to one tenant, once."""
    seen: dict[str, tuple[Loc, str]] = {}
    for i, tenant in enumerate(spec.tenants):
        for j, ref in enumerate(tenant.api_keys):
            kind = "env" if ref.env is not None else "file"
            name = ref.env if ref.env is not None else _key_file(ref.file or "", loaded.file)
            loc: Loc = ("tenants", i, "api_keys", j, kind)
            first = seen.get(f"{kind}:{name}")
            if first is None:
                seen[f"{kind}:{name}"] = (loc, tenant.name)
                continue
            what = "environment variable" if kind == "env" else "key file"
            owner = "this tenant" if first[1] == tenant.name else f"tenant {first[1]!r}"
            rep.add(
                loc,
                f"{what} {name} is already a key source of {owner} "
                f"({field_name(first[0])}, line {loaded.line_of(first[0])}): one key would "
                "name two tenants, or one tenant lists it twice",
            )


def _key_file(path: str, policy_file: str) -> str:
    p = Path(path)
    return os.path.normpath(p if p.is_absolute() else Path(policy_file).parent / p)


def _budget_origin(rt: ResolvedTenant, key: str) -> Loc:
    return _origin(rt.budgets_merged, f"budgets.{key}", rt.loc)


def _check_budgets(
    catalog: Catalog,
    scaling: dict[str, ScalingBounds],
    reachable: list[ResolvedTenant],
    rep: _Reporter,
) -> None:
    def check(tenants: list[ResolvedTenant], profiles: list[str], what: str) -> None:
        hourly = sum(
            scaling[n].min_replicas * catalog.profile(n).price_per_replica_hour_usd
            for n in profiles
        )
        if hourly <= 0 or not tenants:
            return
        for key, period, hours in PERIODS:
            budgets = [getattr(rt.tenant.budgets, key) for rt in tenants]
            if any(b is None for b in budgets):
                continue
            total, cost = sum(budgets), hourly * hours
            if total < cost:
                names = ", ".join(rt.tenant.name for rt in tenants)
                rep.add(
                    _budget_origin(tenants[0], key),
                    f"${total:g} per {period} (tenants {names}) is less than the ${cost:.2f} per {period} "
                    f"that {what} cost",
                )

    union = sorted({n for rt in reachable for n in rt.tenant.all_eligible_profiles()})
    check(reachable, union, "the minimum replicas of the profiles they may use")
    for name in union:
        users = [rt for rt in reachable if name in rt.tenant.all_eligible_profiles()]
        if len(users) < len(reachable):
            check(users, [name], f"the {scaling[name].min_replicas} always-on replica(s) of {name}")


@dataclass(frozen=True)
class PolicyDraft:
    """What the checks read of a policy being loaded: its spec and YAML, the catalog, the
    scaling bounds and tenants resolved from them, and the names of the reachable tenants
    (those a request can be served as)."""

    spec: PolicySpec
    catalog: Catalog
    loaded: LoadedYaml
    scaling: dict[str, ScalingBounds]
    resolved: list[ResolvedTenant]
    reachable: list[str]


def check_policy(draft: PolicyDraft) -> list[ConfigIssue]:
    """All cross-check issues (empty = the policy fits the catalog)."""
    spec, catalog = draft.spec, draft.catalog
    rep = _Reporter(draft.loaded)
    _check_names(spec, catalog, rep)
    _check_scheduling_tenants(spec, rep)
    _check_scaling(spec, catalog, draft.scaling, rep)
    _check_key_refs(spec, draft.loaded, rep)
    reachable = [rt for rt in draft.resolved if rt.tenant.name in draft.reachable]
    for rt in draft.resolved:
        if rt in reachable or not rt.tenant.is_default or spec.default_tenant.model_fields_set:
            _check_tenant(spec, catalog, rt, rep)
            _check_bounds(spec, catalog, rt, rep)
            _check_budget_windows(rt, rep)
    _check_budgets(catalog, draft.scaling, reachable, rep)
    return rep.issues()


def policy_warnings(draft: PolicyDraft) -> list[ConfigIssue]:
    """Legal but likely unintended settings (`policy validate --strict` fails on them):
    always-on replicas of a profile no reachable tenant may use."""
    used = {
        n
        for rt in draft.resolved
        if rt.tenant.name in draft.reachable
        for n in rt.tenant.all_eligible_profiles()
    }
    out = []
    for name, bounds in draft.scaling.items():
        if bounds.min_replicas <= 0 or name in used:
            continue
        price = draft.catalog.profile(name).price_per_replica_hour_usd * bounds.min_replicas
        loc: Loc = ("autoscaling", "profiles", name, "min_replicas")
        out.append(
            ConfigIssue(
                draft.loaded.file,
                draft.loaded.line_of(loc),
                field_name(loc),
                f"{bounds.min_replicas} always-on replica(s) of {name} "
                f"(${price * HOURS_PER_MONTH:,.0f}/month) that no tenant may use; set "
                f"autoscaling.profiles.{name}.min_replicas: 0 to remove them",
            )
        )
    return out
