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
- a routed request's worst-case cost is held in the ledger (`reserve`: atomic per tenant, so
  exact across replicas) right after `_begin`; a refused hold is planned once more against
  what is left, then answered as the budget path answers (429 with Retry-After); the
  settlement's row releases the hold in the same transaction, a dead replica's holds expire;
- the decision (with its inputs) is written in a worker thread while the request runs and
  awaited before the answer, so any replica finds it once the client has the answer; the
  ledger row is likewise committed before the answer's last byte (nothing is queued in
  memory: a replica killed after answering has lost no row);
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
import dataclasses
import json
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from fastapi.responses import JSONResponse, Response, StreamingResponse

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.decisionlog import DecisionInputs, DecisionLog
from orchestrator.ledger import Reservation, Status, UsageLedger, WindowSpend
from orchestrator.ledger.store import DEFAULT_RESERVATION_TTL_S
from orchestrator.policy import Policy, TenantPolicy
from orchestrator.request import route_inputs
from orchestrator.request.candidates import candidates_for_model
from orchestrator.request.spec import caller_targets
from orchestrator.routing.types import Decision, ProfileView, Rejection
from orchestrator.routing.views import with_live
from orchestrator.scheduling import SchedulingSettings, Waiting
from orchestrator.serving import budget_export, openai_io, responses_api
from orchestrator.serving import failover as fo
from orchestrator.serving.accounting import (
    Accountant,
    EngineUsage,
    RequestSettlement,
    RequestTrace,
)
from orchestrator.serving.errors import OrchestratorHTTPError, error_response
from orchestrator.serving.incoming import parse_incoming
from orchestrator.serving.ingress_queue import IngressQueue, QueueFull, Ticket
from orchestrator.serving.latency_scales import ScaleEma
from orchestrator.serving.plan import (
    EnginePlan,
    PlanState,
    Refused,
    TokenPredictor,
    decision_headers,
    plan,
    predict,
    refusal_headers,
    replan,
)
from orchestrator.serving.relay import Continuation, StreamFailover, relay_stream
from orchestrator.serving.request_telemetry import RequestObservation
from orchestrator.signals.meters import DemandMeter
from orchestrator.signals.refusals import record_refusal
from orchestrator.telemetry import OrchestratorMetrics, request_id_scope

log = logging.getLogger("orchestrator.ingress")

ApiEndpoint = openai_io.Endpoint | Literal["responses"]
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
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
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
        # per profile: how far the replica model's TTFT and TPOT are off (observed / modelled)
        self.ttft_scale = ScaleEma()
        self.tpot_scale = ScaleEma()
        self.clock = clock
        self.offload = offload
        self.accountant = Accountant(ledger, predictor)
        self.decisions = decisions or DecisionStore()
        self.responses = responses or responses_api.ResponseStore()
        self.in_flight: dict[str, int] = defaultdict(int)
        self.tenant_in_flight: dict[str, int] = defaultdict(int)
        # model asked for -> requests here that no profile counts (see PlanState.waiting)
        self.waiting: dict[str | None, int] = defaultdict(int)
        # this replica's holds (the ledger's `reserve` is what makes budgets exact across
        # replicas; these count the requests decided since the last ledger read)
        self.reserved_usd: dict[str, float] = defaultdict(float)
        self.reservation_ttl_s = reservation_ttl_s  # a hold outlives a dead replica this long
        self._background: set[asyncio.Future[Any]] = set()
        self.health = fo.ProfileHealth()  # profiles seen failing, until healthy again
        # (503 message, candidate profiles) -> the message plus why the cluster cannot host them
        self.placement_note = placement_note
        self._counted_on: dict[int, str] = {}  # id(trace) -> profile its in-flight count is on
        self._running_ids: dict[int, str] = {}  # id(trace) -> request id (its hold is renewed)
        self._views: dict[str, ProfileView] = {}
        self._views_version: str | None = None
        # requests a profile cannot batch now wait here, in the scheduler's order
        self.ingress_queue = IngressQueue(
            SchedulingSettings.of(policy_source.current), self.profile_slots
        )

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

    async def serve_line(
        self,
        tenant: str,
        body: dict[str, Any],
        endpoint: ApiEndpoint,
        request_id: str,
        *,
        price_factor: float = 1.0,
    ) -> Response:
        """A batch line (`orchestrator.batch`): `serve` as `tenant` (authenticated when its
        job was created), charged at `price_factor` of the list price. Never streamed."""
        headers: dict[str, str] = {}
        obs = RequestObservation(self.metrics, headers, endpoint, request_id)
        try:
            with request_id_scope(request_id):
                response = await self._serve(
                    headers, json.dumps({**body, "stream": False}).encode(), endpoint,
                    request_id, obs, as_tenant=tenant, price_factor=price_factor,
                )  # fmt: skip
        except OrchestratorHTTPError as exc:
            obs.close(exc.status)
            return error_response(exc.status, exc.message, param=exc.param, code=exc.code)
        except Exception:
            obs.close(500)
            raise
        if response.status_code >= 400:
            obs.close(response.status_code)
        return response

    async def _serve(
        self,
        headers: Mapping[str, str],
        raw_body: bytes,
        endpoint: ApiEndpoint,
        request_id: str,
        obs: RequestObservation,
        *,
        as_tenant: str | None = None,
        price_factor: float = 1.0,
    ) -> Response:
        policy = self.policy_source.current  # one policy for the whole request
        self.scheduling_now(policy)
        if as_tenant is None:
            tenant = self.authenticate(headers, policy)
        elif as_tenant in policy.tenants:  # a batch line (see serve_line)
            tenant = policy.tenants[as_tenant]
        else:  # a batch job's tenant that a reload removed
            raise OrchestratorHTTPError(
                401, f"tenant {as_tenant!r} is not in the policy in force", code="invalid_api_key"
            )
        obs.tenant_known(tenant.name)

        # read and validate everything first: an invalid body is never priced or recorded
        body = openai_io.parse_json_body(raw_body)
        targets = caller_targets(headers, body.pop("orchestrator", None))
        exchange: responses_api.Exchange | None = None
        if endpoint == "responses":  # from here on, a chat request like any other
            # the stored conversation may be on the shared database: read it off the loop
            exchange = await self.offload(
                responses_api.Exchange.open, body, tenant.name, self.responses
            )
            body = exchange.chat_body()
            endpoint = "chat"
        incoming = parse_incoming(body, endpoint, tenant, targets, self.catalog)
        if price_factor != 1.0:  # a batch line (see serve_line)
            spec = dataclasses.replace(incoming.spec, price_factor=price_factor)
            incoming = dataclasses.replace(incoming, spec=spec)
        # counted while it waits for its prediction (worker threads may all be busy), so
        # admission sees the requests queued here, not only those already decided
        self.waiting[incoming.model] += 1
        obs.mark("predict")
        try:
            predicted = await self.offload(predict, incoming, self.catalog, self.predictor)
            obs.mark("route")  # the budget read is part of the decision
            spends, held = await self.read_budget(tenant)
        finally:
            self.waiting[incoming.model] -= 1
        # nothing is awaited from here to `_begin` (in `execute`): see the module docstring
        state = self.plan_state(incoming, spends, held)
        outcome = plan(incoming, predicted, state, request_id)  # a route or a refusal
        obs.predicted(outcome.prediction if isinstance(outcome, EnginePlan) else predicted.first)
        # written in a worker thread while the request runs; awaited before the answer, so a
        # client that has its answer finds the decision on any replica
        written = self._record_decision(request_id, incoming, outcome, state)
        obs.decided(outcome.decision)
        log.info(
            "decision",
            extra={
                "tenant": tenant.name,
                "profile": outcome.decision.profile,
                "action": outcome.decision.action,
            },
        )
        if isinstance(outcome, Refused):
            self._refused(outcome, state)
            message = outcome.message
            if outcome.status == 503 and self.placement_note is not None:
                names = [p.name for p in candidates_for_model(incoming.model, self.catalog)]
                message = self.placement_note(message, names)
            await written
            return refusal_response(outcome, message)
        try:
            return await self.execute(outcome, request_id, obs, exchange, state)
        finally:
            # settled (or streaming) but not yet answered until its decision is written: still
            # a request at this ingress for admission (the decision log's writes can queue)
            self.waiting[incoming.model] += 1
            try:
                await written
            finally:
                self.waiting[incoming.model] -= 1

    def _refused(self, refused: Refused, state: PlanState) -> None:
        """A refusal for capacity is demand the controller must see (signals/refusals.py),
        split over the profiles admission counted for it (those serving its model)."""
        predicted = refused.predicted
        record_refusal(self.demand, refused.code, refused.decision, state.views,
                       refused.eligible, predicted.prompt_tokens,
                       predicted.first.p50_tokens if predicted.first else 0,
                       time.monotonic())  # fmt: skip

    def plan_state(
        self,
        incoming: Any,
        spends: Mapping[str, WindowSpend],
        held_usd: float = 0.0,
    ) -> PlanState:
        """The state a request is planned against: this moment's load and reservations, and
        the tenant's ledger spend `spends` and every replica's holds `held_usd` (from
        `read_budget`)."""
        tenant = incoming.tenant
        policy = self.policy_source.current
        return PlanState(
            policy=policy,
            catalog=self.catalog,
            views=self.views_now(policy),
            budget=self.budget_now(tenant, spends, held_usd),
            tenant_in_flight=self.tenant_in_flight.get(tenant.name, 0),
            waiting=self.waiting.get(incoming.model, 0),
        )

    async def execute(
        self,
        engine_plan: EnginePlan,
        request_id: str,
        obs: RequestObservation,
        exchange: responses_api.Exchange | None = None,
        state: PlanState | None = None,
    ) -> Response:
        """Hold the plan's budget in the ledger, send the request to its profile, relay the
        answer, settle once. `state` is what the plan was made against (for a re-plan when
        the shared budget refuses the hold)."""
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

        modelled = [self._modelled_ms(p)]  # the engine's (TTFT, TPOT), as the decision saw it

        slot: list[Ticket] = []  # its ingress queue slot, freed when it settles

        def observe(status: Status, usage: EngineUsage, cost: float) -> None:
            for ticket in slot:  # the tenant's fair share: the actual tokens, not predicted
                ticket.account(usage.prompt_tokens, usage.output_tokens)
            # only a stream shows when its first token came (a whole answer arrives at once:
            # its wait is the whole generation, neither a TTFT nor a TPOT)
            timed = status == "ok" and p.request.stream
            ttft_s = trace.ttft_s if timed else None
            tokens = usage.output_tokens / p.request.spec.choices
            tpot_s = trace.tpot_s(tokens) if timed else None
            self._observed(trace.profile, cost, (ttft_s, tpot_s), modelled[0])
            if status != "error":  # errors are closed by `serve` with their HTTP status
                obs.close(200 if status in ("ok", "migrated") else 499, usage, cost, trace.ttft_s)

        settlement = RequestSettlement(
            self.accountant,
            trace,
            p.prices,
            profile=profile,
            prediction=prediction,
            release=lambda: self._end_with_slot(trace, slot),
            observe=observe,
        )
        self._begin(trace)
        # the hold is an await, so it comes after `_begin`: this replica's later plans count
        # the request meanwhile; the ledger's lock makes the hold exact across replicas
        try:
            held = await self._hold_budget(p, request_id, trace, state)
        except BaseException:  # cancelled (client gone) or the database failed: not counted
            self._end(trace)
            raise
        if isinstance(held, Refused):  # the shared budget has nothing left for it
            self._end(trace)
            await self._put_decision(request_id, trace.tenant, held.decision)
            return refusal_response(held, held.message)
        if held is not p:  # re-planned against the shared budget: cheaper, or capped
            self._end(trace)
            p, profile, prediction = held, held.profile, held.prediction
            trace.profile, trace.reserved_usd = profile.name, p.reserved_usd
            settlement.prices, settlement.profile = p.prices, profile
            settlement.prediction = prediction
            modelled[0] = self._modelled_ms(p)
            headers = p.headers
            self._begin(trace)
            try:  # the decision that runs replaces the one refused (written long before)
                await self._put_decision(request_id, trace.tenant, p.decision)
            except BaseException:
                self._end(trace)
                raise
        expected_out = (
            p.decision.estimate.output_tokens if p.decision.estimate else prediction.p50_tokens
        )
        refused = await self._take_slot(p, request_id, trace, expected_out, slot)
        if refused is not None:
            return refused
        self.demand.add(profile.name, prediction.prompt_tokens, expected_out, time.monotonic())
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
            retry: EnginePlan | Refused | None = None
            if not retried and p.request.tenant.failover.retry:
                spends, held_usd = await self.read_budget(p.request.tenant)
                retry = replan(p, self.plan_state(p.request, spends, held_usd), request_id)
            if isinstance(retry, EnginePlan) and retry.profile.name != profile.name:
                # the retry's own amount replaces the hold (same request id); no re-plan
                granted = await self._reserve(retry, request_id)
                retry = retry if granted is None or granted.granted else None
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
            modelled[0] = self._modelled_ms(p)
            headers = {
                **decision_headers(p.decision),
                "X-Orchestrator-Retried-From": failed_profile.name,
            }
            self._begin(trace)
            await self._put_decision(request_id, trace.tenant, p.decision)
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
                response = await self.offload(exchange.from_chat, payload, self.responses)
                return JSONResponse(response.model_dump(mode="json"), headers=headers)
            return JSONResponse(payload, headers=headers)
        relay = relay_stream(
            first,
            gen,
            settlement,
            trace,
            engine_model=profile.name,
            shown_model=p.shown_model,
            wants_usage=p.request.spec.wants_usage or exchange is not None,  # Responses: usage
            wants_continuous_usage=p.request.spec.wants_continuous_usage and exchange is None,
            prompt_tokens=prediction.prompt_tokens,
            failover=StreamFailover(
                endpoint=p.request.endpoint,
                migratable=p.migratable,
                start=lambda progress, failed: self.continue_stream(
                    p, profile, progress, failed, request_id, trace
                ),
                on_failure=self.engine_down,
                show_token_ids=p.request.spec.return_token_ids,
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
                max_tokens=engine_plan.route.max_tokens,
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
    def profile_slots(self, name: str) -> int:
        """Requests the profile's engines batch at once: running replicas x the engine batch
        (0: none running, the ingress queue does not hold its requests)."""
        profile = self.catalog.profile(name)
        batch = profile.max_num_seqs or profile.performance.max_concurrency
        return self.running.get(name, 0) * batch

    def scheduling_now(self, policy: Policy) -> None:
        """The policy's scheduling settings for the ingress queue (a reload that shrinks a
        tenant's bound refuses its excess waiters with 429)."""
        settings = SchedulingSettings.of(policy)
        if settings is not self.ingress_queue.settings:
            self.ingress_queue.reconfigure(settings)

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
                self.ttft_scale.fresh(p.name, now),
                tpot_scale=self.tpot_scale.fresh(p.name, now),
                batch=p.max_num_seqs or p.performance.max_concurrency,
            )
            for p in self.catalog.profiles
        }
        return with_live(self._views.values(), live)

    def latency_scales(self, profile: str) -> dict[str, float | None]:
        """The profile's live TTFT and TPOT scales (observed / modelled; None when none is
        fresh, i.e. the replica model alone prices it)."""
        now = time.monotonic()
        return {
            "ttft": self.ttft_scale.fresh(profile, now),
            "tpot": self.tpot_scale.fresh(profile, now),
        }

    def _modelled_ms(self, engine_plan: EnginePlan) -> tuple[float | None, float | None]:
        """The replica model's TTFT (queue wait included) and TPOT for a planned request,
        without the profile's current scales: what observed latencies are compared with."""
        estimate = engine_plan.decision.estimate
        if estimate is None:
            return None, None
        name, now = engine_plan.profile.name, time.monotonic()
        ttft = self.ttft_scale.unscaled(name, estimate.ttft_ms, now)
        tpot = self.tpot_scale.unscaled(name, estimate.tpot_ms, now)
        return (ttft if ttft > 0 else None), (tpot if tpot > 0 else None)

    def _observed(
        self,
        profile: str,
        cost_usd: float,
        observed_s: tuple[float | None, float | None],
        modelled_ms: tuple[float | None, float | None],
    ) -> None:
        """A settled request: its cost feeds the spend rate; its (TTFT, TPOT) against the
        model's figures feed the profile's scales (EMAs of the ratios, clipped per request)."""
        now = time.monotonic()
        self.demand.spent(profile, cost_usd, now)
        for scale, seen, model in zip(
            (self.ttft_scale, self.tpot_scale), observed_s, modelled_ms, strict=True
        ):
            if seen is not None and model is not None:
                scale.observe(profile, seen * 1000.0, model, now)

    async def read_budget(self, tenant: TenantPolicy) -> tuple[dict[str, WindowSpend], float]:
        """The tenant's ledger spend in every window it has a limit on and the budget every
        replica holds for its requests in flight: one worker-thread call (nothing without
        limits); the budget gauges are refreshed from it."""
        limits = route_inputs.budget_limits(tenant.budgets)
        if not limits:
            return {}, 0.0
        now = self.clock()
        spends, held = await self.offload(_read_budget, self.ledger, tenant.name, limits, now)
        budget_export.set_window_gauges(self.metrics, tenant.name, limits, spends)
        return spends, held

    def budget_now(
        self, tenant: TenantPolicy, spends: Mapping[str, WindowSpend], held_usd: float = 0.0
    ) -> route_inputs.BudgetState:
        """Remaining budget: the ledger's spend minus the holds in flight. `held_usd` (every
        replica's, read with the spend) is a snapshot; this replica's own `reserved_usd`
        counts the requests decided since; the larger of the two counts none twice."""
        if not route_inputs.budget_limits(tenant.budgets):
            return route_inputs.BudgetState(None, None)
        spent = route_inputs.spent_of(spends, self.clock())
        held = max(held_usd, self.reserved_usd.get(tenant.name, 0.0))
        return route_inputs.budget_state(tenant.budgets, spent, held)

    async def budget_state(self, tenant: TenantPolicy) -> route_inputs.BudgetState:
        """Remaining budget as a request would be planned against it now."""
        return self.budget_now(tenant, *await self.read_budget(tenant))

    async def _reserve(self, engine_plan: EnginePlan, request_id: str) -> Reservation | None:
        """Hold the plan's worst-case cost in the ledger (None: the tenant has no budget).
        The hold is shielded: a request cancelled meanwhile releases what was granted."""
        tenant = engine_plan.request.tenant
        limits = route_inputs.budget_limits(tenant.budgets)
        if not limits:
            return None
        task = asyncio.ensure_future(
            self.offload(
                self.ledger.reserve,
                tenant.name,
                request_id,
                engine_plan.reserved_usd,
                limits,
                now=self.clock(),
                ttl_s=self.reservation_ttl_s,
            )
        )
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(lambda t: self._release_if_granted(t, request_id))
            raise

    def _release_if_granted(self, task: asyncio.Future[Any], request_id: str) -> None:
        if task.cancelled() or task.exception() is not None or not task.result().granted:
            return
        self._in_background(self.offload(self.ledger.release, request_id))

    def _in_background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _hold_budget(
        self,
        engine_plan: EnginePlan,
        request_id: str,
        trace: RequestTrace,
        state: PlanState | None,
    ) -> EnginePlan | Refused:
        """The plan, once its cost is held in the shared budget; refused, the request is
        planned once more against what the budget has left (cap, downgrade or 429 as the
        policy says) and held again; refused twice, the 429 with the window's Retry-After."""
        held = await self._reserve(engine_plan, request_id)
        if held is None or held.granted:
            return engine_plan
        retry_after = max(1, int(held.retry_after_s or 1))
        if state is not None:
            budget = route_inputs.BudgetState(held.remaining_usd, retry_after)
            again = replan(engine_plan, dataclasses.replace(state, budget=budget), request_id)
            if isinstance(again, Refused):
                return again
            second = await self._reserve(again, request_id)
            if second is None or second.granted:
                return again
            retry_after = max(1, int(second.retry_after_s or 1))
        log.info("budget hold refused", extra={"tenant": trace.tenant})
        return budget_refused(engine_plan, retry_after)

    async def expire_reservations(self) -> int:
        """Drop holds past their expiry (a replica that died); any replica may run it."""
        return await self.offload(self.ledger.expire, self.clock())

    async def renew_reservations(self) -> int:
        """Push the expiry of this replica's holds for requests still running to a full TTL
        from now (the caller runs this well within the TTL: a stream longer than it keeps
        its hold; a dead replica renews nothing and its holds lapse)."""
        running = list(self._running_ids.values())
        if not running:
            return 0
        now, ttl_s = self.clock(), self.reservation_ttl_s
        return await self.offload(lambda: self.ledger.renew(running, now=now, ttl_s=ttl_s))

    def _record_decision(
        self, request_id: str, incoming: Any, outcome: EnginePlan | Refused, state: PlanState
    ) -> asyncio.Future[None]:
        """Start writing the decision and its inputs (in a worker thread); the caller awaits
        the returned future before answering."""
        inputs = {
            "views": state.views,
            # the chosen profile's prediction (a refusal: the priced one)
            "prediction": outcome.prediction
            if isinstance(outcome, EnginePlan)
            else outcome.predicted.first,
            "budget_remaining_usd": state.budget.remaining_usd,
            "endpoint": incoming.endpoint,
            "model": incoming.model,
            "stream": incoming.stream,
            "max_tokens": incoming.spec.max_tokens,
        }
        return asyncio.ensure_future(
            self._put_decision(request_id, incoming.tenant.name, outcome.decision, state, inputs)
        )

    async def _put_decision(
        self,
        request_id: str,
        tenant: str,
        decision: Decision,
        state: PlanState | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> None:
        """Store a decision off the event loop; a failed write is logged, never the request's
        failure."""
        version = state.policy.version if state is not None else None
        try:
            await self.offload(
                _store_decision, self.decisions, request_id, tenant, decision, version, inputs
            )
        except Exception:
            log.warning("could not store the decision of %s", request_id, exc_info=True)

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
        self._running_ids[id(trace)] = trace.request_id
        self.tenant_in_flight[trace.tenant] += 1
        self.reserved_usd[trace.tenant] += trace.reserved_usd

    def _moved(self, trace: RequestTrace, profile: str) -> None:
        """A stream continues on `profile`: its in-flight count follows it."""
        counted = self._counted_on.get(id(trace))
        if counted is not None and counted != profile:
            self.in_flight[counted] -= 1
            self.in_flight[profile] += 1
            self._counted_on[id(trace)] = profile

    async def _take_slot(
        self,
        p: EnginePlan,
        request_id: str,
        trace: RequestTrace,
        expected_out: int,
        slot: list[Ticket],
    ) -> Response | None:
        """Wait for a free batch slot on the plan's profile (at once when one is free); a
        refusal (the tenant's queue full) is a 429 with Retry-After. Refused or cancelled
        while queued (client gone): nothing was generated, so no ledger row and the budget
        hold is released."""
        item = Waiting(
            request_id,
            trace.tenant,
            p.predicted.prompt_tokens,
            expected_out,
            p.predicted.budget.query_class,
        )
        try:
            ticket = await self.ingress_queue.turn(p.profile.name, item)
        except BaseException as exc:
            self._end(trace)
            if route_inputs.budget_limits(p.request.tenant.budgets):
                self._in_background(self.offload(self.ledger.release, request_id))
            if not isinstance(exc, QueueFull):
                raise
            self.metrics.queue_refused(trace.tenant, exc.reason)
            refused = queue_refused(p, str(exc), exc.retry_after_s)
            await self._put_decision(request_id, trace.tenant, refused.decision)
            return refusal_response(refused, str(exc))
        slot.append(ticket)
        self.metrics.queue_wait(trace.tenant, p.request.tenant.priority, ticket.waited_s)
        return None

    def _end_with_slot(self, trace: RequestTrace, slot: list[Ticket]) -> None:
        self._end(trace)
        for ticket in slot:
            ticket.done()

    def _end(self, trace: RequestTrace) -> None:
        self.in_flight[self._counted_on.pop(id(trace), trace.profile)] -= 1
        self._running_ids.pop(id(trace), None)
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

    async def decision_for(self, headers: Mapping[str, str], request_id: str) -> dict[str, Any]:
        """The stored decision of a request, for its tenant only (404 otherwise); read in a
        worker thread (the decision log may be a shared database)."""
        policy = self.policy_source.current
        tenant = self.authenticate(headers, policy)
        found = await self.offload(self.decisions.get, request_id)
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


def budget_refused(engine_plan: EnginePlan, retry_after_s: int) -> Refused:
    """The 429 for a request whose budget hold the ledger refused (as the budget path's)."""
    decision = engine_plan.decision.model_copy(
        update={
            "action": "reject",
            "profile": None,
            "rejection": Rejection(
                status=429,
                code="budget_exhausted",
                message="the tenant's budget is held by requests in flight or spent; "
                f"retry after {retry_after_s} s",
                retry_after_s=retry_after_s,
            ),
        }
    )
    request = engine_plan.request
    return Refused(request.spec, request.tenant, decision, engine_plan.predicted)


def queue_refused(engine_plan: EnginePlan, message: str, retry_after_s: int) -> Refused:
    """The 429 for a request its tenant's ingress queue could not take (recorded and
    explained like every refusal)."""
    decision = engine_plan.decision.model_copy(
        update={
            "action": "reject",
            "profile": None,
            "rejection": Rejection(
                status=429, code="queue_full", message=message, retry_after_s=retry_after_s
            ),
        }
    )
    request = engine_plan.request
    return Refused(request.spec, request.tenant, decision, engine_plan.predicted)


def refusal_response(refused: Refused, message: str) -> Response:
    """The OpenAI error answer of a refusal (the edge's HTTP mapping)."""
    return error_response(
        refused.status,
        message,
        param=refused.rejection.param,
        code=refused.code,
        headers=refusal_headers(refused),
    )


def _read_budget(
    ledger: UsageLedger, tenant: str, limits: Mapping[str, float], now: datetime
) -> tuple[dict[str, WindowSpend], float]:
    """Spend per limited window and every replica's live holds (worker thread)."""
    return ledger.spend_windows(tenant, list(limits), now=now), ledger.reserved_usd(tenant, now=now)


def _store_decision(
    store: Any,
    request_id: str,
    tenant: str,
    decision: Decision,
    policy_version: str | None,
    inputs: dict[str, Any] | None,
) -> None:
    """Write one decision (worker thread): with its inputs when the store keeps them."""
    if isinstance(store, DecisionLog):
        seen = None
        if inputs is not None:
            fields = dict(inputs)
            seen = DecisionInputs.from_views(fields.pop("views"), **fields)
        store.put(request_id, tenant, decision, policy_version=policy_version, inputs=seen)
    else:
        store.put(request_id, tenant, decision)


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
