"""The edge's side of planning: predict on every candidate, call the request core's `plan`,
and apply a route to the once-validated engine request.

    predicted = predict(request, catalog, predictor)                    # a worker thread
    plan(request, predicted, state, request_id) -> EnginePlan | Refused  # sub-millisecond

The admission and routing rules are the request core's (`orchestrator.request.plan`), the same
ones the simulator calls; this module adds only what an engine call needs.

Invariants:
- the engine request is the request validated once at parse time, updated with
  `model_copy(update=...)` (profile, request id, the decision's max_tokens and reasoning
  settings, usage always on for streams, vLLM's `priority` from the scheduler's order key and
  the prediction in `vllm_xargs` for the replica router); it is never validated a second time;
- a refusal is a `Refused` value (recorded by the executor); its HTTP headers are built here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.policy import TenantPolicy
from orchestrator.predict.request import ParsedRequest, PredictorInputError
from orchestrator.predict.schema import Prediction
from orchestrator.pricing import TokenPrices
from orchestrator.raycompat.chat_request import sanitize_chat_request
from orchestrator.request import plan as core
from orchestrator.request.candidates import candidates_for_model
from orchestrator.request.errors import RequestError
from orchestrator.request.plan import PlanState, Predicted, Refused, Routed
from orchestrator.routing.types import Decision
from orchestrator.scheduling import SchedulingSettings
from orchestrator.serving import failover as fo
from orchestrator.serving import openai_io
from orchestrator.serving.incoming import IncomingRequest

__all__ = ["EnginePlan", "PlanState", "Predicted", "Refused", "plan", "predict", "replan"]


class TokenPredictor(Protocol):
    """What `predict` needs of the predictor (`orchestrator.predict.Predictor` is one)."""

    def predict_many(
        self, request: ParsedRequest, profiles: list[Profile]
    ) -> Mapping[str, Prediction]: ...


@dataclass(frozen=True, slots=True)
class EnginePlan:
    """A routed request, ready to send."""

    request: IncomingRequest
    route: Routed  # the request core's decision and what it commits
    engine_request: Any  # vLLM request model with the decision applied
    engine_body: dict[str, Any]  # the same as plain JSON (what a stream migration carries)
    headers: dict[str, str]
    migratable: bool  # a cut stream may continue on another engine (token ids requested)

    @property
    def decision(self) -> Decision:
        return self.route.decision

    @property
    def profile(self) -> Profile:
        return self.route.profile

    @property
    def prediction(self) -> Prediction:
        """The chosen profile's prediction (what calibration learns from)."""
        return self.route.prediction  # type: ignore[return-value]  # the server always has one

    @property
    def prices(self) -> TokenPrices:
        return self.route.prices

    @property
    def reserved_usd(self) -> float:
        return self.route.reserved_usd

    @property
    def predicted(self) -> Predicted:
        return self.route.predicted

    @property
    def shown_model(self) -> str:
        """The model name the client sees: what it asked for, else the family."""
        return self.request.model or self.profile.served_model_name


def predict(request: IncomingRequest, catalog: Catalog, predictor: TokenPredictor) -> Predicted:
    """The request's predictions on every candidate profile; 400 for input the predictor
    cannot read. Independent of the load."""
    candidates = candidates_for_model(request.model, catalog)
    try:
        predictions = predictor.predict_many(request.text, candidates)
    except PredictorInputError as exc:
        raise RequestError(400, str(exc), param=exc.param) from None
    return core.predicted_from(candidates, predictions)


# a request whose text is this short is predicted on the event loop: ~0.4 ms at 200 characters,
# ~1.4 ms at 2,000 (2-core EPYC), against ~0.4 ms of ingress CPU for a worker-thread hop (py-spy:
# submit, the future's callbacks, the loop's wake-up); a longer text, whose featurizing grows
# with it, goes to a worker thread so that the loop is never held long
INLINE_PREDICT_CHARS = 2_000


async def predict_now(
    request: IncomingRequest,
    catalog: Catalog,
    predictor: TokenPredictor,
    offload: Callable[..., Awaitable[Any]],
) -> Predicted:
    """`predict`: on the event loop for a text up to `INLINE_PREDICT_CHARS`, else through
    `offload` (a worker thread)."""
    if request.text_chars <= INLINE_PREDICT_CHARS:
        return predict(request, catalog, predictor)
    return await offload(predict, request, catalog, predictor)


def plan(
    request: IncomingRequest, predicted: Predicted, state: PlanState, request_id: str
) -> EnginePlan | Refused:
    """The request core's `plan`, applied to the engine request when it routes."""
    outcome = core.plan(request.spec, request.tenant, predicted, state)
    return (
        outcome
        if isinstance(outcome, Refused)
        else engine_plan(request, outcome, request_id, state)
    )


def replan(previous: EnginePlan, state: PlanState, request_id: str) -> EnginePlan | Refused:
    """Decide again with the same predictions under `state` (no admission: the request was
    admitted): the retry after an engine failed, or after the shared budget refused the hold."""
    request = previous.request
    outcome = core.replan(request.spec, request.tenant, previous.predicted, state)
    return (
        outcome
        if isinstance(outcome, Refused)
        else engine_plan(request, outcome, request_id, state)
    )


def engine_plan(
    request: IncomingRequest, route: Routed, request_id: str, state: PlanState
) -> EnginePlan:
    """A route applied to the engine request (see `apply_decision`)."""
    migratable = (
        request.stream
        and request.tenant.failover.migrate_streams
        and fo.migratable(request.spec, request.body)
        and _has_migration_target(route.profile, request.tenant, state.catalog)
    )
    predicted = route.decision.estimate.output_tokens if route.decision.estimate else None
    scheduled = SchedulingSettings.of(state.policy).engine_fields(
        request.tenant.name,
        route.predicted.budget.query_class,
        route.predicted.prompt_tokens,
        predicted if predicted is not None else route.predicted.budget.p50_output_tokens,
        time.time(),
        getattr(request.engine_request, "vllm_xargs", None),
        background=request.spec.background,
    )
    engine_request, engine_body = apply_decision(
        request,
        route.decision,
        route.profile,
        request_id,
        token_ids=migratable,
        scheduled=scheduled,
    )
    return EnginePlan(
        request=request,
        route=route,
        engine_request=engine_request,
        engine_body=engine_body,
        headers=decision_headers(route.decision),
        migratable=migratable,
    )


def refusal_headers(refused: Refused) -> dict[str, str]:
    """The headers of a refusal: the decision's, and Retry-After when retrying may help."""
    headers = decision_headers(refused.decision)
    if refused.retry_after_s is not None:
        headers["Retry-After"] = str(refused.retry_after_s)
    return headers


def _has_migration_target(profile: Profile, tenant: TenantPolicy, catalog: Catalog) -> bool:
    """Whether another profile of the same model, one the tenant may use, could take a cut
    stream over (what the executor's `continue_stream` looks for, readiness aside)."""
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
    scheduled: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The engine request: the once-validated request with the decision's settings copied in
    (`model_copy`, no second validation; chat requests made picklable for the handle), and
    the same settings over the client's body as plain JSON. `token_ids`: ask the engine for
    token ids (a stream that may migrate); `scheduled`: the scheduler's fields (vLLM's
    `priority`, the prediction in `vllm_xargs`: `SchedulingSettings.engine_fields`)."""
    engine = request.engine_request
    update: dict[str, Any] = {"model": profile.name, "request_id": request_id, **(scheduled or {})}
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
