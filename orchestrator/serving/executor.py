"""The thin executor of the request path: read, plan (off the event loop), send, relay, settle.

    executor = RequestExecutor(catalog=..., policy_source=..., predictor=..., ledger=...,
                               metrics=..., handles=..., ready=...)
    response = await executor.serve(headers, raw_body, "chat", request_id)

The maths is `plan.plan` (pure); this module owns the I/O around it: authentication, decoding
the body, the tenant's ledger spend (SQLite, in a worker thread), the in-flight load and
reservations, the call to the profile's engine handle, relaying, settlement and the decisions
store. Every collaborator is passed in (no Ray import here), so tests build it directly with
fakes; `OrchestratorIngress` (the Serve edge) builds it with the real ones.

Invariants:
- an invalid body is refused before anything is predicted, priced, decided, reserved or
  recorded: it gets its 4xx and leaves no decision, no reservation and no ledger row;
- prediction and ledger reads run in worker threads (`offload`), many at once, never on the
  event loop; the decision (`plan`, sub-millisecond maths) runs on the event loop and nothing is
  awaited between it and counting the request in flight (`_begin`), so each request is decided
  against the load and reservations of every request decided before it (a burst spreads, and
  overload shedding sees it) without requests waiting for each other's predictions;
- a request is counted in flight on the profile its engine is serving it from: a stream that
  migrates moves its count to the profile it continues on;
- every routed request is settled exactly once (`RequestSettlement`), streams cut short
  included; its in-flight count and reservation are released then;
- an engine that fails marks its profile down at once (`failover.ProfileHealth`; the edge
  probes it back up); a request it failed before any output is re-decided once without it
  (unless the tenant's `failover.retry` is false); a stream cut mid-way continues on another
  profile of the same model when `failover.migrate_streams` allows (see `relay.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from fastapi.responses import JSONResponse, Response, StreamingResponse

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.control.meters import DemandMeter
from orchestrator.control.refused import record_refusal
from orchestrator.ledger import Status, UsageLedger, WindowSpend
from orchestrator.policy import Policy, TenantPolicy
from orchestrator.routing.types import Decision, ProfileView
from orchestrator.routing.views import with_live
from orchestrator.serving import budget_export, openai_io, responses_api, route_inputs
from orchestrator.serving import failover as fo
from orchestrator.serving.accounting import (
    Accountant,
    EngineUsage,
    RequestSettlement,
    RequestTrace,
)
from orchestrator.serving.errors import OrchestratorHTTPError, error_response
from orchestrator.serving.incoming import parse_incoming
from orchestrator.serving.observe import RequestObservation
from orchestrator.serving.plan import (
    EnginePlan,
    PlanState,
    Rejected,
    TokenPredictor,
    decision_headers,
    plan,
    predict,
    replan,
)
from orchestrator.serving.profile_selection import candidates_for_model
from orchestrator.serving.relay import Continuation, StreamFailover, relay_stream
from orchestrator.telemetry import OrchestratorMetrics, request_id_scope

log = logging.getLogger("orchestrator.ingress")

ApiEndpoint = openai_io.Endpoint | Literal["responses"]
TTFT_SCALE_WEIGHT = 0.2  # EMA weight of a new observed/modelled TTFT ratio
TTFT_SCALE_MAX_AGE_S = 60.0  # an older ratio is forgotten (the model alone again)
TTFT_SCALE_BOUNDS = (0.2, 20.0)  # one request's ratio is clipped to these
Offload = Callable[..., Awaitable[Any]]


class PolicySource(Protocol):
    """The policy in force (`PolicyWatcher` is one: hot-reloaded, `current` never None)."""

    @property
    def current(self) -> Policy: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class RequestExecutor:
    """Serves OpenAI requests: plans each with `plan` and runs the plan (see module docstring)."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        policy_source: PolicySource,
        predictor: TokenPredictor,
        ledger: UsageLedger,
        metrics: OrchestratorMetrics,
        handles: Callable[[str], Any],
        ready: Mapping[str, bool],
        running: Mapping[str, int] | None = None,
        clock: Callable[[], datetime] = utc_now,
        offload: Offload = asyncio.to_thread,
        decisions: DecisionStore | None = None,
        responses: responses_api.ResponseStore | None = None,
        placement_note: Callable[[str, list[str]], str] | None = None,
    ):
        self.catalog = catalog
        self.policy_source = policy_source
        self.predictor = predictor
        self.ledger = ledger
        self.metrics = metrics
        self.handles = handles
        self.ready = ready  # profile -> a replica is RUNNING (kept fresh by the edge)
        # replicas Serve runs per profile (kept fresh by the edge; default: the catalog's start)
        self.running = (
            running if running is not None else {p.name: p.replicas.start for p in catalog.profiles}
        )
        self.demand = DemandMeter()  # predicted demand and spend, for the controller
        # profile -> (EMA of observed / modelled TTFT, monotonic time of the last update)
        self.ttft_scale: dict[str, tuple[float, float]] = {}
        self.clock = clock
        self.offload = offload
        self.accountant = Accountant(ledger, predictor)
        self.decisions = decisions or DecisionStore()
        self.responses = responses or responses_api.ResponseStore()
        self.in_flight: dict[str, int] = defaultdict(int)
        self.tenant_in_flight: dict[str, int] = defaultdict(int)
        self.reserved_usd: dict[str, float] = defaultdict(float)
        self.health = fo.ProfileHealth()  # profiles seen failing, until healthy again
        # (503 message, candidate profiles) -> the message plus why the cluster cannot host them
        self.placement_note = placement_note
        self._counted_on: dict[int, str] = {}  # id(trace) -> profile its in-flight count is on
        self._views: dict[str, ProfileView] = {}
        self._views_version: str | None = None

    # ----- the request path ------------------------------------------------------------
    async def serve(
        self, headers: Mapping[str, str], raw_body: bytes, endpoint: ApiEndpoint, request_id: str
    ) -> Response:
        """Trace + metrics around the request path; `obs.close` runs once per request."""
        obs = RequestObservation(self.metrics, headers, endpoint, request_id)
        try:
            with request_id_scope(request_id):
                response = await self._serve(headers, raw_body, endpoint, request_id, obs)
        except OrchestratorHTTPError as exc:
            obs.close(exc.status)
            raise
        except Exception:
            obs.close(500)
            raise
        if not isinstance(response, StreamingResponse) and response.status_code >= 400:
            obs.close(response.status_code)
        return response

    async def _serve(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        endpoint: ApiEndpoint,
        request_id: str,
        obs: RequestObservation,
    ) -> Response:
        policy = self.policy_source.current  # one policy for the whole request
        tenant = self.authenticate(headers, policy)
        obs.tenant_known(tenant.name)

        # read and validate everything first: an invalid body is never priced or recorded
        body = openai_io.parse_json_body(raw_body)
        targets = route_inputs.caller_targets(headers, body.pop("orchestrator", None))
        exchange: responses_api.Exchange | None = None
        if endpoint == "responses":  # from here on, a chat request like any other
            exchange = responses_api.Exchange.open(body, tenant.name, self.responses)
            body = exchange.chat_body()
            endpoint = "chat"
        incoming = parse_incoming(body, endpoint, tenant, targets, self.catalog)
        predicted = await self.offload(predict, incoming, self.catalog, self.predictor)
        spends = await self.read_spends(tenant)
        # nothing is awaited from here to `_begin` (in `execute`): see the module docstring
        state = self.plan_state(incoming, request_id, spends)
        try:
            outcome = plan(incoming, predicted, state)
        except OrchestratorHTTPError as exc:  # 429 overload: demand for the planner (h14c)
            self._refused(exc.code, None, incoming, predicted, state)
            raise
        obs.predicted(outcome.prediction)
        self.decisions.put(request_id, tenant.name, outcome.decision)
        obs.decided(outcome.decision)
        log.info(
            "decision",
            extra={
                "tenant": tenant.name,
                "profile": outcome.decision.profile,
                "action": outcome.decision.action,
            },
        )
        if isinstance(outcome, Rejected):
            self._refused(outcome.code, outcome.decision, incoming, predicted, state)
            message = outcome.message
            if outcome.status == 503 and self.placement_note is not None:
                names = [p.name for p in candidates_for_model(incoming.model, self.catalog)]
                message = self.placement_note(message, names)
            return error_response(
                outcome.status, message, code=outcome.code, headers=outcome.headers
            )
        return await self.execute(outcome, request_id, obs, exchange)

    def _refused(
        self,
        code: str | None,
        decision: Decision | None,
        incoming: Any,
        predicted: Any,
        state: PlanState,
    ) -> None:
        """A refusal for capacity is demand the controller must see (control/refused.py)."""
        first = predicted.first
        eligible = incoming.tenant.eligible_profiles(first.query_class)
        record_refusal(self.demand, code, decision, state.views, eligible, first.prompt_tokens,
                       first.p50_tokens, time.monotonic())  # fmt: skip

    def plan_state(
        self, incoming: Any, request_id: str, spends: Mapping[str, WindowSpend]
    ) -> PlanState:
        """The state a request is planned against: this moment's load and reservations, and
        the tenant's ledger spend `spends` (from `read_spends`)."""
        tenant = incoming.tenant
        policy = self.policy_source.current
        return PlanState(
            policy=policy,
            catalog=self.catalog,
            views=self.views_now(policy),
            budget=self.budget_now(tenant, spends),
            request_id=request_id,
            tenant_in_flight=self.tenant_in_flight.get(tenant.name, 0),
        )

    async def execute(
        self,
        engine_plan: EnginePlan,
        request_id: str,
        obs: RequestObservation,
        exchange: responses_api.Exchange | None = None,
    ) -> Response:
        """Send the plan's request to its profile, relay the answer, settle once."""
        p = engine_plan
        profile, prediction, headers = p.profile, p.prediction, p.headers
        trace = RequestTrace(
            request_id=request_id,
            started_at=obs.started_at,
            tenant=p.request.tenant.name,
            profile=profile.name,
            predicted_p50=prediction.p50_tokens,
            predicted_p90=prediction.p90_tokens,
            estimated_cost_usd=p.decision.estimate.cost_usd if p.decision.estimate else None,
            reserved_usd=p.reserved_usd,
        )

        modelled_ttft = [self._modelled_ttft_ms(p)]  # the engine's, as the decision saw it

        def observe(status: Status, usage: EngineUsage, cost: float) -> None:
            ttft_s = trace.ttft_s if status == "ok" else None
            self._observed(trace.profile, ttft_s, modelled_ttft[0], cost)
            if status != "error":  # errors are closed by `serve` with their HTTP status
                obs.close(200 if status in ("ok", "migrated") else 499, usage, cost, trace.ttft_s)

        settlement = RequestSettlement(
            self.accountant,
            trace,
            p.prices,
            profile=profile,
            prediction=prediction,
            release=lambda: self._end(trace),
            observe=observe,
        )
        expected_out = (
            p.decision.estimate.output_tokens if p.decision.estimate else prediction.p50_tokens
        )
        self.demand.add(profile.name, prediction.prompt_tokens, expected_out, time.monotonic())
        self._begin(trace)
        obs.engine_started()
        retried = False
        while True:
            failure: Any = None
            try:
                gen = getattr(self.handles(profile.name), p.request.endpoint).remote(
                    p.engine_request, None
                )
                first = await gen.__anext__()
                first_item = first[0] if isinstance(first, list) and first else first
                if _is_error(first_item) and fo.engine_failed(_error_payload(first_item)):
                    failure = first_item
            except Exception as exc:
                failure = exc
            if failure is None:
                break
            # the engine failed before any output: mark its profile down at once and decide
            # once more without it (unless the tenant's policy forbids the retry)
            self.engine_down(profile.name, _failure_text(failure))
            retry: EnginePlan | Rejected | None = None
            if not retried and p.request.tenant.failover.retry:
                spends = await self.read_spends(p.request.tenant)
                retry = replan(p, self.plan_state(p.request, request_id, spends))
            if not isinstance(retry, EnginePlan) or retry.profile.name == profile.name:
                await settlement.settle(EngineUsage(), "error")
                raise engine_failure(profile, failure) from None
            retried = True
            self._end(trace)
            failed_profile, p = profile, retry
            profile, prediction = p.profile, p.prediction
            trace.profile, trace.reserved_usd = profile.name, p.reserved_usd
            settlement.prices, settlement.profile = p.prices, profile
            settlement.prediction = prediction
            modelled_ttft[0] = self._modelled_ttft_ms(p)
            headers = {
                **decision_headers(p.decision),
                "X-Orchestrator-Retried-From": failed_profile.name,
            }
            self.decisions.put(request_id, trace.tenant, p.decision)
            self._begin(trace)
            log.info("retrying on another profile", extra={"profile": profile.name})
        if _is_error(first_item):
            await settlement.settle(EngineUsage(), "error")
            status, message = _error_fields(first_item)
            return error_response(status, message, headers=headers)
        if not p.request.stream:
            trace.mark_first_token()
            payload = first_item.model_dump() if hasattr(first_item, "model_dump") else first_item
            payload["model"] = p.shown_model
            cost = await settlement.settle(EngineUsage.from_openai(payload.get("usage")))
            if isinstance(payload.get("usage"), dict):
                payload["usage"]["cost_usd"] = round(cost, 10)
            if exchange is not None:
                response = exchange.from_chat(payload, self.responses)
                return JSONResponse(response.model_dump(mode="json"), headers=headers)
            return JSONResponse(payload, headers=headers)
        relay = relay_stream(
            first,
            gen,
            settlement,
            trace,
            engine_model=profile.name,
            shown_model=p.shown_model,
            wants_usage=p.request.wants_usage or exchange is not None,  # Responses: usage
            wants_continuous_usage=p.request.wants_continuous_usage and exchange is None,
            prompt_tokens=prediction.prompt_tokens,
            failover=StreamFailover(
                endpoint=p.request.endpoint,
                migratable=p.migratable,
                start=lambda progress, failed: self.continue_stream(
                    p, profile, progress, failed, request_id, trace
                ),
                on_failure=self.engine_down,
                show_token_ids=bool(p.request.body.get("return_token_ids")),
            ),
        )
        if exchange is not None:
            streamer = responses_api.ResponseStreamer(exchange, self.responses, p.shown_model)
            relay = streamer.relay(relay)
        return StreamingResponse(relay, media_type="text/event-stream", headers=headers)

    async def continue_stream(
        self,
        engine_plan: EnginePlan,
        failed_profile: Profile,
        progress: fo.StreamProgress,
        failed: list[str],
        request_id: str,
        trace: RequestTrace | None = None,
    ) -> Continuation | None:
        """Start the rest of a cut stream on the least busy healthy profile of the same model
        that the tenant may use (None when there is none or it fails at once)."""
        policy = self.policy_source.current
        allowed = set(engine_plan.request.tenant.all_eligible_profiles())
        targets = fo.other_profiles(
            failed_profile.served_model_name,
            failed,
            [p for p in self.catalog.profiles if p.name in allowed],
            lambda name: not self.profile_ready(name),
        )
        for target in sorted(targets, key=lambda p: self.in_flight.get(p.name, 0)):
            cont = fo.continuation_body(
                engine_plan.engine_body,
                progress,
                target_profile=target.name,
                max_model_len=target.max_model_len,
                request_id=f"{request_id}-migrated-{len(failed)}",
            )
            if cont is None:
                return None
            engine_request = openai_io.validate_request(cont, "completions")
            try:
                gen = self.handles(target.name).completions.remote(engine_request, None)
                first = await gen.__anext__()
            except Exception as exc:  # this one is down too: try the next
                self.engine_down(target.name, _failure_text(exc))
                continue
            first_item = first[0] if isinstance(first, list) and first else first
            if _is_error(first_item):
                self.engine_down(target.name, _failure_text(first_item))
                continue
            if trace is not None:
                self._moved(trace, target.name)
            return Continuation(first, gen, target.name, policy.prices[target.name])
        return None

    # ----- profile health ---------------------------------------------------------------
    def profile_ready(self, name: str) -> bool:
        """A replica is RUNNING and the profile is not marked down."""
        return self.ready.get(name, False) and not self.health.is_down(name)

    def engine_down(self, profile: str, reason: str) -> None:
        """Take a profile out of routing at once (not after Ray's health check)."""
        if self.health.mark_down(profile, reason):
            log.warning("profile marked down", extra={"profile": profile, "reason": reason})

    async def probe_down_profiles(self) -> None:
        """A profile marked down comes back once its deployment passes a health check."""
        for name in self.health.probe_due():
            try:
                handle = self.handles(name).options(stream=False)  # the configured ones stream
                await asyncio.wait_for(handle.check_health.remote(), timeout=2.0)
            except Exception:  # still dead, or its replica is being replaced
                continue
            self.health.mark_up(name)
            log.info("profile healthy again", extra={"profile": name})

    # ----- state the plan reads --------------------------------------------------------
    def views_now(self, policy: Policy) -> list[ProfileView]:
        """Router views priced by the policy in force, with this moment's load."""
        if self._views_version != policy.version:
            self._views = route_inputs.priced_views(self.catalog, policy)
            self._views_version = policy.version
        now = time.monotonic()
        live = {
            p.name: route_inputs.live_state(
                self.profile_ready(p.name),
                self.in_flight.get(p.name, 0),
                self.running.get(p.name, 0),
                self._fresh_scale(p.name, now),
                batch=p.max_num_seqs or p.performance.max_concurrency,
            )
            for p in self.catalog.profiles
        }
        return with_live(self._views.values(), live)

    def _fresh_scale(self, profile: str, now: float) -> float | None:
        found = self.ttft_scale.get(profile)
        if found is None or now - found[1] > TTFT_SCALE_MAX_AGE_S:
            return None
        return found[0]

    def _modelled_ttft_ms(self, engine_plan: EnginePlan) -> float | None:
        """The replica model's TTFT (queue wait included) for a planned request, without the
        profile's current scale: what an observed TTFT is compared with."""
        estimate = engine_plan.decision.estimate
        if estimate is None or estimate.ttft_ms <= 0:
            return None
        return estimate.ttft_ms / (
            self._fresh_scale(engine_plan.profile.name, time.monotonic()) or 1.0
        )

    def _observed(
        self, profile: str, ttft_s: float | None, modelled_ttft_ms: float | None, cost_usd: float
    ) -> None:
        """A settled request: its cost feeds the spend rate; its TTFT against the model's
        figure feeds the profile's TTFT scale (an EMA of the ratio, clipped per request)."""
        now = time.monotonic()
        self.demand.spent(profile, cost_usd, now)
        if ttft_s is None or modelled_ttft_ms is None:
            return
        low, high = TTFT_SCALE_BOUNDS
        ratio = min(high, max(low, ttft_s * 1000.0 / modelled_ttft_ms))
        prev = self._fresh_scale(profile, now)
        ema = ratio if prev is None else prev + TTFT_SCALE_WEIGHT * (ratio - prev)
        self.ttft_scale[profile] = (ema, now)

    async def read_spends(self, tenant: TenantPolicy) -> dict[str, WindowSpend]:
        """The tenant's ledger spend in every window it has a limit on: one query, in a worker
        thread (none without limits); the budget gauges are refreshed from it."""
        limits = route_inputs.budget_limits(tenant.budgets)
        if not limits:
            return {}
        now = self.clock()
        spends = await self.offload(self.ledger.spend_windows, tenant.name, list(limits), now=now)
        budget_export.set_window_gauges(self.metrics, tenant.name, limits, spends)
        return spends

    def budget_now(
        self, tenant: TenantPolicy, spends: Mapping[str, WindowSpend]
    ) -> route_inputs.BudgetState:
        """Remaining budget: the ledger's spend minus the tenant's reservations in flight now."""
        if not route_inputs.budget_limits(tenant.budgets):
            return route_inputs.BudgetState(None, None)
        now = self.clock()
        spent = {w: (s.cost_usd, s.retry_after_s(now)) for w, s in spends.items()}
        return route_inputs.budget_state(
            tenant.budgets, spent, self.reserved_usd.get(tenant.name, 0.0)
        )

    async def budget_state(self, tenant: TenantPolicy) -> route_inputs.BudgetState:
        """Remaining budget as a request would be planned against it now."""
        return self.budget_now(tenant, await self.read_spends(tenant))

    async def export_budgets(self) -> None:
        """Budget remaining and spend rate of every reachable tenant with a budget, from the
        ledger (run before each /metrics scrape)."""
        policy = self.policy_source.current
        await self.offload(
            budget_export.export_budgets, self.ledger, self.metrics, policy, self.clock()
        )

    def _begin(self, trace: RequestTrace) -> None:
        self.in_flight[trace.profile] += 1
        self._counted_on[id(trace)] = trace.profile
        self.tenant_in_flight[trace.tenant] += 1
        self.reserved_usd[trace.tenant] += trace.reserved_usd

    def _moved(self, trace: RequestTrace, profile: str) -> None:
        """A stream continues on `profile`: its in-flight count follows it."""
        counted = self._counted_on.get(id(trace))
        if counted is not None and counted != profile:
            self.in_flight[counted] -= 1
            self.in_flight[profile] += 1
            self._counted_on[id(trace)] = profile

    def _end(self, trace: RequestTrace) -> None:
        self.in_flight[self._counted_on.pop(id(trace), trace.profile)] -= 1
        self.tenant_in_flight[trace.tenant] -= 1
        self.reserved_usd[trace.tenant] -= trace.reserved_usd

    # ----- other endpoints' helpers -------------------------------------------------------
    def authenticate(self, headers: Mapping[str, str], policy: Policy) -> TenantPolicy:
        """The tenant named by `Authorization: Bearer <key>`; 401 for a key the policy does
        not know (with no keys in the policy, everyone is the default tenant)."""
        header = headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
        tenant = policy.resolve_tenant(key or None)
        if tenant is None:
            raise OrchestratorHTTPError(
                401,
                "Incorrect API key provided."
                if key
                else "Missing API key: send Authorization: Bearer <key>.",
                code="invalid_api_key",
            )
        return tenant

    def decision_for(self, headers: Mapping[str, str], request_id: str) -> dict[str, Any]:
        """The stored decision of a request, for its tenant only (404 otherwise)."""
        policy = self.policy_source.current
        tenant = self.authenticate(headers, policy)
        found = self.decisions.get(request_id)
        if found is None or (found[0] != tenant.name and policy.defines_keys):
            raise OrchestratorHTTPError(
                404, f"no decision recorded for request '{request_id}'", code="decision_not_found"
            )
        return {"request_id": request_id, "tenant": found[0], **found[1].model_dump(mode="json")}


def engine_failure(profile: Profile, failure: Any) -> OrchestratorHTTPError:
    log.warning("profile %s failed a request: %s", profile.name, _failure_text(failure))
    return OrchestratorHTTPError(
        503,
        f"the engine for profile '{profile.name}' is unavailable: {_failure_text(failure)}",
        code="engine_unavailable",
        headers={"Retry-After": "5"},
    )


class DecisionStore:
    """The last `capacity` decisions by request id (per ingress replica), for the decisions
    endpoint. Bounded: the oldest entry goes first."""

    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[str, Decision]] = OrderedDict()

    def put(self, request_id: str, tenant: str, decision: Decision) -> None:
        self._items[request_id] = (tenant, decision)
        self._items.move_to_end(request_id)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, request_id: str) -> tuple[str, Decision] | None:
        return self._items.get(request_id)


def _error_payload(item: Any) -> Any:
    """An error item as `engine_failed` reads it (the item, or its SSE event's JSON)."""
    if isinstance(item, str):
        return openai_io.sse_json(openai_io.split_sse(item)[0]) if item.strip() else None
    return item


def _failure_text(failure: Any) -> str:
    if isinstance(failure, BaseException):
        return f"{type(failure).__name__}"
    payload = _error_payload(failure)
    err = getattr(payload, "error", None)
    if err is not None:
        return str(getattr(err, "message", "engine error"))[:200]
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        return str(payload["error"].get("message", "engine error"))[:200]
    return "engine error"


def _is_error(item: Any) -> bool:
    return type(item).__name__ == "ErrorResponse" or (
        isinstance(item, str) and item.lstrip().startswith('data: {"error"')
    )


def _error_fields(item: Any) -> tuple[int, str]:
    err = getattr(item, "error", None)
    if err is not None:
        code = getattr(err, "code", 400)
        status = code if isinstance(code, int) and 400 <= code < 600 else 400
        return status, str(getattr(err, "message", "engine error"))
    return 400, str(item)
