"""`decide`: choose the profile for one request (pure: no Ray, no I/O, no clock).

Algorithm (docs/routing.md has the long form):
1. A spent budget rejects at once (429 + Retry-After).
2. Hard filters, in this order (the first that fails is the profile's reason): family,
   tenant allowance, tenant quality floor, context (the prompt leaves fewer than
   the tenant's `cap_tokens_floor`), reasoning the tenant forbids but the profile cannot switch off,
   `tools` (unless tool_choice is "none") without a tool parser, health. When no profile
   survives, the reason of the profile that got furthest picks the status: 404 model,
   503 floor/health, 400 context/reasoning/tools.
3. Stage "route": each survivor is priced with the wished reasoning; it fails softly on the
   quality its predicted class needs, the tenant's quality target (expected success per
   tier, routing/quality.py; a binding target outranks the cost target, never the cap or the
   budget), TTFT/TPOT/e2e SLO, room for the predicted p90 output,
   the cost target, the hard cost cap and the remaining budget. The cheapest clean one wins.
4. Otherwise the tenant's actions run in order, each keeping the previous ones' effect. The
   list is `on_budget_exhausted` when the remaining budget cannot pay for the request on any
   surviving profile, else `on_cost_cap` (cost cap or target, SLO, class quality); each list
   runs at most once. `downgrade` drops the class need and the quality target (never the tenant floor) and turns
   reasoning to its minimum; `cap_tokens` lowers max_tokens to what cost target, cap, budget,
   context and e2e SLO allow (at least `cap_tokens_floor` of answer), preferring the least
   truncation;
   `reject` refuses with 402 (cost), 429 (budget), 400 (context) or 503 (SLO / quality).
5. With the actions exhausted and no `reject`, the least-failing candidate is routed anyway
   ("best effort"); hard cost cap and budget still bound its max_tokens, and a candidate
   they cannot pay `cap_tokens_floor` answer tokens for is never routed.
max_tokens is always min(caller, policy cap, context room, what the cost cap and remaining
budget afford, and what the cost target affords unless routed best effort).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator import pricing, replica_model
from orchestrator.concepts import TIER_RANK, Action, LatencySLO
from orchestrator.routing.quality import qualifying_tiers
from orchestrator.routing.reasoning import cannot_turn_off, setting_for, wanted_level
from orchestrator.routing.types import (
    DEFAULT_KNOBS,
    CandidateReport,
    Decision,
    Estimate,
    ProfileView,
    ReasoningLevel,
    ReasoningSetting,
    Rejection,
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
_HARD_STATUS = {
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
# failures that even best-effort routing may not ignore
MONEY_HARD = frozenset({"cost_cap_below_minimum", "budget_below_minimum"})
# soft failure -> (priority, status, code) for a reject; lower priority number wins
_SOFT_STATUS = {
    "budget_below_minimum": (0, 429, "budget_exhausted"),
    "over_budget": (1, 429, "budget_exhausted"),
    "cost_cap_below_minimum": (2, 402, "cost_cap_exceeded"),
    "over_cost_cap": (3, 402, "cost_cap_exceeded"),
    "over_cost_target": (4, 402, "cost_target_unmet"),
    "context_short_for_output": (5, 400, "context_length_exceeded"),
    "slo_ttft": (6, 503, "latency_slo_unmeetable"),
    "slo_tpot": (6, 503, "latency_slo_unmeetable"),
    "slo_e2e": (6, 503, "latency_slo_unmeetable"),
    "below_class_quality": (7, 503, "no_profile_meets_class_quality"),
    "below_quality_target": (7, 503, "no_profile_meets_quality_target"),
}


@dataclass(slots=True)
class _Ctx:
    request: RouteRequest
    prediction: TokenBudget
    rules: TenantRules
    knobs: RoutingKnobs
    cost_target: float | None
    cost_cap: float | None
    slo: LatencySLO
    bound: int  # caller's and policy's max_tokens (truncation they accept)
    wished: ReasoningLevel


@dataclass(slots=True)
class _Eval:
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


def decide(
    request: RouteRequest,
    prediction: TokenBudget,
    rules: TenantRules,
    profiles: Sequence[ProfileView],
    *,
    knobs: RoutingKnobs = DEFAULT_KNOBS,
) -> Decision:
    """Choose a profile (or reject) for one request; see the module docstring."""
    ctx = _context(request, prediction, rules, knobs)
    base = {
        "query_class": prediction.query_class,
        "predicted_tokens": (prediction.p50_output_tokens, prediction.p90_output_tokens),
        "tier_success": prediction.tier_success,
        "cost_target_usd": ctx.cost_target,
        "cost_cap_usd": ctx.cost_cap,
        "slo": ctx.slo,
    }
    # keys in input order; later stages overwrite entries in place
    reports: dict[str, CandidateReport | None] = dict.fromkeys(p.name for p in profiles)

    if rules.remaining_budget_usd is not None and rules.remaining_budget_usd <= 0:
        for p in profiles:
            reports[p.name] = _report(p, "budget", ("budget_spent",), "tenant budget spent")
        return _reject(
            base,
            reports,
            429,
            "budget_exhausted",
            f"tenant {rules.tenant!r} has spent its budget",
            ("budget: spent",),
            retry_after=rules.budget_retry_after_s,
        )

    survivors: list[_Base] = []
    furthest = -1
    furthest_detail = ""
    for p in profiles:
        hard = _hard_failure(p, ctx)
        if hard is None:
            survivors.append(_base(p, ctx))
            continue
        code, detail = hard
        reports[p.name] = _report(p, "filter", (code,), detail)
        rank = HARD_ORDER.index(code)
        if rank > furthest:
            furthest, furthest_detail = rank, detail
    steps = [f"filter: {len(survivors)} of {len(profiles)} profiles pass"]
    if survivors and not any(b.meets_class for b in survivors):
        # the class's wish is capped by what the tenant can have: the strongest survivors
        # qualify (a quality difference we do not have is never a reason to refuse)
        top = max(TIER_RANK[b.profile.quality_tier] for b in survivors)
        for b in survivors:
            b.meets_class = TIER_RANK[b.profile.quality_tier] == top
        steps.append("class: no profile has the tier this class wants; the strongest qualify")
    verdict = qualifying_tiers(
        (b.profile.quality_tier for b in survivors),
        prediction.tier_success,
        rules.min_success,
        rules.share_of_strongest,
    )
    binding = len(verdict.tiers) < len({b.profile.quality_tier for b in survivors})
    for b in survivors:
        b.meets_quality = b.profile.quality_tier in verdict.tiers
        b.quality_over_target = binding and b.meets_quality
    if verdict.note:
        steps.append(verdict.note)
    if not survivors:
        if furthest < 0:
            status, code, msg = 503, "no_profiles", "no profiles are configured"
        else:
            status, code = _HARD_STATUS[HARD_ORDER[furthest]]
            msg = _hard_message(HARD_ORDER[furthest], furthest_detail, ctx)
        return _reject(base, reports, status, code, msg, tuple(steps))

    relax = False
    cap = False
    stage = "route"
    pending: dict[str, list[Action]] = {
        "on_cost_cap": list(rules.on_cost_cap),
        "on_budget_exhausted": list(rules.on_budget_exhausted),
    }
    while True:
        evals = [_evaluate(b, ctx, relax=relax, cap=cap) for b in survivors]
        chosen = _choose(evals, cap=cap)
        if chosen is not None:
            steps.append(f"{stage}: {chosen.profile.name} chosen")
            return _routed(base, reports, evals, chosen, stage, ctx, steps, best_effort=False)
        steps.append(f"{stage}: no candidate fits")
        trigger = "on_budget_exhausted" if _budget_binds(evals) else "on_cost_cap"
        if not pending[trigger]:
            break
        action = pending[trigger].pop(0)
        steps.append(f"{trigger}: {action}")
        stage = action
        if action == "reject":
            return _soft_reject(base, reports, evals, stage, ctx, steps)
        if action == "downgrade":
            relax = True
        elif action == "cap_tokens":
            cap = True

    best = _best_effort(evals)
    if best is None and cap:  # nothing worth capping: route uncapped rather than not at all
        evals = [_evaluate(b, ctx, relax=relax, cap=False) for b in survivors]
        best = _best_effort(evals)
    if best is None:
        return _soft_reject(base, reports, evals, stage, ctx, steps)
    steps.append(f"best effort: {best.profile.name} despite {','.join(best.failures)}")
    return _routed(base, reports, evals, best, "best_effort", ctx, steps, best_effort=True)


# ---------------------------------------------------------------- context and filters


def _min_opt(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _context(
    request: RouteRequest, prediction: TokenBudget, rules: TenantRules, knobs: RoutingKnobs
) -> _Ctx:
    """Effective targets: the caller's cost target replaces the tenant's but never exceeds the
    tenant's hard cap; the caller's latency SLO replaces the tenant's e2e target."""
    target = (
        request.cost_target_usd if request.cost_target_usd is not None else rules.cost_target_usd
    )
    target = _min_opt(target, rules.cost_cap_usd)
    slo = rules.slo
    if request.latency_slo_ms is not None:
        slo = slo.model_copy(update={"e2e_p95_ms": request.latency_slo_ms})
    bound = _min_opt(request.max_tokens, rules.max_tokens_cap)
    wished, _why = wanted_level(request, prediction, rules, knobs)
    return _Ctx(
        request=request,
        prediction=prediction,
        rules=rules,
        knobs=knobs,
        cost_target=target,
        cost_cap=rules.cost_cap_usd,
        slo=slo,
        bound=pricing.UNLIMITED_TOKENS if bound is None else int(bound),
        wished=wished,
    )


def _hard_failure(p: ProfileView, ctx: _Ctx) -> tuple[str, str] | None:
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


def _hard_message(code: str, detail: str, ctx: _Ctx) -> str:
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


def _meets_class(p: ProfileView, ctx: _Ctx) -> bool:
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
class _Base:
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
    quality_over_target: bool = False  # a binding quality target outranks the cost target


def _base(p: ProfileView, ctx: _Ctx) -> _Base:
    req, perf, prices, knobs = ctx.request, p.performance, p.prices, ctx.knobs
    in_cost = pricing.input_cost_usd(prices, req.prompt_tokens, req.cached_prompt_share)
    uncached = req.prompt_tokens * (1.0 - req.cached_prompt_share)
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
    return _Base(
        profile=p,
        in_cost=in_cost,
        first_ms=first,
        queue_ms=queue_ms,
        tpot=tpot,
        speedup=speedup,
        room=p.max_model_len - req.prompt_tokens,
        cap_lim=_per_choice(pricing.affordable_tokens(prices, in_cost, ctx.cost_cap), req),
        budget_lim=_per_choice(
            pricing.affordable_tokens(prices, in_cost, ctx.rules.remaining_budget_usd), req
        ),
        target_lim=_per_choice(pricing.affordable_tokens(prices, in_cost, ctx.cost_target), req),
        slo_lim=pricing.UNLIMITED_TOKENS
        if e2e is None
        else replica_model.tokens_within_ms(e2e, first, tpot),
        meets_class=_meets_class(p, ctx),
        reasoning={},
    )


def _per_choice(affordable: int, req: RouteRequest) -> int:
    """Output tokens per choice that a total affordable count pays for (n choices share it)."""
    if affordable < 0 or affordable >= pricing.UNLIMITED_TOKENS or req.choices == 1:
        return affordable
    return affordable // req.choices


def _evaluate(b: _Base, ctx: _Ctx, *, relax: bool, cap: bool) -> _Eval:
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
    if need > target_lim and "over_cost_cap" not in failures and not b.quality_over_target:
        failures.append("over_cost_target")
    if need > slo_lim:
        failures.append("slo_e2e")

    causes = list(failures)
    hard_max = min(ctx.bound, room, cap_lim, budget_lim)
    if cap:
        max_tokens = min(hard_max, target_lim, slo_lim)
        failures = [f for f in failures if f not in CAPPABLE]
        if max_tokens < floor:
            failures.append("cap_below_minimum")
    else:
        max_tokens = min(hard_max, target_lim) if target_lim >= need else hard_max
    max_tokens = max(0, max_tokens)

    tokens = min(ctx.prediction.p50_output_tokens + r, max_tokens)
    tokens_p90 = min(ctx.prediction.p90_output_tokens + r, max_tokens)
    return _Eval(
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


# ---------------------------------------------------------------- choosing

_BUDGET_FAILURES = frozenset({"over_budget", "budget_below_minimum"})


def _budget_binds(evals: list[_Eval]) -> bool:
    """The remaining budget cannot pay for the request on any candidate."""
    return bool(evals) and all(_BUDGET_FAILURES.intersection(e.causes) for e in evals)


def _choose(evals: list[_Eval], *, cap: bool) -> _Eval | None:
    clean = [e for e in evals if not e.failures]
    if not clean:
        return None
    if cap:  # least truncation of the predicted answer first, then price
        return min(
            clean,
            key=lambda e: (-min(e.answer_room, e.tokens_p90), e.cost, e.latency, e.profile.name),
        )
    return min(clean, key=lambda e: (e.cost, e.latency, e.profile.name))


def _best_effort(evals: list[_Eval]) -> _Eval | None:
    """The least-failing candidate that the hard cost cap and the budget can still pay for."""
    usable = [
        e
        for e in evals
        if not MONEY_HARD.intersection(e.failures) and "cap_below_minimum" not in e.failures
    ]
    if not usable:
        return None
    return min(usable, key=lambda e: (len(e.failures), e.cost, e.latency, e.profile.name))


# ---------------------------------------------------------------- building the Decision


def _report(
    p: ProfileView,
    stage: str,
    lost: tuple[str, ...],
    detail: str = "",
    estimate: Estimate | None = None,
    chosen: bool = False,
) -> CandidateReport:
    return CandidateReport(
        profile=p.name,
        family=p.family,
        tier=p.quality_tier,
        chosen=chosen,
        stage=stage,
        lost_because=lost,
        detail=detail,
        estimate=estimate,
    )


def _stage_reports(
    reports: dict[str, CandidateReport], evals: list[_Eval], stage: str, chosen: _Eval | None
) -> None:
    for e in evals:
        detail = "; ".join(filter(None, ("+".join(e.causes), e.reasoning.note)))
        if e is chosen:
            reports[e.profile.name] = _report(e.profile, stage, (), detail, e.estimate(), True)
            continue
        lost = tuple(e.failures) if e.failures else ("not_best",)
        reports[e.profile.name] = _report(e.profile, stage, lost, detail, e.estimate())


def _ordered(reports: dict[str, CandidateReport | None]) -> tuple[CandidateReport, ...]:
    return tuple(r for r in reports.values() if r is not None)


def _routed(
    base: dict,
    reports: dict[str, CandidateReport],
    evals: list[_Eval],
    chosen: _Eval,
    stage: str,
    ctx: _Ctx,
    steps: list[str],
    *,
    best_effort: bool,
) -> Decision:
    _stage_reports(reports, evals, stage, chosen)
    p = chosen.profile
    n_clean = sum(1 for e in evals if not e.failures)
    if best_effort:
        action = "route"
        reason = f"best effort {p.name}: {'+'.join(chosen.failures) or 'no action left'}"
    elif stage == "route":
        action = "route"
        reason = f"route {p.name}: cheapest of {n_clean} meeting SLO and cost"
    elif stage == "downgrade":
        action = "downgrade"
        reason = f"downgrade to {p.name} ({p.quality_tier}): nothing fit at full quality"
    else:
        action = "cap_tokens"
        reason = f"cap_tokens {chosen.max_tokens} on {p.name}: cost or latency over target"
    return Decision(
        action=action,
        profile=p.name,
        reason=reason,
        max_tokens=chosen.max_tokens,
        reasoning=chosen.reasoning,
        estimate=chosen.estimate(),
        steps=tuple(steps),
        candidates=_ordered(reports),
        **base,
    )


def _soft_reject(
    base: dict,
    reports: dict[str, CandidateReport],
    evals: list[_Eval],
    stage: str,
    ctx: _Ctx,
    steps: list[str],
) -> Decision:
    _stage_reports(reports, evals, stage, None)
    closest = min(evals, key=lambda e: (len(e.causes), e.cost, e.profile.name))
    worst = min(closest.causes or ["?"], key=lambda f: _SOFT_STATUS.get(f, (9, 503, f))[0])
    _prio, status, code = _SOFT_STATUS.get(worst, (9, 503, "no_profile_fits"))
    est_ = closest.estimate()
    msg = _soft_message(code, closest, est_, ctx)
    retry = ctx.rules.budget_retry_after_s if status == 429 else None
    return _reject(base, reports, status, code, msg, tuple(steps), retry_after=retry)


def _soft_message(code: str, e: _Eval, estimate: Estimate, ctx: _Ctx) -> str:
    name = e.profile.name
    if code == "budget_exhausted":
        return (
            f"tenant {ctx.rules.tenant!r} has ${ctx.rules.remaining_budget_usd:.3g} left; "
            f"the cheapest option ({name}) needs ~${estimate.cost_usd_p90:.3g}"
        )
    if code == "cost_cap_exceeded":
        return f"cost cap ${ctx.cost_cap} is below ~${estimate.cost_usd_p90:.3g} on {name}"
    if code == "cost_target_unmet":
        return f"cost target ${ctx.cost_target} is below ~${estimate.cost_usd_p90:.3g} on {name}"
    if code == "context_length_exceeded":
        room = e.profile.max_model_len - ctx.request.prompt_tokens
        return f"the prompt leaves {room} tokens on {name}; the answer needs ~{estimate.output_tokens_p90}"
    if code == "latency_slo_unmeetable":
        slo = ctx.slo
        return (
            f"latency SLO (ttft {slo.ttft_p95_ms}, tpot {slo.tpot_p95_ms}, e2e {slo.e2e_p95_ms} ms) "
            f"unmeetable: best is {name} with ttft {estimate.ttft_ms:.0f} ms, "
            f"tpot {estimate.tpot_ms:.1f} ms, e2e {estimate.latency_ms_p90:.0f} ms"
        )
    return f"no profile of the tier a {ctx.prediction.query_class} query needs can serve it"


def _reject(
    base: dict,
    reports: dict[str, CandidateReport],
    status: int,
    code: str,
    message: str,
    steps: tuple[str, ...],
    *,
    retry_after: int | None = None,
) -> Decision:
    return Decision(
        action="reject",
        profile=None,
        reason=f"reject {status}: {code}",
        rejection=Rejection(status=status, code=code, message=message, retry_after_s=retry_after),
        steps=(*steps, f"reject: {code}"),
        candidates=_ordered(reports),
        **base,
    )
