"""The request path, top to bottom: authenticate, read, predict, plan, record, run.

    executor = RequestExecutor(catalog=..., policy_source=..., predictor=..., ledger=..., ...)
    response = await executor.serve(headers, raw_body, "chat", request_id)

The rules are the request core's (`orchestrator.request`: one pure `plan`, a route or a
refusal); the I/O around them is in parts (`LoadBook`, `BudgetGate`, `LatencyScales`,
`QualityAccounts`, `DecisionRecorder`, `RequestRun`, the on-settle hooks), all passed in.

Invariants: an invalid body gets its 4xx (naming the field) before anything is predicted,
priced, decided, reserved or recorded; ledger calls and a long text's prediction run in worker
threads (`offload`); nothing is awaited between the plan and the run's `begin` in the load
book, so each request is decided against every earlier decision; every plan is recorded
before the answer is returned; a failing engine marks its profile down at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from fastapi.responses import Response, StreamingResponse

from orchestrator.catalog.schema import Catalog
from orchestrator.decisionlog import DecisionLog
from orchestrator.ledger import UsageLedger, WindowSpend
from orchestrator.ledger.store import DEFAULT_RESERVATION_TTL_S
from orchestrator.policy import Policy
from orchestrator.request.candidates import candidates_for_model
from orchestrator.request.errors import RequestError
from orchestrator.request.plan import Predicted
from orchestrator.request.spec import caller_targets
from orchestrator.routing.quality import QualityAccounts
from orchestrator.routing.types import ProfileView
from orchestrator.scheduling import SchedulingSettings
from orchestrator.serving import failover as fo
from orchestrator.serving import openai_io, responses_api
from orchestrator.serving.accounting import Accountant
from orchestrator.serving.auth import authenticate
from orchestrator.serving.budget_gate import BudgetGate
from orchestrator.serving.decisions import DecisionRecorder, DecisionStore
from orchestrator.serving.errors import error_response
from orchestrator.serving.incoming import IncomingRequest, parse_incoming
from orchestrator.serving.ingress_queue import IngressQueue
from orchestrator.serving.latency_scales import LatencyScales
from orchestrator.serving.live_views import LiveViews
from orchestrator.serving.load_book import LoadBook
from orchestrator.serving.plan import (
    EnginePlan,
    PlanState,
    Refused,
    TokenPredictor,
    plan,
    predict_now,
    refusal_headers,
)
from orchestrator.serving.profile_status import ProfileStatus
from orchestrator.serving.request_run import RequestRun, Settled, SettleHook
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


class RequestExecutor:
    """Serves OpenAI requests: plans each with the request core and runs the plan."""

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
        starting: Mapping[str, int] | None = None,
        failed: Mapping[str, bool] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        offload: Offload = asyncio.to_thread,
        decisions: DecisionStore | DecisionLog | None = None,
        responses: responses_api.ResponseStore | None = None,
        placement_note: Callable[[str, list[str]], str] | None = None,
        reservation_ttl_s: float = DEFAULT_RESERVATION_TTL_S,
    ):
        self.catalog, self.policy_source, self.predictor = catalog, policy_source, predictor
        self.ledger, self.metrics, self.handles, self.offload = ledger, metrics, handles, offload
        self.ready = ready  # profile -> a replica is RUNNING (kept fresh by the edge)
        # replicas Serve runs per profile (kept fresh by the edge; default: the catalog's start)
        self.running = running or {p.name: p.replicas.start for p in catalog.profiles}
        self.placement_note = placement_note  # (503 message, profiles) -> why none is placed
        self.responses = responses or responses_api.ResponseStore()
        self.load = LoadBook()
        self.budget = BudgetGate(ledger, metrics, self.load, clock=clock, offload=offload,
                                 ttl_s=reservation_ttl_s)  # fmt: skip
        self.scales = LatencyScales()
        self.accountant = Accountant(ledger, predictor, offload)
        self.decisions = DecisionRecorder(decisions or DecisionStore(), offload,
                                          rides_with=self.accountant.writes)  # fmt: skip
        self.demand = DemandMeter(policy=lambda: self.policy_source.current)  # for the controller
        self.quality = QualityAccounts()  # each tenant's running expected quality (its target)
        self.health = fo.ProfileHealth()  # profiles seen failing, until healthy again
        # replicas starting; deployments failed or unplaceable with none running (the edge's)
        self.starting, self.failed = starting or {}, failed or {}
        self.status = ProfileStatus(ready, handles, self.health, self.failed)
        self.on_settle: list[SettleHook] = [self._observe_settled]
        self.views = LiveViews(catalog, self.running, self.load, self.scales, self.starting)
        # requests a profile cannot batch now wait here, in the scheduler's order
        self.ingress_queue = IngressQueue(
            SchedulingSettings.of(policy_source.current), self.views.slots, seats=self.views.seats
        )

    # ----- the request path ------------------------------------------------------------
    async def serve(
        self, headers: Mapping[str, str], raw_body: bytes, endpoint: ApiEndpoint, request_id: str
    ) -> Response:
        """A client's request; `obs.close` runs once per request (trace + metrics)."""
        return await self._observed(headers, raw_body, endpoint, request_id)

    async def serve_line(
        self, tenant: str, body: dict[str, Any], endpoint: ApiEndpoint, request_id: str, *,
        price_factor: float = 1.0,
    ) -> Response:  # fmt: skip
        """A batch line (`orchestrator.batch`): `serve` as `tenant` (authenticated at its
        job's creation), at `price_factor` of the list price, after every interactive request
        (ingress queue and engine priority). Never streamed."""
        raw = json.dumps({**body, "stream": False}).encode()
        try:
            return await self._observed({}, raw, endpoint, request_id, as_tenant=tenant,
                                        price_factor=price_factor)  # fmt: skip
        except RequestError as exc:
            return error_response(exc.status, exc.message, param=exc.param, code=exc.code)

    async def _observed(
        self, headers: Mapping[str, str], raw_body: bytes, endpoint: ApiEndpoint,
        request_id: str, **line: Any,
    ) -> Response:  # fmt: skip
        obs = RequestObservation(self.metrics, headers, endpoint, request_id)
        try:
            with request_id_scope(request_id):
                response = await self._serve(headers, raw_body, endpoint, request_id, obs, **line)
        except RequestError as exc:
            obs.close(exc.status)
            raise
        except Exception:
            obs.close(500)
            raise
        if not isinstance(response, StreamingResponse) and response.status_code >= 400:
            obs.close(response.status_code)
        return response

    async def _serve(
        self, headers: Mapping[str, str], raw_body: bytes, endpoint: ApiEndpoint,
        request_id: str, obs: RequestObservation, *, as_tenant: str | None = None,
        price_factor: float = 1.0,
    ) -> Response:  # fmt: skip
        policy = self.policy_source.current  # one policy for the whole request
        # a reload that shrinks a tenant's queue bound refuses its excess waiters (429)
        self.ingress_queue.reconfigure(SchedulingSettings.of(policy))
        tenant = authenticate(headers, policy, as_tenant)
        obs.tenant_known(tenant.name)
        # READ: everything first, so an invalid body is never priced or recorded
        body = openai_io.parse_json_body(raw_body)
        targets = caller_targets(headers, body.pop("orchestrator", None))
        exchange: responses_api.Exchange | None = None
        if endpoint == "responses":  # from here on, a chat request like any other
            # the stored conversation may be on the shared database: read it off the loop
            exchange = await self.offload(
                responses_api.Exchange.open, body, tenant.name, self.responses
            )
            body, endpoint = exchange.chat_body(), "chat"
        incoming = parse_incoming(body, endpoint, tenant, targets, self.catalog)
        if as_tenant is not None:  # a batch line: its tenant's share of the price, background
            spec = dataclasses.replace(incoming.spec, price_factor=price_factor, background=True)
            incoming = dataclasses.replace(incoming, spec=spec)
        # PREDICT and read the BUDGET; waiting meanwhile (worker threads may all be busy), so
        # admission sees the requests queued here, not only those already decided
        with self.load.waiting(incoming.model):
            obs.mark("predict")
            predicted = await predict_now(incoming, self.catalog, self.predictor, self.offload)
            obs.mark("route")  # the budget read is part of the decision
            spends, held = await self.budget.read(tenant)
        # PLAN: nothing is awaited from here to the run's `begin`
        state = self.plan_state(incoming, spends, held, predicted)
        outcome = plan(incoming, predicted, state, request_id)  # a route or a refusal
        self.views.decided(outcome.decision)  # a closed profile it passed over for its price
        self.quality.record(tenant.name, outcome.decision)  # a refusal counts 0
        obs.predicted(outcome.prediction if isinstance(outcome, EnginePlan) else predicted.first)
        written = self.decisions.record(request_id, incoming, outcome, state)  # RECORD
        obs.decided(outcome.decision)
        log.debug("decision", extra={"tenant": tenant.name, "profile": outcome.decision.profile,
                                    "action": outcome.decision.action})  # fmt: skip
        if isinstance(outcome, Refused):
            await written
            return self.refuse(outcome, state)
        run: RequestRun | None = None
        try:  # RUN: hold, send, relay, settle
            run = RequestRun(self, outcome, request_id, obs, exchange, state)
            answer = await run.execute()
            return self.refuse(answer, state) if isinstance(answer, Refused) else answer
        finally:
            # settled (or streaming) but not yet answered until its decision is written: still
            # a request at this ingress for admission (the decision log's writes can queue)
            with self.load.waiting(incoming.model):
                await written
                queued = run.queued_decision() if run is not None else None
                if queued is not None:  # it waited in the ingress queue: where, and how long
                    await self.decisions.record(request_id, incoming, run.plan, state, queued)

    def refuse(self, refused: Refused, state: PlanState) -> Response:
        """The answer to a refusal; one for capacity is demand the controller must see."""
        first, sizing = refused.predicted.first, state.policy.spec.autoscaling.demand_sizing
        record_refusal(self.demand, refused.code, refused.decision, state.views, refused.eligible,
                       refused.predicted.prompt_tokens, (first.p50_tokens, first.p90_tokens)
                       if first else (0, 0), time.monotonic(), sizing)  # fmt: skip
        message = refused.message
        if refused.status == 503 and self.placement_note is not None:
            names = [p.name for p in candidates_for_model(refused.spec.model, self.catalog)]
            message = self.placement_note(message, names)
        return error_response(refused.status, message, param=refused.rejection.param,
                              code=refused.code, headers=refusal_headers(refused))  # fmt: skip

    def plan_state(
        self, incoming: IncomingRequest, spends: Mapping[str, WindowSpend],
        held_usd: float = 0.0, predicted: Predicted | None = None,
    ) -> PlanState:  # fmt: skip
        """The state a request is planned against: this moment's load and reservations, the
        tenant's ledger spend and every replica's holds (from `budget.read`), and with its
        prediction its place in each profile's ingress queue."""
        tenant, policy = incoming.tenant, self.policy_source.current
        background = incoming.spec.background
        ahead = self.ingress_queue.places(tenant.name, background) if predicted else {}
        return PlanState(
            policy=policy,
            catalog=self.catalog,
            views=self.views_now(policy),
            budget=self.budget.state(tenant, spends, held_usd),
            tenant_in_flight=self.load.tenant_in_flight(tenant.name),
            waiting=self.load.waiting_for(incoming.model),
            ahead=ahead,
            held=self.ingress_queue.bounded(),
            quality=self.quality.of(tenant.name).sums,
        )

    async def plan_now(self, engine_plan: EnginePlan) -> PlanState:
        """The state to re-plan a running request against (its engine failed)."""
        spends, held = await self.budget.read(engine_plan.request.tenant)
        return self.plan_state(engine_plan.request, spends, held, engine_plan.route.predicted)

    def _observe_settled(self, done: Settled) -> None:
        """On-settle hook: cost feeds the spend rate; (TTFT, TPOT) against the model's feed
        its latency scales, against the tenant's targets its share within them (pressure)."""
        now = time.monotonic()
        self.demand.spent(done.profile, done.cost_usd, now)
        self.demand.judge(done.profile, done.observed_s, done.targets_ms, now)
        self.scales.observe(done.profile, done.observed_s, done.modelled_ms, now)

    # ----- other endpoints ------------------------------------------------------------
    async def decision_for(self, headers: Mapping[str, str], request_id: str) -> dict[str, Any]:
        """The stored decision of a request, for its tenant only (404 otherwise)."""
        policy = self.policy_source.current
        return await self.decisions.explain(authenticate(headers, policy), policy, request_id)

    # ----- profile health and the live views the plan reads ---------------------------
    def profile_ready(self, name: str) -> bool:
        return self.status.ready(name)

    def engine_down(self, profile: str, reason: str) -> None:
        """Marked down at once; the requests queued for it are planned again."""
        self.status.down(profile, reason)
        self.ingress_queue.evict(profile, self.catalog.profile(profile).replicas.startup_s)

    def views_now(self, policy: Policy) -> list[ProfileView]:
        """Router views priced by the policy in force, with this moment's load."""
        return self.views.now(policy, self.status.broken)

    def latency_scales(self, profile: str) -> dict[str, float | None]:
        """The profile's live TTFT and TPOT scales (None: the replica model alone)."""
        return self.scales.fresh(profile, time.monotonic())
