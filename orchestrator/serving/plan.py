"""`plan`: the pure step of the request path: predict, price, decide, apply.

    predicted = predict(request, catalog, predictor)          # the slow part: a worker thread
    plan(request, predicted, state) -> EnginePlan | Rejected  # price, decide, apply: sub-ms

No I/O of its own, no clock, no Ray: its collaborators (the predictor, the policy in force,
live priced views, the tenant's budget state) are passed in. Prediction does not depend on the
load, so the executor (`serving/executor.py`) runs it off the event loop, many at once; `plan`
reads the live load, so the executor runs it on the event loop and counts the request in
flight before anything else is planned: every request is decided against the load of every
request decided before it, and none waits for another's prediction.

Invariants:
- the engine request is the request validated once at parse time, updated with
  `model_copy(update=...)` (profile, request id, the decision's max_tokens and reasoning
  settings, usage always on for streams); it is never validated a second time;
- `EnginePlan.reserved_usd` is the most the request can cost (prompt plus max_tokens for every
  choice), so a tenant's in-flight reservations bound its overspend;
- the tenant's bounds that need the prediction (prompt tokens, requests in flight) and overload
  shedding by priority are checked before deciding (400 / 429 naming the policy field);
- a `Rejected` carries the decision (stored and observed like any other) and its headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.policy import Policy, TenantPolicy
from orchestrator.predict.request import ParsedRequest, PredictorInputError
from orchestrator.predict.schema import Prediction
from orchestrator.pricing import TokenPrices
from orchestrator.raycompat.chat_request import sanitize_chat_request
from orchestrator.routing.decide import decide
from orchestrator.routing.types import Decision, ProfileView
from orchestrator.serving import admission, bounds, openai_io, route_inputs
from orchestrator.serving import failover as fo
from orchestrator.serving.errors import OrchestratorHTTPError
from orchestrator.serving.incoming import IncomingRequest
from orchestrator.serving.profile_selection import candidates_for_model


class TokenPredictor(Protocol):
    """What `predict` needs of the predictor (`orchestrator.predict.Predictor` is one)."""

    def predict_many(
        self, request: ParsedRequest, profiles: list[Profile]
    ) -> Mapping[str, Prediction]: ...


@dataclass(frozen=True, slots=True)
class PlanState:
    """Everything a request is planned against, fixed for that request."""

    policy: Policy  # the policy in force (one for the whole request, even mid-reload)
    catalog: Catalog
    views: Sequence[ProfileView]  # priced by `policy`, with this moment's live load
    budget: route_inputs.BudgetState  # the tenant's remaining budget (ledger - reservations)
    request_id: str
    tenant_in_flight: int = 0  # the tenant's requests running now
    # other requests for the same `model` at this ingress and not counted in flight: waiting
    # for their prediction, or settled but waiting for their decision to be written
    waiting: int = 0


@dataclass(frozen=True, slots=True)
class Predicted:
    """A request's token predictions on each profile that serves its model."""

    candidates: list[Profile]  # the profiles serving the requested model, catalog order
    predictions: Mapping[str, Prediction]  # profile name -> its prediction
    first: Prediction  # the first candidate's (what the decision prices)


@dataclass(frozen=True, slots=True)
class Rejected:
    """The router refused the request (`decision.rejection` says why)."""

    decision: Decision
    prediction: Prediction  # the first candidate's (what the decision priced)
    headers: dict[str, str]

    @property
    def status(self) -> int:
        return self.decision.rejection.status if self.decision.rejection else 503

    @property
    def code(self) -> str:
        return self.decision.rejection.code if self.decision.rejection else "no_profile"

    @property
    def message(self) -> str:
        return self.decision.rejection.message if self.decision.rejection else self.decision.reason


@dataclass(frozen=True, slots=True)
class EnginePlan:
    """A routed request, ready to send."""

    request: IncomingRequest
    decision: Decision
    profile: Profile
    prediction: Prediction  # the chosen profile's (what calibration learns from)
    prices: TokenPrices
    engine_request: Any  # vLLM request model with the decision applied
    engine_body: dict[str, Any]  # the same as plain JSON (what a stream migration carries)
    reserved_usd: float
    headers: dict[str, str]
    predictions: Mapping[str, Prediction]  # every candidate's (a retry re-decides with them)
    first_prediction: Prediction  # the first candidate's (what the decision priced)
    migratable: bool  # a cut stream may continue on another engine (token ids requested)

    @property
    def shown_model(self) -> str:
        """The model name the client sees: what it asked for, else the family."""
        return self.request.model or self.profile.served_model_name


def predict(request: IncomingRequest, catalog: Catalog, predictor: TokenPredictor) -> Predicted:
    """The request's predictions on every candidate profile; 400 for a prompt over the
    tenant's bound or input the predictor cannot read. Independent of the load."""
    candidates = candidates_for_model(request.model, catalog)
    try:
        predictions = predictor.predict_many(request.text, candidates)
    except PredictorInputError as exc:
        raise OrchestratorHTTPError(400, str(exc)) from None
    first = predictions[candidates[0].name]
    bounds.check_prompt_bound(request.body, request.tenant.bounds, first.prompt_tokens)
    return Predicted(candidates, predictions, first)


def plan(request: IncomingRequest, predicted: Predicted, state: PlanState) -> EnginePlan | Rejected:
    """Admit, price, decide and apply under `state` (see the module docstring)."""
    tenant = request.tenant
    bounds.check_concurrency(tenant.name, tenant.bounds, state.tenant_in_flight)
    _check_overload(request, state, predicted.candidates, predicted.first)
    return _decided(request, state, predicted.predictions, predicted.first)


def replan(previous: EnginePlan, state: PlanState) -> EnginePlan | Rejected:
    """Decide again with the same predictions under `state` (the failed profile is then
    unhealthy in its views): the retry after an engine failed before any output."""
    return _decided(previous.request, state, previous.predictions, previous.first_prediction)


def _decided(
    request: IncomingRequest,
    state: PlanState,
    predictions: Mapping[str, Prediction],
    first: Prediction,
) -> EnginePlan | Rejected:
    tenant = request.tenant
    rules = route_inputs.tenant_rules(
        tenant, first.query_class, state.budget, tenant.eligible_profiles(first.query_class)
    )
    decision = decide(
        route_inputs.route_request(request.body, first.prompt_tokens, request.targets),
        route_inputs.token_budget(first),
        rules,
        state.views,
    )
    headers = decision_headers(decision)
    if decision.profile is None:
        rejection = decision.rejection
        if rejection and rejection.retry_after_s:
            headers["Retry-After"] = str(rejection.retry_after_s)
        elif rejection is None or rejection.status == 503:  # engines starting or down
            headers["Retry-After"] = "5"
        return Rejected(decision, first, headers)

    profile = state.catalog.profile(decision.profile)
    prediction = predictions.get(profile.name, first)
    prices = state.policy.prices[profile.name]
    reserve_tokens = (
        decision.max_tokens * bounds.choices(request.body)  # every choice at max_tokens
        if decision.max_tokens
        else prediction.p90_tokens
    )
    migratable = (
        request.stream
        and tenant.failover.migrate_streams
        and fo.migratable(request.body)
        and _has_migration_target(profile, tenant, state.catalog)
    )
    engine_request, engine_body = apply_decision(
        request, decision, profile, state.request_id, token_ids=migratable
    )
    return EnginePlan(
        request=request,
        decision=decision,
        profile=profile,
        prediction=prediction,
        prices=prices,
        engine_request=engine_request,
        engine_body=engine_body,
        reserved_usd=prices.cost_usd(prediction.prompt_tokens, reserve_tokens),
        headers=headers,
        predictions=predictions,
        first_prediction=first,
        migratable=migratable,
    )


def _check_overload(
    request: IncomingRequest,
    state: PlanState,
    candidates: list[Profile],
    first: Prediction,
) -> None:
    """429 + Retry-After when every eligible replica is saturated (see admission.py)."""
    served = {p.name for p in candidates}
    eligible = admission.eligible_for(request.tenant, first.query_class, served)
    admission.check_overload(
        admission.loads_of(state.views, eligible),
        priority=request.tenant.priority,
        priorities=[t.priority for t in state.policy.reachable_tenants()],
        waiting=state.waiting,
    )


def _has_migration_target(profile: Profile, tenant: TenantPolicy, catalog: Catalog) -> bool:
    """Whether another profile of the same model, one the tenant may use, could take a cut
    stream over (what `RequestExecutor.continue_stream` looks for, readiness aside)."""
    allowed = set(tenant.all_eligible_profiles())
    return any(
        p.name in allowed
        for p in fo.other_profiles(
            profile.served_model_name, [profile.name], catalog.profiles, lambda _: False
        )
    )


def apply_decision(
    request: IncomingRequest,
    decision: Decision,
    profile: Profile,
    request_id: str,
    *,
    token_ids: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """The engine request: the once-validated request with the decision's settings copied in
    (`model_copy`, no second validation; chat requests made picklable for the handle), and
    the same settings over the client's body as plain JSON. `token_ids`: ask the engine for
    token ids (a stream that may migrate)."""
    engine = request.engine_request
    update: dict[str, Any] = {"model": profile.name, "request_id": request_id}
    if token_ids:
        update["return_token_ids"] = True
    if decision.max_tokens is not None:
        update["max_tokens"] = decision.max_tokens
        if "max_completion_tokens" in type(engine).model_fields:
            update["max_completion_tokens"] = decision.max_tokens
    reasoning = decision.reasoning
    if reasoning is not None and request.endpoint == "chat":
        if reasoning.chat_template_kwargs:
            update["chat_template_kwargs"] = {
                **(getattr(engine, "chat_template_kwargs", None) or {}),
                **dict(reasoning.chat_template_kwargs),
            }
        update.update(reasoning.request_params)
    body = {**request.body, **update}
    if request.stream:  # always account: the final usage, and per chunk usage or token ids
        update["stream_options"] = openai_io.engine_stream_options_model(
            engine, per_chunk_usage=not token_ids
        )
        body["stream_options"] = update["stream_options"].model_dump(exclude_none=True)
    applied = engine.model_copy(update=update)
    if request.endpoint == "chat":
        applied = sanitize_chat_request(applied)
    return applied, body


def decision_headers(decision: Decision) -> dict[str, str]:
    """The `X-Orchestrator-*` headers of a response (see docs/architecture.md)."""
    p50, p90 = decision.predicted_tokens
    headers = {
        "X-Orchestrator-Decision": decision.reason[:200],
        "X-Orchestrator-Predicted-Tokens": f"{p50}/{p90}",
    }
    if decision.profile:
        headers["X-Orchestrator-Profile"] = decision.profile
    if decision.estimate is not None:
        headers["X-Orchestrator-Estimated-Cost-USD"] = f"{decision.estimate.cost_usd:.8f}"
    return headers
