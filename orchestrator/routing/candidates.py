"""One request's candidates: effective targets, hard filters, and each profile priced (pure).

`decide` (routing/decide.py) runs the stages; this module holds what one stage needs: the
request's context (`Ctx`: effective cost target and SLO, which targets are soft), the hard
filters with their status, and `evaluate`, which prices one profile in one stage and lists
its failures. Failure codes are documented in docs/routing.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator import pricing, replica_model
from orchestrator.concepts import TIER_RANK, LatencySLO
from orchestrator.routing.reasoning import cannot_turn_off, setting_for, wanted_level
from orchestrator.routing.types import (
    Estimate,
    ProfileView,
    ReasoningLevel,
    ReasoningSetting,
    RouteRequest,
    RoutingKnobs,
    TenantRules,
    TokenBudget,
)

# hard filters in evaluation order; a later one means the profile "got further"
HARD_ORDER = (
    "family_mismatch",
    "not_allowed",
    "below_quality_floor",
    "context_too_long",
    "reasoning_not_allowed",
    "tools_unsupported",
    "unhealthy",
)
HARD_STATUS = {
    "family_mismatch": (404, "model_not_found"),
    "not_allowed": (404, "model_not_found"),
    "below_quality_floor": (503, "no_profile_meets_quality_floor"),
    "context_too_long": (400, "context_length_exceeded"),
    "reasoning_not_allowed": (400, "reasoning_not_allowed"),
    "tools_unsupported": (400, "tool_calling_unsupported"),
    "unhealthy": (503, "no_healthy_profile"),
}
# soft failures that a lower max_tokens can cure
CAPPABLE = frozenset(
    {"over_cost_target", "over_cost_cap", "over_budget", "context_short_for_output", "slo_e2e"}
)
LATENCY = frozenset({"slo_ttft", "slo_tpot", "slo_e2e"})
TARGET = "over_cost_target"


@dataclass(slots=True)
class Ctx:
    request: RouteRequest
    prediction: TokenBudget
    rules: TenantRules
    knobs: RoutingKnobs
    cost_target: float | None
    cost_cap: float | None
    slo: LatencySLO
    bound: int  # caller's and policy's max_tokens (truncation they accept)
    wished: ReasoningLevel
    soft: frozenset[str]  # failures that rank a candidate but never block it

    @property
    def enforce_slo(self) -> bool:
        return not LATENCY.issubset(self.soft)

    @property
    def enforce_target(self) -> bool:
        return TARGET not in self.soft


@dataclass(slots=True)
class Eval:
    """One profile priced in one stage (internal; becomes an `Estimate` at the end)."""

    profile: ProfileView
    reasoning: ReasoningSetting
    failures: list[str]
    max_tokens: int
    answer_room: int  # answer tokens left under max_tokens once reasoning is paid
    cost: float
    cost_p90: float
    latency: float
    latency_p90: float
    queue_ms: float
    ttft: float
    tpot: float
    speedup: float
    tokens: int
    tokens_p90: int
    causes: list[str] = field(default_factory=list)  # every failure, before `cap` forgave some

    def estimate(self) -> Estimate:
        return Estimate(
            self.cost,
            self.cost_p90,
            self.latency,
            self.latency_p90,
            self.queue_ms,
            self.ttft,
            self.tpot,
            self.speedup,
            self.tokens,
            self.tokens_p90,
            self.reasoning.expected_tokens,
            self.max_tokens,
        )


# ---------------------------------------------------------------- context and filters


def min_opt(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def context(
    request: RouteRequest, prediction: TokenBudget, rules: TenantRules, knobs: RoutingKnobs
) -> Ctx:
    """Effective targets: the caller's cost target replaces the tenant's but never exceeds the
    tenant's hard cap; the caller's latency SLO replaces the tenant's e2e target.

    Soft targets: the tenant's latency targets are p95s, shares of requests, so missing them
    for one request ranks a candidate lower but does not block it, unless the policy lists
    `actions.on_slo_unmeetable` (or the caller set its own deadline, `latency_slo_ms`); the
    tenant's cost target is soft unless the policy lists `actions.on_cost_target` (a caller's
    own per-request target binds, through `on_cost_cap`, as a caller's deadline does)."""
    target = (
        request.cost_target_usd if request.cost_target_usd is not None else rules.cost_target_usd
    )
    target = min_opt(target, rules.cost_cap_usd)
    slo = rules.slo
    if request.latency_slo_ms is not None:
        slo = slo.model_copy(update={"e2e_p95_ms": request.latency_slo_ms})
    bound = min_opt(request.max_tokens, rules.max_tokens_cap)
    wished, _why = wanted_level(request, prediction, rules, knobs)
    soft: set[str] = set()
    if not rules.on_slo_unmeetable and request.latency_slo_ms is None:
        soft |= LATENCY
    if not rules.on_cost_target and request.cost_target_usd is None:
        soft.add(TARGET)
    return Ctx(
        request=request,
        prediction=prediction,
        rules=rules,
        knobs=knobs,
        cost_target=target,
        cost_cap=rules.cost_cap_usd,
        slo=slo,
        bound=pricing.UNLIMITED_TOKENS if bound is None else int(bound),
        wished=wished,
        soft=frozenset(soft),
    )


def hard_failure(p: ProfileView, ctx: Ctx) -> tuple[str, str] | None:
    model = ctx.request.model
    if model not in ("auto", p.family, p.name):
        return "family_mismatch", f"serves {p.family}, asked for {model}"
    allowed = ctx.rules.allowed_profiles
    if allowed is not None and p.name not in allowed:
        return "not_allowed", f"tenant {ctx.rules.tenant!r} may not use it"
    if TIER_RANK[p.quality_tier] < TIER_RANK[ctx.rules.quality_floor]:
        return "below_quality_floor", f"tier {p.quality_tier} < floor {ctx.rules.quality_floor}"
    if ctx.request.prompt_tokens + ctx.rules.cap_tokens_floor > p.max_model_len:
        return (
            "context_too_long",
            f"prompt {ctx.request.prompt_tokens} tokens, max_model_len {p.max_model_len}",
        )
    if not ctx.rules.reasoning_allowed and cannot_turn_off(p):
        return "reasoning_not_allowed", "always reasons; tenant disallows reasoning"
    if ctx.request.needs_tool_parser and not p.tool_calling:
        return "tools_unsupported", "no tool_call_parser in its catalog entry"
    if not p.live.healthy:
        return "unhealthy", "no healthy replica"
    return None


def hard_message(code: str, detail: str, ctx: Ctx) -> str:
    model = ctx.request.model
    if code in ("family_mismatch", "not_allowed"):
        return f"model {model!r} does not exist or tenant {ctx.rules.tenant!r} may not use it"
    if code == "context_too_long":
        return f"prompt too long for every profile serving {model!r} ({detail})"
    if code == "tools_unsupported":
        return (
            f"no profile serving {model!r} can call tools: `tools` need a profile with "
            "`tool_call_parser` set in the catalog (only tool_choice 'none' works without one)"
        )
    return f"no profile can serve {model!r}: {detail}"


def meets_class(p: ProfileView, ctx: Ctx) -> bool:
    if ctx.prediction.query_class != "reasoning":
        return True
    knobs = ctx.knobs
    need = (
        knobs.reasoning_class_tier_capable
        if p.reasoning_supported
        else knobs.reasoning_class_tier_plain
    )
    # a profile that can reason but is steered off by tenant or caller counts as plain
    if p.reasoning_supported and ctx.wished == "off" and not cannot_turn_off(p):
        need = knobs.reasoning_class_tier_plain
    return TIER_RANK[p.quality_tier] >= TIER_RANK[need]


# ---------------------------------------------------------------- pricing one profile


@dataclass(slots=True)
class Base:
    """The stage-independent part of a profile's price and speed for this request."""

    profile: ProfileView
    in_cost: float
    first_ms: float  # queue wait + TTFT
    queue_ms: float
    tpot: float
    speedup: float
    room: int
    cap_lim: int
    budget_lim: int
    target_lim: int
    slo_lim: int
    meets_class: bool
    reasoning: dict  # level -> ReasoningSetting, filled lazily
    meets_quality: bool = True  # the tenant's quality target (routing/quality.py)


def cached_share(p: ProfileView, req: RouteRequest) -> float:
    """The share of the prompt expected to hit `p`'s prefix cache: the profile's own figure
    for this request (`LiveState.cached_prompt_share`) when known, else the request's."""
    share = p.live.cached_prompt_share
    return req.cached_prompt_share if share is None else share


def base_of(p: ProfileView, ctx: Ctx) -> Base:
    req, perf, prices, knobs = ctx.request, p.performance, p.prices, ctx.knobs
    cached = cached_share(p, req)
    in_cost = pricing.input_cost_usd(prices, req.prompt_tokens, cached)
    uncached = req.prompt_tokens * (1.0 - cached)
    t = replica_model.timing(
        perf,
        p.live,
        uncached,
        prefill_load_slowdown=knobs.prefill_load_slowdown,
        typical_request_output_tokens=knobs.typical_request_output_tokens,
    )
    queue_ms, tpot, speedup = t.queue_wait_ms, t.tpot_ms, t.spec_speedup
    first = queue_ms + t.ttft_ms
    e2e = ctx.slo.e2e_p95_ms
    return Base(
        profile=p,
        in_cost=in_cost,
        first_ms=first,
        queue_ms=queue_ms,
        tpot=tpot,
        speedup=speedup,
        room=p.max_model_len - req.prompt_tokens,
        cap_lim=per_choice(pricing.affordable_tokens(prices, in_cost, ctx.cost_cap), req),
        budget_lim=per_choice(
            pricing.affordable_tokens(prices, in_cost, ctx.rules.remaining_budget_usd), req
        ),
        target_lim=per_choice(pricing.affordable_tokens(prices, in_cost, ctx.cost_target), req),
        slo_lim=pricing.UNLIMITED_TOKENS
        if e2e is None
        else replica_model.tokens_within_ms(e2e, first, tpot),
        meets_class=meets_class(p, ctx),
        reasoning={},
    )


def per_choice(affordable: int, req: RouteRequest) -> int:
    """Output tokens per choice that a total affordable count pays for (n choices share it)."""
    if affordable < 0 or affordable >= pricing.UNLIMITED_TOKENS or req.choices == 1:
        return affordable
    return affordable // req.choices


def evaluate(b: Base, ctx: Ctx, *, relax: bool, cap: bool) -> Eval:
    """Price a profile in a stage; `relax` = downgraded, `cap` = max_tokens may be lowered."""
    p = b.profile
    level: ReasoningLevel = "off" if relax else ctx.wished
    reasoning = b.reasoning.get(level)
    if reasoning is None:
        reasoning = setting_for(p, level, ctx.prediction, ctx.rules, ctx.knobs)
        b.reasoning[level] = reasoning
    r = reasoning.expected_tokens
    first, tpot, room = b.first_ms, b.tpot, b.room
    cap_lim, budget_lim, target_lim, slo_lim = b.cap_lim, b.budget_lim, b.target_lim, b.slo_lim
    need = min(ctx.prediction.p90_output_tokens + r, ctx.bound)
    floor = r + ctx.rules.cap_tokens_floor

    failures: list[str] = []
    if not relax and not b.meets_class:
        failures.append("below_class_quality")
    if not relax and not b.meets_quality:
        failures.append("below_quality_target")
    if ctx.slo.ttft_p95_ms is not None and first > ctx.slo.ttft_p95_ms:
        failures.append("slo_ttft")
    if ctx.slo.tpot_p95_ms is not None and tpot > ctx.slo.tpot_p95_ms:
        failures.append("slo_tpot")
    if need > room:
        failures.append("context_short_for_output")
    if cap_lim < floor:
        failures.append("cost_cap_below_minimum")
    elif need > cap_lim:
        failures.append("over_cost_cap")
    if budget_lim < floor:
        failures.append("budget_below_minimum")
    elif need > budget_lim:
        failures.append("over_budget")
    if need > target_lim and "over_cost_cap" not in failures:
        failures.append("over_cost_target")
    if need > slo_lim:
        failures.append("slo_e2e")

    causes = list(failures)
    hard_max = min(ctx.bound, room, cap_lim, budget_lim)
    if cap:  # lowers max_tokens to what the enforced targets allow; soft misses stay listed
        max_tokens = min(
            hard_max,
            target_lim if ctx.enforce_target else hard_max,
            slo_lim if ctx.enforce_slo else hard_max,
        )
        cured = CAPPABLE - ctx.soft
        failures = [f for f in failures if f not in cured]
        if max_tokens < floor:
            failures.append("cap_below_minimum")
    else:
        max_tokens = min(hard_max, target_lim) if target_lim >= need else hard_max
    max_tokens = max(0, max_tokens)

    tokens = min(ctx.prediction.p50_output_tokens + r, max_tokens)
    tokens_p90 = min(ctx.prediction.p90_output_tokens + r, max_tokens)
    return Eval(
        profile=p,
        reasoning=reasoning,
        failures=failures,
        max_tokens=max_tokens,
        answer_room=max_tokens - r,
        cost=b.in_cost + ctx.request.choices * tokens * p.prices.output_usd_per_token,
        cost_p90=b.in_cost + ctx.request.choices * tokens_p90 * p.prices.output_usd_per_token,
        latency=first + max(0, tokens - 1) * tpot,
        latency_p90=first + max(0, tokens_p90 - 1) * tpot,
        queue_ms=b.queue_ms,
        ttft=first,
        tpot=tpot,
        speedup=b.speedup,
        tokens=tokens,
        tokens_p90=tokens_p90,
        causes=causes,
    )
