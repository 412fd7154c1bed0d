"""Building a `Decision` from a stage's priced candidates (pure): routed, refused, explained."""

from __future__ import annotations

from orchestrator import pricing
from orchestrator.routing.candidates import Ctx, Eval, cached_share
from orchestrator.routing.types import CandidateReport, Decision, Estimate, ProfileView, Rejection

# a closed profile that lost only on the price of opening it (routing/decide.py)
OPENING_PRICE = "opening_price"

# blocking failure -> (priority, status, code) for a reject; lower priority number wins
SOFT_STATUS = {
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


def report(
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


def stage_reports(
    reports: dict[str, CandidateReport],
    evals: list[Eval],
    stage: str,
    chosen: Eval | None,
    declined: str | None = None,
) -> None:
    """Each candidate's report; `declined`: the closed profile that lost on its opening
    price alone (`OPENING_PRICE`)."""
    for e in evals:
        detail = "; ".join(filter(None, ("+".join(e.causes), e.reasoning.note)))
        if e is chosen:
            reports[e.profile.name] = report(e.profile, stage, (), detail, e.estimate(), True)
            continue
        if e.profile.name == declined:
            lost: tuple[str, ...] = (OPENING_PRICE, *(f for f in e.failures if f != OPENING_PRICE))
        else:
            lost = tuple(e.failures) if e.failures else ("not_best",)
        reports[e.profile.name] = report(e.profile, stage, lost, detail, e.estimate())


def ordered(reports: dict[str, CandidateReport | None]) -> tuple[CandidateReport, ...]:
    return tuple(r for r in reports.values() if r is not None)


def routed(
    base: dict,
    reports: dict[str, CandidateReport],
    evals: list[Eval],
    chosen: Eval,
    stage: str,
    ctx: Ctx,
    steps: list[str],
    *,
    best_effort: bool,
    declined: str | None = None,
) -> Decision:
    stage_reports(reports, evals, stage, chosen, declined)
    p = chosen.profile
    misses = tuple(
        "cost_target" if f == "over_cost_target" else f for f in chosen.failures if f in ctx.soft
    )
    n_clean = sum(1 for e in evals if not set(e.failures) - ctx.soft)
    if best_effort:
        action = "route"
        reason = f"best effort {p.name}: {'+'.join(chosen.failures) or 'no action left'}"
    elif stage == "route" and misses:
        action = "route"
        reason = f"route {p.name}: best of {n_clean}, misses {'+'.join(misses)} (soft)"
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
        candidates=ordered(reports),
        misses=misses,
        **base,
    )


def soft_reject(
    base: dict,
    reports: dict[str, CandidateReport],
    evals: list[Eval],
    stage: str,
    ctx: Ctx,
    steps: list[str],
) -> Decision:
    stage_reports(reports, evals, stage, None)

    def blocking(e: Eval) -> list[str]:
        return [f for f in e.causes if f not in ctx.soft]

    closest = min(evals, key=lambda e: (len(blocking(e)), e.cost, e.profile.name))
    worst = min(blocking(closest) or ["?"], key=lambda f: SOFT_STATUS.get(f, (9, 503, f))[0])
    _prio, status, code = SOFT_STATUS.get(worst, (9, 503, "no_profile_fits"))
    est_ = closest.estimate()
    msg = soft_message(code, closest, est_, ctx)
    retry = ctx.rules.budget_retry_after_s if status == 429 else None
    return reject(base, reports, status, code, msg, tuple(steps), retry_after=retry)


def soft_message(code: str, e: Eval, estimate: Estimate, ctx: Ctx) -> str:
    name = e.profile.name
    if code == "budget_exhausted":
        return (
            f"tenant {ctx.rules.tenant!r} has ${ctx.rules.remaining_budget_usd:.3g} left; "
            f"the cheapest option ({name}) needs ~${estimate.cost_usd_p90:.3g}"
        )
    if code == "cost_cap_exceeded":
        if "cost_cap_below_minimum" in e.causes:  # no max_tokens brings it under the cap
            return least_cost_message(e, ctx)
        return f"cost cap ${ctx.cost_cap} is below ~${estimate.cost_usd_p90:.3g} on {name}"
    if code == "cost_target_unmet":
        return (
            f"cost target ${ctx.cost_target} is below ~${estimate.cost_usd_p90:.3g} on {name}"
            f"{_by_action('on_cost_target', ctx.rules.on_cost_target)}"
        )
    if code == "context_length_exceeded":
        room = e.profile.max_model_len - ctx.request.prompt_tokens
        return f"the prompt leaves {room} tokens on {name}; the answer needs ~{estimate.output_tokens_p90}"
    if code == "latency_slo_unmeetable":
        slo = ctx.slo
        return (
            f"latency SLO (ttft {slo.ttft_p95_ms}, tpot {slo.tpot_p95_ms}, e2e {slo.e2e_p95_ms} ms) "
            f"unmeetable: best is {name} with ttft {estimate.ttft_ms:.0f} ms, "
            f"tpot {estimate.tpot_ms:.1f} ms, e2e {estimate.latency_ms_p90:.0f} ms"
            f"{_by_action('on_slo_unmeetable', ctx.rules.on_slo_unmeetable)}"
        )
    return f"no profile of the tier a {ctx.prediction.query_class} query needs can serve it"


def least_cost_message(e: Eval, ctx: Ctx) -> str:
    """The 402 for a cap that cannot pay the least a request costs on the closest profile:
    its prompt, its reasoning and `cap_tokens_floor` answer tokens (lowering max_tokens
    cannot help; a shorter prompt, a cheaper profile or a higher cap would)."""
    prices, req, floor = e.profile.prices, ctx.request, ctx.rules.cap_tokens_floor
    reasoning = e.reasoning.expected_tokens
    least = pricing.input_cost_usd(prices, req.prompt_tokens, cached_share(e.profile, req))
    least += (reasoning + floor) * req.choices * prices.output_usd_per_token
    what = f"a {req.prompt_tokens}-token prompt" + (" with reasoning" if reasoning else "")
    return (
        f"cost cap ${ctx.cost_cap} is below ~${least:.3g}, the least {what} and a {floor}-token "
        f"answer cost on {e.profile.name} (the closest profile); a lower max_tokens would "
        "not bring it under"
    )


def _by_action(field: str, actions: tuple[str, ...]) -> str:
    """Names the policy action that refused (a soft target never refuses on its own)."""
    return (
        f"; refused by the tenant's policy (actions.{field}: reject)" if "reject" in actions else ""
    )


def reject(
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
        candidates=ordered(reports),
        **base,
    )
