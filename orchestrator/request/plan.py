"""`plan`: the request core's one step from a predicted request to a route or a refusal.

    predicted = predicted_from(candidates, predictions)      # or the simulator's own budget
    plan(spec, tenant, predicted, state) -> Routed | Refused  # admit, price, decide: sub-ms

Pure: no I/O, no clock, no HTTP, no engine; the server (`serving/`) and the simulator
(`simulate/policies.py`) both call it, with the same admission, budget and routing rules.

Invariants:
- admission and routing answer through one channel: every refusal (a policy bound, the
  tenant's concurrency, overload shedding, budget, cost, SLO, no healthy profile) is a
  `Refused` carrying a `Decision` with `action="reject"` and its `Rejection` (status, string
  code, message, the client's field in `param`, Retry-After), recorded like any decision;
- admission runs in a fixed order before deciding: body bounds, prompt bound, concurrency,
  overload;
- `Routed.reserved_usd` is the most the request can cost (prompt plus max_tokens for every
  choice), so a tenant's in-flight reservations bound its overspend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.policy import Policy, TenantPolicy
from orchestrator.predict.schema import Prediction
from orchestrator.pricing import TokenPrices
from orchestrator.request import admission, bounds, route_inputs
from orchestrator.request.spec import RequestSpec
from orchestrator.routing.decide import decide
from orchestrator.routing.types import Decision, ProfileView, Rejection, TokenBudget

NO_PROFILE_RETRY_AFTER_S = 5  # engines starting or down


@dataclass(frozen=True, slots=True)
class PlanState:
    """Everything a request is planned against, fixed for that request."""

    policy: Policy  # the policy in force (one for the whole request, even mid-reload)
    catalog: Catalog
    views: Sequence[ProfileView]  # priced by `policy`, with this moment's live load
    budget: route_inputs.BudgetState  # the tenant's remaining budget (spend - reservations)
    tenant_in_flight: int = 0  # the tenant's requests running now
    # other requests for the same `model` not counted in flight: waiting for their prediction,
    # or settled but waiting for their decision to be written (the server's ingress)
    waiting: int = 0
    # per profile: the queued requests routing prices as this one's wait: those of its
    # priority class and better (`WaitQueue.waiting_through`), not its place in the fair
    # order; admission counts what no queue holds (`held`). Absent: the whole queue.
    ahead: Mapping[str, int] = field(default_factory=dict)
    # per profile: its requests the ingress queue bounds (`admission.held_by_queue`: waiting
    # in it, or seated beyond the batch by its headroom), which admission does not count
    held: Mapping[str, int] = field(default_factory=dict)
    # the tenant's running (served, strongest) expected success (routing/quality.py): its
    # surplus over a share_of_strongest target lets this request take a cheaper tier
    quality: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True, slots=True)
class Predicted:
    """A request's predictions: the router's token budget (per choice) and prompt length,
    and every candidate profile's own prediction when there is one (the server's)."""

    candidates: Sequence[Profile]  # the profiles serving the requested model, catalog order
    budget: TokenBudget  # what the decision prices (the first candidate's, per choice)
    prompt_tokens: int
    predictions: Mapping[str, Prediction] = field(default_factory=dict)
    first: Prediction | None = None  # the first candidate's prediction (what `budget` is of)

    def of(self, profile: str) -> Prediction | None:
        """The prediction on `profile` (the first candidate's when it has none of its own)."""
        return self.predictions.get(profile, self.first)


def predicted_from(
    candidates: Sequence[Profile], predictions: Mapping[str, Prediction]
) -> Predicted:
    """`Predicted` from the predictor's answer on every candidate."""
    first = predictions[candidates[0].name]
    return Predicted(
        candidates=candidates,
        budget=route_inputs.token_budget(first),
        prompt_tokens=first.prompt_tokens,
        predictions=predictions,
        first=first,
    )


@dataclass(frozen=True, slots=True)
class Refused:
    """The request is refused; `decision.rejection` says why (recorded like any decision)."""

    spec: RequestSpec
    tenant: TenantPolicy
    decision: Decision
    predicted: Predicted

    @property
    def rejection(self) -> Rejection:
        return self.decision.rejection or Rejection(
            status=503, code="no_profile", message=self.decision.reason
        )

    @property
    def status(self) -> int:
        return self.rejection.status

    @property
    def code(self) -> str:
        return self.rejection.code

    @property
    def message(self) -> str:
        return self.rejection.message

    @property
    def retry_after_s(self) -> int | None:
        """Seconds the client should wait (None: retrying will not help)."""
        rejection = self.rejection
        if rejection.retry_after_s:
            return rejection.retry_after_s
        return NO_PROFILE_RETRY_AFTER_S if rejection.status == 503 else None

    @property
    def eligible(self) -> list[str]:
        """The profiles admission counted for this request (those serving its model that
        the tenant may use for its class): where refused demand is meant to go."""
        served = {p.name for p in self.predicted.candidates}
        return admission.eligible_for(self.tenant, self.predicted.budget.query_class, served)


@dataclass(frozen=True, slots=True)
class Routed:
    """A routed request: the decision and what running it commits."""

    spec: RequestSpec
    tenant: TenantPolicy
    decision: Decision
    profile: Profile
    prices: TokenPrices
    reserved_usd: float
    predicted: Predicted

    @property
    def prediction(self) -> Prediction | None:
        """The chosen profile's prediction (what calibration learns from)."""
        return self.predicted.of(self.profile.name)

    @property
    def max_tokens(self) -> int | None:
        """The cap the engine gets per choice (the decision's, else the client's)."""
        return (
            self.decision.max_tokens
            if self.decision.max_tokens is not None
            else self.spec.max_tokens
        )


def refusal(rejection: Rejection, predicted: Predicted) -> Decision:
    """A `Decision` for a request admission refused (no candidate was priced)."""
    budget = predicted.budget
    return Decision(
        action="reject",
        profile=None,
        reason=f"{rejection.code}: {rejection.message}"[:200],
        rejection=rejection,
        query_class=budget.query_class,
        predicted_tokens=(budget.p50_output_tokens, budget.p90_output_tokens),
        steps=("admission",),
    )


def admit(
    spec: RequestSpec, tenant: TenantPolicy, predicted: Predicted, state: PlanState
) -> Rejection | None:
    """The first admission rule the request breaks (None: admitted)."""
    limits = tenant.bounds
    refused = (
        bounds.body_bound(spec, limits)
        or bounds.prompt_bound(spec, limits, predicted.prompt_tokens)
        or bounds.concurrency_bound(tenant.name, limits, state.tenant_in_flight)
    )
    if refused is not None:
        return refused
    served = {p.name for p in predicted.candidates}
    eligible = admission.eligible_for(tenant, predicted.budget.query_class, served)
    return admission.check_overload(
        admission.loads_of(state.views, eligible, state.held),
        priority=tenant.priority,
        priorities=[t.priority for t in state.policy.reachable_tenants()],
        waiting=state.waiting,
    )


def plan(
    spec: RequestSpec, tenant: TenantPolicy, predicted: Predicted, state: PlanState
) -> Routed | Refused:
    """Admit, then price and decide under `state` (see the module docstring)."""
    refused = admit(spec, tenant, predicted, state)
    if refused is not None:
        return Refused(spec, tenant, refusal(refused, predicted), predicted)
    return replan(spec, tenant, predicted, state)


def replan(
    spec: RequestSpec, tenant: TenantPolicy, predicted: Predicted, state: PlanState
) -> Routed | Refused:
    """Price and decide without admission: an admitted request decided again (its budget
    hold refused, or its engine failed before any output: that profile is then unhealthy)."""
    budget = predicted.budget
    rules = route_inputs.tenant_rules(
        tenant,
        budget.query_class,
        state.budget,
        tenant.eligible_profiles(budget.query_class),
        state.quality,
    )
    views = route_inputs.seen_from_queue(state.views, state.ahead)
    decision = decide(
        route_inputs.route_request(spec, predicted.prompt_tokens), budget, rules, views
    )
    if decision.profile is None:
        return Refused(spec, tenant, decision, predicted)
    profile = state.catalog.profile(decision.profile)
    prices = state.policy.prices[profile.name]
    if spec.price_factor != 1.0:  # a batch line: its tenant's share of the list price
        prices = prices.scaled(spec.price_factor)
    prediction = predicted.of(profile.name)
    if decision.max_tokens:  # every choice at max_tokens
        reserve_tokens = decision.max_tokens * spec.choices
    elif prediction is not None:
        reserve_tokens = prediction.p90_tokens
    else:
        reserve_tokens = budget.p90_output_tokens * spec.choices
    prompt_tokens = prediction.prompt_tokens if prediction is not None else predicted.prompt_tokens
    return Routed(
        spec=spec,
        tenant=tenant,
        decision=decision,
        profile=profile,
        prices=prices,
        reserved_usd=prices.cost_usd(prompt_tokens, reserve_tokens),
        predicted=predicted,
    )
