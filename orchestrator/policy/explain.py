"""`policy explain`: what a policy means for each tenant, as data (pure) and as text.

Per tenant and request class: the eligible profiles with their effective token prices, the
cost and latency of the class's reference request on each (idle and fully loaded replica),
and the cheapest profile that meets the latency SLO; per tenant, the monthly cost of the
always-on (minimum) replicas of the profiles it may use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from orchestrator.concepts import QUERY_CLASSES, QueryClass
from orchestrator.policy.limits import EffectiveLimits
from orchestrator.policy.model import Policy, TenantPolicy
from orchestrator.policy.schema_cluster import wait_bound_s
from orchestrator.pricing import HOURS_PER_MONTH
from orchestrator.replica_model import RequestLatency, performance_of, request_latency


@dataclass(frozen=True)
class ProfileOption:
    profile: str
    output_usd_per_1k: float
    input_usd_per_1k: float
    price_source: str
    request_cost_usd: float
    idle: RequestLatency
    loaded: RequestLatency
    meets_slo_idle: bool
    meets_slo_loaded: bool
    within_cost_cap: bool


@dataclass(frozen=True)
class ClassExplanation:
    request_class: QueryClass
    input_tokens: int
    output_tokens: int
    limits: EffectiveLimits
    options: list[ProfileOption]
    cheapest: str | None  # cheapest profile meeting the SLO on an idle replica
    note: str


@dataclass(frozen=True)
class TenantExplanation:
    name: str
    reachable: bool
    is_default: bool
    keys: list[str]
    budgets: dict[str, float | None]
    always_on: dict[str, int]
    min_replicas_usd_per_month: float
    classes: list[ClassExplanation] = field(default_factory=list)
    batch: dict[str, object] = field(default_factory=dict)  # effective batch settings
    queue: dict = field(default_factory=dict)  # priority, weight, max_queued, deadline


@dataclass(frozen=True)
class PolicyExplanation:
    name: str
    version: str
    source: str
    unknown_keys: str
    cluster_min_usd_per_hour: float
    cluster_ceiling_usd_per_hour: float | None
    unused_always_on: list[str]
    tenants: list[TenantExplanation]
    scheduling: dict = field(default_factory=dict)  # order, aging_s
    planner: str = ""  # what the planner sizes demand from (`planner_line`)

    def as_dict(self) -> dict:
        return asdict(self)


def _class(policy: Policy, tenant: TenantPolicy, rc: QueryClass) -> ClassExplanation:
    lim = tenant.limits(rc)
    ref = policy.spec.reference_request(rc)
    n_in, n_out = ref.input_tokens, min(ref.output_tokens, lim.max_tokens or ref.output_tokens)
    options = []
    for name in tenant.eligible_profiles(rc):
        profile = policy.catalog.profile(name)
        prices = policy.prices[name]
        cost = prices.cost_usd(n_in, n_out)
        perf = performance_of(profile)
        idle = request_latency(perf, n_in, n_out, 1)
        loaded = request_latency(perf, n_in, n_out, perf.max_concurrency)
        options.append(
            ProfileOption(
                profile=name,
                output_usd_per_1k=prices.output_usd_per_token * 1000,
                input_usd_per_1k=prices.input_usd_per_token * 1000,
                price_source=prices.output_source,
                request_cost_usd=cost,
                idle=idle,
                loaded=loaded,
                meets_slo_idle=not idle.misses(lim.latency),
                meets_slo_loaded=not loaded.misses(lim.latency),
                within_cost_cap=lim.cost_cap_usd is None or cost <= lim.cost_cap_usd,
            )
        )
    options.sort(key=lambda o: (o.request_cost_usd, o.idle.e2e_ms))
    meeting = [o for o in options if o.meets_slo_idle]
    cheapest = meeting[0].profile if meeting else None
    if not options:
        note = "no eligible profile"
    elif cheapest is None:
        note = "no eligible profile meets the SLO"
    else:
        best = meeting[0]
        parts = [f"{best.profile} at ${best.request_cost_usd:.6f} per reference request"]
        if not best.meets_slo_loaded:
            loaded_ok = [o for o in meeting if o.meets_slo_loaded]
            alt = (
                f"; under full load {loaded_ok[0].profile}"
                if loaded_ok
                else "; nothing under full load"
            )
            parts.append(f"(meets the SLO only when lightly loaded{alt})")
        if not best.within_cost_cap:
            parts.append(
                f"(above the ${lim.cost_cap_usd:g} cap: actions {' > '.join(lim.actions.on_cost_cap)})"
            )
        elif lim.cost_target_usd is not None and best.request_cost_usd > lim.cost_target_usd:
            act = lim.actions.on_cost_target
            then = f"actions {' > '.join(act)}" if act else "soft: served, the miss recorded"
            parts.append(f"(above the ${lim.cost_target_usd:g} target: {then})")
        note = " ".join(parts)
    return ClassExplanation(rc, n_in, n_out, lim, options, cheapest, note)


def _queue(policy: Policy, tenant: TenantPolicy) -> dict:
    """The tenant's ingress-queue settings, with the wait bound in force per request class."""
    own = policy.spec.scheduling.for_tenant(tenant.name)
    waits = {
        rc: wait_bound_s(own.max_wait_s, tenant.limits(rc).latency.ttft_p95_ms)
        for rc in QUERY_CLASSES
    }
    return {"priority": tenant.priority, **own.model_dump(), "waits_s": waits}


def explain_policy(policy: Policy) -> PolicyExplanation:
    """Explain every tenant (unreachable default tenants are listed without details)."""
    reachable = {t.name for t in policy.reachable_tenants()}
    tenants = []
    for t in policy.tenants.values():
        eligible = t.all_eligible_profiles()
        always_on = {
            n: policy.scaling[n].min_replicas for n in eligible if policy.scaling[n].min_replicas
        }
        tenants.append(
            TenantExplanation(
                name=t.name,
                reachable=t.name in reachable,
                is_default=t.is_default,
                keys=[k.describe() for k in t.key_refs],
                budgets=t.budgets.model_dump(),
                always_on=always_on,
                min_replicas_usd_per_month=policy.min_replicas_cost_per_month(tuple(always_on)),
                batch=t.batch.model_dump(),
                queue=_queue(policy, t),
                classes=[_class(policy, t, rc) for rc in QUERY_CLASSES]
                if t.name in reachable
                else [],
            )
        )
    used = {
        n for t in policy.tenants.values() if t.name in reachable for n in t.all_eligible_profiles()
    }
    return PolicyExplanation(
        name=policy.spec.metadata.name or "(unnamed)",
        version=policy.version,
        source=policy.source,
        unknown_keys=policy.spec.unknown_keys,
        cluster_min_usd_per_hour=policy.min_replicas_cost_per_hour(),
        cluster_ceiling_usd_per_hour=policy.spec.autoscaling.max_cost_per_hour_usd,
        unused_always_on=[n for n, b in policy.scaling.items() if b.min_replicas and n not in used],
        tenants=tenants,
        scheduling={
            "order": policy.spec.scheduling.order,
            "aging_s": policy.spec.scheduling.aging_s,
            "fair_headroom": policy.spec.scheduling.fair_headroom,
            "short_work_tokens": policy.spec.scheduling.short_work_tokens,
        },
        planner=planner_line(policy),
    )


def planner_line(policy: Policy) -> str:
    """The demand the planner sizes replicas for (`autoscaling.demand_sizing`, corrected by
    the learned `demand_level` when it is on)."""
    auto = policy.spec.autoscaling
    sizing = (
        "each request's predicted median answer (p50)"
        if auto.demand_sizing == "p50"
        else "each request's expected answer (the lognormal mean through p50 and p90)"
    )
    lvl = auto.demand_level
    level = (
        f"corrected per profile by the level learned from settled requests (generated / "
        f"sized tokens over ~{lvl.window} requests, within {1 / lvl.max_factor:.2g}x-"
        f"{lvl.max_factor:g}x)"
        if lvl.enabled
        else "not corrected (demand_level off)"
    )
    return f"Planner sizes output demand from {sizing}, {level}"


# --- text rendering --------------------------------------------------------------------------


def _money(v: float | None) -> str:
    return "-" if v is None else f"${v:g}"


def _limits_line(lim: EffectiveLimits) -> str:
    slo = [
        f"{label}<={getattr(lim.latency, f):g}ms"
        for f, label in (("ttft_p95_ms", "ttft"), ("tpot_p95_ms", "tpot"), ("e2e_p95_ms", "e2e"))
        if getattr(lim.latency, f) is not None
    ]
    floor = [f"tier>={lim.quality_floor.min_tier}"] if lim.quality_floor.min_tier else []
    if lim.quality_floor.min_score is not None:
        floor.append(f"score>={lim.quality_floor.min_score:g}")
    target = lim.quality_target
    if target.min_success is not None:
        floor.append(f"P(success)>={target.min_success:g}")
    if target.share_of_strongest is not None:
        floor.append(f"expected>={target.share_of_strongest:g}x strongest")
    if lim.reasoning.allowed:
        cap = lim.reasoning.max_reasoning_tokens
        reasoning = f"allowed{f' (<= {cap} tokens)' if cap else ''}"
    else:
        reasoning = "off"
    return (
        f"cost target {_money(lim.cost_target_usd)}, cap {_money(lim.cost_cap_usd)}; "
        f"SLO p95 {' '.join(slo) or 'none'}; quality {' '.join(floor) or 'any'}; "
        f"max_tokens {lim.max_tokens or '-'}; reasoning {reasoning}; "
        f"on cost cap {' > '.join(lim.actions.on_cost_cap)}; "
        f"on budget spent {' > '.join(lim.actions.on_budget_exhausted)}; "
        f"cost target {_enforced(lim.actions.on_cost_target)}; "
        f"latency targets {_enforced(lim.actions.on_slo_unmeetable, 'p95 (closest profile)')}"
    )


def _enforced(actions: list[str], soft: str = "soft (miss recorded)") -> str:
    """Which semantics is in force: soft, or the listed actions."""
    return f"enforced: {' > '.join(actions)}" if actions else soft


def _slo_word(o: ProfileOption) -> str:
    if o.meets_slo_loaded:
        return "yes"
    return "idle only" if o.meets_slo_idle else "no"


def render_text(exp: PolicyExplanation) -> str:
    out = [f"Policy {exp.name} (version {exp.version}, {exp.source})"]
    ceiling = exp.cluster_ceiling_usd_per_hour
    out.append(
        f"Cluster: minimum replicas ${exp.cluster_min_usd_per_hour:.2f}/hour "
        f"(${exp.cluster_min_usd_per_hour * HOURS_PER_MONTH:,.0f}/month); "
        f"ceiling {'none' if ceiling is None else f'${ceiling:g}/hour'}"
    )
    sched = exp.scheduling
    if sched:
        order = (
            "shortest predicted work first, aged "
            f"(none overtaken by a request {sched['aging_s']:g} s younger)"
            if sched["order"] == "predicted"
            else "first come, first served"
        )
        out.append(f"Queue order when a profile is full: {order}; the engines' priority follows it")
        if sched.get("fair_headroom"):
            out.append(
                "Fair headroom: tenants below their fair share may start up to "
                f"{100 * sched['fair_headroom']:g} % beyond a full profile's batch slots"
            )
        if sched.get("short_work_tokens") and sched["order"] == "predicted":
            out.append(
                f"Short lane: requests predicted to need at most {sched['short_work_tokens']} "
                "tokens of work start beyond a full batch while engine seats are free"
            )
    if exp.planner:
        out.append(exp.planner)
    if exp.unused_always_on:
        out.append(f"Note: always-on replicas no tenant may use: {', '.join(exp.unused_always_on)}")
    for t in exp.tenants:
        out.append("")
        label = "default tenant " if t.is_default else "tenant "
        keys = f" [keys: {', '.join(t.keys)}]" if t.keys else ""
        out.append(f"{label}{t.name}{keys}")
        if not t.reachable:
            out.append("  unreachable: the policy defines keys and unknown_keys is reject (401)")
            continue
        budgets = ", ".join(
            f"{_money(v)}/{k.removeprefix('per_').removesuffix('_usd')}"
            for k, v in t.budgets.items()
            if v
        )
        out.append(f"  budgets: {budgets or 'unlimited'}")
        if t.batch:
            out.append(
                f"  batch jobs: charged x{t.batch['price_factor']:g} of the interactive price, "
                f"windows up to {t.batch['max_completion_window']}, at most "
                f"{t.batch['max_concurrent_lines']} lines in flight, "
                + (
                    f"waiting for {t.batch['yield_to_interactive_s']:g} s without interactive "
                    "traffic on one-request (CPU) replicas"
                    if t.batch["yield_to_interactive_s"]
                    else "never waiting for interactive traffic"
                )
            )
        if t.queue:
            q = t.queue
            deadline = ", deadline order (TTFT target)" if q["deadline"] else ""
            waits = ", ".join(
                f"{rc} {'unbounded' if w is None else f'{w:g} s'}" for rc, w in q["waits_s"].items()
            )
            out.append(
                f"  queue: priority {q['priority']}, fair-share weight {q['weight']:g}, "
                f"up to {q['max_queued']} waiting (then 429){deadline}; longest wait (then 429 "
                f"queue_timeout): {waits}"
            )
        always = ", ".join(f"{n} x{k}" for n, k in t.always_on.items()) or "none"
        out.append(
            f"  always-on replicas it may use: {always} = ${t.min_replicas_usd_per_month:,.2f}/month"
        )
        for c in t.classes:
            out.append(
                f"  {c.request_class} (reference request {c.input_tokens} in / {c.output_tokens} out)"
            )
            out.append(f"    {_limits_line(c.limits)}")
            if c.options:
                out.append(
                    f"    {'profile':<22}{'$/1K out':>11}{'$/1K in':>11}{'request $':>11}"
                    f"{'ttft ms':>9}{'tpot ms':>9}{'e2e ms':>9}  SLO"
                )
            for o in c.options:
                src = "*" if o.price_source == "explicit" else " "
                out.append(
                    f"    {o.profile:<22}{o.output_usd_per_1k:>10.6f}{src}{o.input_usd_per_1k:>11.6f}"
                    f"{o.request_cost_usd:>11.6f}{o.idle.ttft_ms:>9.0f}{o.idle.tpot_ms:>9.1f}"
                    f"{o.idle.e2e_ms:>9.0f}  {_slo_word(o)}"
                )
            out.append(f"    => cheapest meeting the SLO: {c.note}")
    out.append("")
    out.append(
        "(* explicit price from the policy; others derived from $/replica-hour and throughput;"
    )
    out.append(
        " latencies are idle-replica estimates from catalog figures; 'idle only' = missed at full load)"
    )
    return "\n".join(out)
