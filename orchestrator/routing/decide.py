"""`decide`: choose the profile for one request (pure: no Ray, no I/O, no clock).

Algorithm (docs/routing.md has the long form):
1. A spent budget rejects at once (429 + Retry-After).
2. Hard filters, in this order (the first that fails is the profile's reason): family,
   tenant allowance, tenant quality floor, context (the prompt leaves fewer than
   the tenant's `cap_tokens_floor`), reasoning the tenant forbids but the profile cannot switch off,
   `tools` (unless tool_choice is "none") without a tool parser, health. When no profile
   survives, the reason of the profile that got furthest picks the status: 404 model,
   503 floor/health, 400 context/reasoning/tools. The tier a predicted class wishes for is
   capped by what survives; and when every survivor with it has no replica running and a
   start-up would miss the TTFT target, by the strongest warm survivors (a cold start costs
   a replica's start-up and hold for one request, and misses the target anyway).
3. Stage "route": each survivor is priced with the wished reasoning; it fails softly on the
   quality its predicted class needs, the tenant's quality target (predicted success per tier,
   routing/quality.py), TTFT/TPOT/e2e SLO, room for the predicted p90 output, the cost target, the hard cost cap and the remaining budget. Latency targets are p95s and
   the cost target is a preference, so their misses are *soft* (they rank, never block)
   unless the tenant lists `on_slo_unmeetable` / `on_cost_target` actions. Among candidates
   with no blocking failure: one meeting every latency target first; else one that would
   meet them on an idle replica (the miss is load: the controller adds capacity), smallest
   overshoot first (in tenths of the target: closer ones tie); else (no profile can: a long prompt against a tight TTFT) the cheapest.
   Then one under the cost target, then the cheapest (running pools of one tier with spare
   replica time, carrying traffic one of them could carry alone: at the tier's cheapest
   cost, then by a replica's hourly price, `_packed`: the dearer one drains). A closed profile (no replica running
   or starting) costs its opening price too (`LiveState.opening_usd`), and fails
   `opening_price` while an open survivor has the tier the request needs and the opening
   exceeds the request's own cost (docs/routing.md). A soft target the routed profile is
   expected to miss is recorded in `Decision.misses`; on a soft cost-target miss a
   `downgrade` the tenant's `on_cost_cap` lists is taken when it is cheaper (never a cap or
   a refusal for the target; nor while a quality target binds: it outranks the cost aim).
4. Otherwise the tenant's actions run in order, each keeping the previous ones' effect. The
   list is `on_budget_exhausted` when the remaining budget cannot pay for the request on any
   surviving profile, else `on_cost_cap` (cost cap, class quality, context room), then
   `on_cost_target` and `on_slo_unmeetable` when those are enforced; each list runs at most
   once. `downgrade` drops the class need and the quality target (never the tenant floor) and turns
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

from orchestrator import replica_model
from orchestrator.concepts import TIER_RANK, Action
from orchestrator.routing.candidates import (
    HARD_ORDER,
    HARD_STATUS,
    LATENCY,
    TARGET,
    Base,
    Ctx,
    Eval,
    base_of,
    cached_share,
    context,
    evaluate,
    hard_failure,
    hard_message,
)
from orchestrator.routing.outcome import OPENING_PRICE, reject, report, routed, soft_reject
from orchestrator.routing.quality import (
    QualityVerdict,
    cheapest_upgrade,
    expected_success,
    qualifying_tiers,
)
from orchestrator.routing.types import (
    DEFAULT_KNOBS,
    CandidateReport,
    Decision,
    ProfileView,
    RouteRequest,
    RoutingKnobs,
    TenantRules,
    TokenBudget,
)

# failures that even best-effort routing may not ignore
MONEY_HARD = frozenset({"cost_cap_below_minimum", "budget_below_minimum"})
_BUDGET_FAILURES = frozenset({"over_budget", "budget_below_minimum"})
# a running pool this full or less (with the request) has spare replica time already paid for
CONSOLIDATE_FILL = 0.5


def decide(
    request: RouteRequest,
    prediction: TokenBudget,
    rules: TenantRules,
    profiles: Sequence[ProfileView],
    *,
    knobs: RoutingKnobs = DEFAULT_KNOBS,
) -> Decision:
    """Choose a profile (or reject) for one request; see the module docstring."""
    ctx = context(request, prediction, rules, knobs)
    base = {
        "query_class": prediction.query_class,
        "predicted_tokens": (prediction.p50_output_tokens, prediction.p90_output_tokens),
        "tier_success": prediction.tier_success,
        "cost_target_usd": ctx.cost_target,
        "cost_cap_usd": ctx.cost_cap,
        "share_of_strongest": rules.share_of_strongest,
        "slo": ctx.slo,
    }
    # keys in input order; later stages overwrite entries in place
    reports: dict[str, CandidateReport | None] = dict.fromkeys(p.name for p in profiles)

    if rules.remaining_budget_usd is not None and rules.remaining_budget_usd <= 0:
        for p in profiles:
            reports[p.name] = report(p, "budget", ("budget_spent",), "tenant budget spent")
        return reject(
            base,
            reports,
            429,
            "budget_exhausted",
            f"tenant {rules.tenant!r} has spent its budget",
            ("budget: spent",),
            retry_after=rules.budget_retry_after_s,
        )

    survivors: list[Base] = []
    furthest = -1
    furthest_detail = ""
    for p in profiles:
        hard = hard_failure(p, ctx)
        if hard is None:
            survivors.append(base_of(p, ctx))
            continue
        code, detail = hard
        reports[p.name] = report(p, "filter", (code,), detail)
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
    if _cold_class(survivors, ctx):
        # a replica started for this request would miss the TTFT target and cost a replica's
        # start-up and hold, while warm capacity at the tenant's floor serves it now
        top = max(TIER_RANK[b.profile.quality_tier] for b in survivors if _warm(b))
        for b in survivors:
            b.meets_class = _warm(b) and TIER_RANK[b.profile.quality_tier] == top
        steps.append(
            "class: every profile with the tier this class wants is cold (a start-up misses "
            "the TTFT target); the strongest warm ones qualify"
        )
    verdict = qualifying_tiers(
        (b.profile.quality_tier for b in survivors),
        prediction.tier_success,
        rules.min_success,
        rules.share_of_strongest,
        rules.quality_slack,
    )
    verdict = _cheapest_upgrade(verdict, survivors, ctx) or verdict
    for b in survivors:
        b.meets_quality = b.profile.quality_tier in verdict.tiers
    if verdict.note:
        steps.append(verdict.note)
    binding = len(verdict.tiers) < len({b.profile.quality_tier for b in survivors})
    if not survivors:
        if furthest < 0:
            status, code, msg = 503, "no_profiles", "no profiles are configured"
        else:
            status, code = HARD_STATUS[HARD_ORDER[furthest]]
            msg = hard_message(HARD_ORDER[furthest], furthest_detail, ctx)
        return reject(base, reports, status, code, msg, tuple(steps))

    relax = False
    cap = False
    stage = "route"
    pending: dict[str, list[Action]] = {
        "on_cost_cap": list(rules.on_cost_cap),
        "on_budget_exhausted": list(rules.on_budget_exhausted),
        "on_cost_target": list(rules.on_cost_target),
        "on_slo_unmeetable": list(rules.on_slo_unmeetable),
    }
    while True:
        evals = _price_openings([evaluate(b, ctx, relax=relax, cap=cap) for b in survivors])
        chosen = _choose(evals, ctx, cap=cap)
        if (
            chosen is not None
            and not relax
            and not binding
            and _soft_target_miss(chosen, ctx, pending)
        ):
            # aim below the target: a downgrade the tenant allows wins if it gets under the
            # target, or at least closer (cheaper), at no worse latency
            relaxed = _price_openings([evaluate(b, ctx, relax=True, cap=cap) for b in survivors])
            lower = _choose(relaxed, ctx, cap=cap)
            if (
                lower is not None
                and (TARGET not in lower.failures or lower.cost < chosen.cost)
                and _overshoot(lower, ctx) <= _overshoot(chosen, ctx)
            ):
                steps.append(f"{stage}: {chosen.profile.name} over the cost target")
                pending["on_cost_cap"].remove("downgrade")
                evals, chosen, stage = relaxed, lower, "downgrade"
        if chosen is not None:
            declined = _declined_opening(evals, chosen, ctx, cap=cap)
            steps.append(f"{stage}: {chosen.profile.name} chosen")
            steps.extend(_opened_step(chosen))
            if declined is not None:
                steps.append(
                    f"open: {declined.profile.name} would be cheaper per token, but opening it "
                    f"(~${declined.profile.live.opening_usd:.3g} per request: a replica's "
                    "start-up and minimum hold over the demand it would get) costs more"
                )
            steps.extend(_miss_steps(chosen, ctx))
            return routed(
                base, reports, evals, chosen, stage, ctx, steps, best_effort=False,
                declined=None if declined is None else declined.profile.name,
            )  # fmt: skip
        steps.append(f"{stage}: no candidate fits")
        trigger = _trigger(evals, ctx, pending)
        if trigger is None:
            break
        action = pending[trigger].pop(0)
        steps.append(f"{trigger}: {action}")
        stage = action
        if action == "reject":
            return soft_reject(base, reports, evals, stage, ctx, steps)
        if action == "downgrade":
            relax = True
        elif action == "cap_tokens":
            cap = True

    best = _best_effort(evals)
    if best is None and cap:  # nothing worth capping: route uncapped rather than not at all
        evals = _price_openings([evaluate(b, ctx, relax=relax, cap=False) for b in survivors])
        best = _best_effort(evals)
    if best is None:
        return soft_reject(base, reports, evals, stage, ctx, steps)
    steps.append(f"best effort: {best.profile.name} despite {','.join(best.failures)}")
    steps.extend(_opened_step(best))
    return routed(base, reports, evals, best, "best_effort", ctx, steps, best_effort=True)


# ---------------------------------------------------------------- choosing


def _cheapest_upgrade(verdict: QualityVerdict, survivors: list[Base], ctx: Ctx):
    """`quality.cheapest_upgrade` on the survivors: each tier at the request's expected cost
    on its cheapest profile that nothing but the quality target blocks (a closed pool's
    opening price is `_choose`'s to weigh, so the demand it loses is counted); None when no
    share target binds."""
    rules, success = ctx.rules, ctx.prediction.tier_success
    if not success or rules.share_of_strongest is None:
        return None
    price: dict[str, float] = {}
    for b in survivors:
        e = evaluate(b, ctx, relax=False, cap=False)
        if set(e.failures) - ctx.soft:
            continue
        tier = b.profile.quality_tier
        price[tier] = min(price.get(tier, float("inf")), e.cost)
    tiers = {b.profile.quality_tier for b in survivors}
    return cheapest_upgrade(
        verdict,
        {t: expected_success(t, success) for t in tiers},
        price,
        rules.min_success,
        rules.share_of_strongest,
        rules.quality_slack,
    )


def _opened_step(e: Eval) -> list[str]:
    """The step that explains routing to a closed profile: its opening price and wait."""
    live = e.profile.live
    if live.opening_usd <= 0:
        return []
    return [
        f"open: {e.profile.name} has no replica running or starting; opening it costs "
        f"~${live.opening_usd:.3g} per request (a replica's start-up and minimum hold over "
        f"the demand it would get), ranked with it; the request waits ~"
        f"{e.queue_ms / 1000:.3g} s for the replica"
    ]


def _warm(b: Base) -> bool:
    return b.profile.live.replicas_running > 0


def _cold_class(survivors: list[Base], ctx: Ctx) -> bool:
    """Every survivor with the class's tier has no replica running and its start-up would
    miss the TTFT target, while some survivor is warm."""
    ttft = ctx.slo.ttft_p95_ms
    wanted = [b for b in survivors if b.meets_class]
    return (
        ttft is not None
        and bool(wanted)
        and len(wanted) < len(survivors)
        and all(not _warm(b) and b.first_ms > ttft for b in wanted)
        and any(_warm(b) for b in survivors)
    )


_QUALITY = frozenset({"below_class_quality", "below_quality_target"})


def _price_openings(evals: list[Eval]) -> list[Eval]:
    """A closed profile (`opening_usd` > 0) whose opening price per request exceeds the
    request's own cost fails `opening_price` while an open one meets the class's tier and the
    quality target: the open one serves it (the tenant's cost actions cure what it misses)
    rather than a replica started for a trickle. Demand that spreads the price thinner
    lifts the failure (`signals/opening.py`)."""
    if not any(
        e.profile.live.opening_usd == 0 and not _QUALITY.intersection(e.causes) for e in evals
    ):
        return evals
    for e in evals:
        if e.profile.live.opening_usd > e.cost:
            e.failures.append(OPENING_PRICE)
            e.causes.append(OPENING_PRICE)
    return evals


def _budget_binds(evals: list[Eval]) -> bool:
    """The remaining budget cannot pay for the request on any candidate."""
    return bool(evals) and all(_BUDGET_FAILURES.intersection(e.causes) for e in evals)


def _trigger(evals: list[Eval], ctx: Ctx, pending: dict[str, list[Action]]) -> str | None:
    """The action list to run next: the budget's when it binds; the enforced cost target's
    (or SLO's) list when a candidate fails on that alone; else the cost cap's (cost cap, class,
    context, and a caller's own deadline); None when the lists of what fails are spent."""
    if _budget_binds(evals):
        return "on_budget_exhausted" if pending["on_budget_exhausted"] else None
    blocking = [set(e.failures) - ctx.soft for e in evals]
    own = []  # without the tenant's own list, a caller's target or deadline is cost cap's
    if ctx.rules.on_cost_target:
        own.append(("on_cost_target", {TARGET}))
    if ctx.rules.on_slo_unmeetable:
        own.append(("on_slo_unmeetable", set(LATENCY)))
    for name, kinds in own:
        if pending[name] and any(b and b <= kinds for b in blocking):
            return name
    theirs = set().union(*(kinds for _, kinds in own))
    if pending["on_cost_cap"] and any(b - theirs for b in blocking):
        return "on_cost_cap"
    for name, kinds in own:
        if pending[name] and any(b & kinds for b in blocking):
            return name
    return None  # the lists are spent: best effort (or refusal when money forbids it)


def _overshoot(e: Eval, ctx: Ctx) -> float:
    """How far the estimate is over the latency targets it misses (0 when it meets them)."""
    slo, worst = ctx.slo, 0.0
    for f in e.failures:
        if f == "slo_ttft" and slo.ttft_p95_ms:
            worst = max(worst, e.ttft / slo.ttft_p95_ms)
        elif f == "slo_tpot" and slo.tpot_p95_ms:
            worst = max(worst, e.tpot / slo.tpot_p95_ms)
        elif f == "slo_e2e" and slo.e2e_p95_ms:
            worst = max(worst, e.latency_p90 / slo.e2e_p95_ms)
    return worst


def _hopeless(e: Eval, ctx: Ctx) -> bool:
    """It misses a latency target even on an idle replica: no capacity would make it."""
    req = ctx.request
    uncached = req.prompt_tokens * (1.0 - cached_share(e.profile, req))
    idle = replica_model.request_latency(e.profile.performance, uncached, max(1, e.tokens_p90))
    return bool(idle.misses(ctx.slo))


def _choose(evals: list[Eval], ctx: Ctx, *, cap: bool, opening: bool = True) -> Eval | None:
    """The best candidate with no blocking failure: one meeting the latency targets; else one
    that would meet them idle (its miss is load, which the controller answers with capacity;
    the smallest overshoot first); else (no profile could) the cheapest. Then under the cost
    target, then (capped: least truncation) the cheapest. With `opening`, a profile with no
    replica running or starting costs its opening price too (`LiveState.opening_usd`)."""
    ignored = ctx.soft if opening else ctx.soft | {OPENING_PRICE}
    clean = [e for e in evals if not set(e.failures) - ignored]
    if not clean:
        return None
    hopeless: dict[int, bool] = {}
    packed = _packed(clean)

    def key(e: Eval) -> tuple:
        late = _overshoot(e, ctx)
        if late > 0 and id(e) not in hopeless:
            hopeless[id(e)] = _hopeless(e, ctx)
        lost = hopeless.get(id(e), False)
        extra = e.profile.live.opening_usd if opening else 0.0
        over = TARGET in e.failures or (
            extra > 0 and ctx.cost_target is not None and e.cost + extra > ctx.cost_target
        )
        trunc = -min(e.answer_room, e.tokens_p90) if cap else 0
        # overshoots closer than a tenth of the target tie (two cold starts differ by a few
        # ms of prefill), then the opening price and the cost decide
        cost, rate = packed.get(id(e), (e.cost, 0.0))
        return (late > 0, lost, 0.0 if lost else round(late, 1), trunc, over, cost + extra,
                rate, e.latency, e.profile.name)  # fmt: skip

    return min(clean, key=key)


def _packed(evals: list[Eval]) -> dict[int, tuple[float, float]]:
    """Running pools of one tier that are each at most `CONSOLIDATE_FILL` full with this
    request, while the one whose replica costs least an hour (`replica_usd_per_hour`, the
    catalog's price; a policy's explicit token prices do not move it) could carry all their
    traffic at that fill: their replicas are paid whatever they serve, so token prices do not
    tell them apart; what costs is keeping several open. They rank at the tier's cheapest
    cost, then by that hourly price, so the dearer pools drain and the planner closes them
    (two frontier pools each holding a trickle cost two replica-hours). Idle pools (nothing
    to pack) and a load no one of them carries keep their token prices.
    id(eval) -> (rank cost, hourly price) for the packed pools."""

    def load(e: Eval) -> int:
        return e.profile.live.requests_in_flight + e.profile.live.requests_queued

    def slots(e: Eval) -> int:
        return e.profile.live.replicas_running * e.profile.performance.max_concurrency

    spare: dict[str, list[Eval]] = {}
    for e in evals:
        if e.profile.live.opening_usd == 0 and load(e) + 1 <= CONSOLIDATE_FILL * slots(e):
            spare.setdefault(e.profile.quality_tier, []).append(e)
    out: dict[int, tuple[float, float]] = {}
    for group in spare.values():
        total = sum(load(e) for e in group)
        host = min(group, key=lambda e: e.profile.replica_usd_per_hour)
        if len(group) > 1 and total and total + 1 <= CONSOLIDATE_FILL * slots(host):
            cheapest = min(e.cost for e in group)
            out.update((id(e), (cheapest, e.profile.replica_usd_per_hour)) for e in group)
    return out


def _declined_opening(evals: list[Eval], chosen: Eval, ctx: Ctx, *, cap: bool) -> Eval | None:
    """The closed profile that would have been chosen but for its opening price (its
    demand: the caller counts these to amortise the price), else None."""
    if not any(e.profile.live.opening_usd > 0 for e in evals):
        return None
    free = _choose(evals, ctx, cap=cap, opening=False)
    if free is None or free is chosen or free.profile.live.opening_usd <= 0:
        return None
    return free


def _soft_target_miss(chosen: Eval, ctx: Ctx, pending: dict[str, list[Action]]) -> bool:
    """The choice misses the soft cost target and the tenant allows a downgrade to get under."""
    return (
        TARGET in chosen.failures and TARGET in ctx.soft and "downgrade" in pending["on_cost_cap"]
    )


def _miss_steps(chosen: Eval, ctx: Ctx) -> list[str]:
    """What the routed profile is expected to miss of the soft targets (recorded, not refused)."""
    out = []
    if TARGET in chosen.failures and TARGET in ctx.soft:
        out.append(
            f"cost target: ~${chosen.cost_p90:.3g} over ${ctx.cost_target:.3g} on "
            f"{chosen.profile.name} (soft: the cheapest profile that fits; miss recorded)"
        )
    late = [f for f in chosen.failures if f in LATENCY and f in ctx.soft]
    if late:
        out.append(
            f"slo: {'+'.join(late)} estimated over target on every candidate; "
            f"{chosen.profile.name} is the closest (p95 target: served, miss recorded)"
        )
    return out


def _best_effort(evals: list[Eval]) -> Eval | None:
    """The least-failing candidate that the hard cost cap and the budget can still pay for."""
    usable = [
        e
        for e in evals
        if not MONEY_HARD.intersection(e.failures) and "cap_below_minimum" not in e.failures
    ]
    if not usable:
        return None
    return min(usable, key=lambda e: (len(e.failures), e.cost, e.latency, e.profile.name))
