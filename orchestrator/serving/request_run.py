"""One routed request from its budget hold to its settlement, owning its current plan.

    run = RequestRun(ctx, engine_plan, request_id, obs, exchange, state)
    response = await run.execute()

A run owns its plan, trace and settlement; `switch` is the one way to move it to another plan
(re-planned against the shared budget, or retried elsewhere after an engine failed before any
output): the load book, trace, settlement, modelled latencies and headers follow together, and
the decision that runs replaces the one recorded. The engine call, the relay and the stream's
continuation on another profile are here; what a settled request feeds (latency scales, demand
meter, metrics) are the context's on-settle hooks (ledger and calibration: `Accountant`).

Invariants: the request is counted in the load book from before its budget hold until it is
settled (on the profile its engine serves it from: a migrated stream moves its count); it is
settled exactly once; an engine failing before any output is retried once elsewhere unless the
tenant's `failover.retry` is false; so is a closed profile whose replica, started for the
request Serve holds, does not serve it within its deadline (`_first_packet`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi.responses import JSONResponse, Response, StreamingResponse

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.ledger import Status
from orchestrator.planning.expected import sized_of, sized_tokens
from orchestrator.request import route_inputs
from orchestrator.routing.quality import QualityAccounts
from orchestrator.routing.types import Decision, QueueWait, Rejection
from orchestrator.scheduling import Waiting
from orchestrator.serving import engine_items as items
from orchestrator.serving import failover as fo
from orchestrator.serving import openai_io, responses_api
from orchestrator.serving.accounting import Accountant, EngineUsage, RequestSettlement, RequestTrace
from orchestrator.serving.budget_gate import BudgetGate
from orchestrator.serving.decisions import DecisionRecorder
from orchestrator.serving.errors import error_response
from orchestrator.serving.ingress_queue import IngressQueue, ProfileLost, QueueFull, Ticket
from orchestrator.serving.latency_scales import LatencyScales
from orchestrator.serving.load_book import LoadBook
from orchestrator.serving.plan import EnginePlan, PlanState, Refused, decision_headers, replan
from orchestrator.serving.relay import Continuation, StreamFailover, relay_stream
from orchestrator.serving.request_telemetry import RequestObservation
from orchestrator.signals.meters import DemandMeter

log = logging.getLogger("orchestrator.ingress")


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settled request tells its on-settle hooks."""

    profile: str
    status: Status
    usage: EngineUsage
    cost_usd: float
    observed_s: tuple[float | None, float | None]  # (TTFT, TPOT) seen; None: not timed
    modelled_ms: tuple[float | None, float | None]  # what the replica model said of them
    targets_ms: tuple[float | None, float | None] = (None, None)  # its tenant's TTFT, TPOT p95s


SettleHook = Callable[[Settled], None]

# a request sent to a profile with no replica running waits at most this many times the TTFT
# its decision priced (the start-up included), plus the margin, for its first packet
OPEN_DEADLINE_FACTOR = 2.0
OPEN_DEADLINE_MARGIN_S = 30.0


class ReplicaNotStarted(Exception):
    """No replica of a closed profile served a request held for it within its deadline."""


class RunContext(Protocol):
    """What a run needs of the executor."""

    catalog: Catalog
    load: LoadBook
    budget: BudgetGate
    scales: LatencyScales
    decisions: DecisionRecorder
    accountant: Accountant
    demand: DemandMeter
    responses: responses_api.ResponseStore
    handles: Callable[[str], Any]
    on_settle: Sequence[SettleHook]
    ingress_queue: IngressQueue
    metrics: Any  # OrchestratorMetrics
    quality: QualityAccounts  # each tenant's running expected quality (its share target)
    policy_source: Any  # `.current`: the policy in force

    async def offload(self, fn: Callable[..., Any], /, *args: Any) -> Any: ...
    def engine_down(self, profile: str, reason: str) -> None: ...
    def profile_ready(self, name: str) -> bool: ...
    async def plan_now(self, engine_plan: EnginePlan) -> PlanState: ...


class RequestRun:
    """One routed request (see the module docstring)."""

    def __init__(
        self,
        ctx: RunContext,
        engine_plan: EnginePlan,
        request_id: str,
        obs: RequestObservation,
        exchange: responses_api.Exchange | None = None,
        state: PlanState | None = None,
    ):
        self.ctx, self.request_id, self.obs = ctx, request_id, obs
        self.exchange, self.state = exchange, state
        self.plan = engine_plan
        self.headers: Mapping[str, str] = engine_plan.headers
        self.trace = RequestTrace(
            request_id=request_id,
            started_at=obs.started_at,
            tenant=engine_plan.request.tenant.name,
            profile=engine_plan.profile.name,
            predicted_p50=engine_plan.prediction.p50_tokens,
            predicted_p90=engine_plan.prediction.p90_tokens,
            estimated_cost_usd=self._estimated(engine_plan),
            reserved_usd=engine_plan.reserved_usd,
        )
        self.settlement = RequestSettlement(
            ctx.accountant,
            self.trace,
            engine_plan.prices,
            profile=engine_plan.profile,
            prediction=engine_plan.prediction,
            max_tokens=engine_plan.route.max_tokens,
            release=self._release,
            observe=self._settled,
        )
        self.slot: Ticket | None = None  # its ingress queue slot, freed when it settles
        self.sized: tuple[str, float] | None = None  # (profile, output tokens) as demand
        self.modelled = self._modelled(engine_plan)

    # ----- the load book -------------------------------------------------------------------
    def begin(self) -> None:
        self.ctx.load.begin(self.request_id, self.trace.tenant, self.trace.profile,
                            self.trace.reserved_usd,
                            background=self.plan.request.spec.background)  # fmt: skip

    def end(self) -> None:
        self.ctx.load.end(self.request_id)

    def _abandon(self) -> None:
        """Out of the load book with nothing to settle (refused or gone before any engine
        ran): the settlement's hooks dropped, so the run is freed by reference counting."""
        self.end()
        self.settlement.abandon()

    async def switch(self, engine_plan: EnginePlan, headers: Mapping[str, str]) -> None:
        """Run `engine_plan` instead of the current plan (the one way to change plans)."""
        self.end()
        self.plan, self.headers = engine_plan, headers
        self.trace.profile, self.trace.reserved_usd = (
            engine_plan.profile.name,
            engine_plan.reserved_usd,
        )
        self.settlement.prices, self.settlement.profile = engine_plan.prices, engine_plan.profile
        self.settlement.prediction = engine_plan.prediction
        self.settlement.max_tokens = engine_plan.route.max_tokens
        self.modelled = self._modelled(engine_plan)
        self.begin()
        try:  # the decision that runs replaces the one recorded
            await self.ctx.decisions.put(self.request_id, self.trace.tenant, engine_plan.decision)
        except BaseException:
            self.end()
            raise

    # ----- the run -----------------------------------------------------------------------
    async def execute(self) -> Response | Refused:
        """Hold the budget, send, relay, settle once (a refused hold is returned)."""
        self.begin()
        # the hold is an await, so it comes after `begin`: this replica's later plans count
        # the request meanwhile; the ledger's lock makes the hold exact across replicas
        try:
            held = await self.ctx.budget.hold(self.plan, self.request_id, self.state)
        except BaseException:  # cancelled (client gone) or the database failed: not counted
            self._abandon()
            raise
        if isinstance(held, Refused):  # the shared budget has nothing left for it
            self._abandon()
            await self.ctx.decisions.put(self.request_id, self.trace.tenant, held.decision)
            return held
        if held is not self.plan:  # re-planned against the shared budget: cheaper, or capped
            await self.switch(held, held.headers)
        p, est = self.plan, self.plan.decision.estimate
        refused = await self._take_slot(est.output_tokens if est else p.prediction.p50_tokens)
        if refused is not None:
            return refused
        p = self.plan  # a waiter whose profile was lost may run on another
        est, sizing = (
            p.decision.estimate,
            self.ctx.policy_source.current.spec.autoscaling.demand_sizing,
        )
        sized = (
            sized_of(sizing, est)
            if est
            else sized_tokens(sizing, p.prediction.p50_tokens, p.prediction.p90_tokens)
        )  # what the planner sizes from (planning/expected.py)
        self.ctx.demand.add(p.profile.name, p.prediction.prompt_tokens, sized, time.monotonic())
        self.sized = (p.profile.name, sized)  # its settlement teaches the level (_settled)
        self.obs.engine_started()
        first, gen = await self._first_output()
        return await self._answer(first, gen)

    async def _first_output(self) -> tuple[Any, Any]:
        """The engine's first packet; an engine failing before it is marked down and the
        request re-planned once without it."""
        retried = False
        while True:
            profile, failure = self.plan.profile, None
            try:
                gen = getattr(self.ctx.handles(profile.name), self.plan.request.endpoint).remote(
                    self.plan.engine_request, None
                )
                first = await self._first_packet(gen)
                item = items.first_item(first)
                if items.is_error(item) and fo.engine_failed(items.error_payload(item)):
                    failure = item
            except Exception as exc:
                failure = exc
            if failure is None:
                return first, gen
            self.ctx.engine_down(profile.name, items.failure_text(failure))
            retry = None if retried else await self._retry()
            if retry is None:
                await self.settlement.settle(EngineUsage(), "error")
                raise items.engine_failure(profile, failure) from None
            retried = True
            headers = {
                **decision_headers(retry.decision),
                "X-Orchestrator-Retried-From": profile.name,
            }
            await self.switch(retry, headers)
            log.info("retrying on another profile", extra={"profile": retry.profile.name})

    async def _first_packet(self, gen: Any) -> Any:
        """The engine's first packet. Planned with no replica running (Serve holds the request
        while its replica starts), it must come within `OPEN_DEADLINE_FACTOR` x the TTFT the
        decision priced plus `OPEN_DEADLINE_MARGIN_S`; else the call is cancelled and counts
        as the engine failing (a replica that never starts: broken, not slow)."""
        p, views = self.plan, self.state.views if self.state is not None else ()
        view = next((v for v in views if v.name == p.profile.name), None)
        if view is None or view.live.replicas_running > 0 or p.decision.estimate is None:
            return await gen.__anext__()
        limit = OPEN_DEADLINE_FACTOR * p.decision.estimate.ttft_ms / 1000.0 + OPEN_DEADLINE_MARGIN_S
        try:
            return await asyncio.wait_for(gen.__anext__(), limit)
        except TimeoutError:
            gen.cancel()
            raise ReplicaNotStarted(
                f"no replica of {p.profile.name} served in {limit:.0f} s"
            ) from None

    async def _retry(self) -> EnginePlan | None:
        """The plan on another profile, its budget held (None: no retry)."""
        p = self.plan
        if not p.request.tenant.failover.retry:
            return None
        retry = replan(p, await self.ctx.plan_now(p), self.request_id)
        if not isinstance(retry, EnginePlan) or retry.profile.name == p.profile.name:
            return None
        granted = await self.ctx.budget.reserve(retry, self.request_id)  # replaces the hold
        return retry if granted is None or granted.granted else None

    async def _answer(self, first: Any, gen: Any) -> Response:
        p, item = self.plan, items.first_item(first)
        if items.is_error(item):
            await self.settlement.settle(EngineUsage(), "error")
            status, message = items.error_fields(item)
            return error_response(status, message, headers=dict(self.headers))
        if not p.request.stream:
            self.trace.mark_first_token()
            payload = item.model_dump() if hasattr(item, "model_dump") else item
            payload["model"] = p.shown_model
            cost = await self.settlement.settle(EngineUsage.from_openai(payload.get("usage")))
            if isinstance(payload.get("usage"), dict):
                payload["usage"]["cost_usd"] = round(cost, 10)
            if self.exchange is not None:
                answer = await self.ctx.offload(
                    self.exchange.from_chat, payload, self.ctx.responses
                )
                return JSONResponse(answer.model_dump(mode="json"), headers=dict(self.headers))
            return JSONResponse(payload, headers=dict(self.headers))
        spec = p.request.spec
        relay = relay_stream(
            first,
            gen,
            self.settlement,
            self.trace,
            engine_model=p.profile.name,
            shown_model=p.shown_model,
            wants_usage=spec.wants_usage or self.exchange is not None,  # Responses: usage
            wants_continuous_usage=spec.wants_continuous_usage and self.exchange is None,
            prompt_tokens=p.prediction.prompt_tokens,
            failover=StreamFailover(
                endpoint=p.request.endpoint,
                migratable=p.migratable,
                start=lambda progress, failed: self.continue_stream(p.profile, progress, failed),
                on_failure=self.ctx.engine_down,
                show_token_ids=spec.return_token_ids,
            ),
        )
        if self.exchange is not None:
            streamer = responses_api.ResponseStreamer(
                self.exchange, self.ctx.responses, p.shown_model
            )
            relay = streamer.relay(relay)
        return StreamingResponse(relay, media_type="text/event-stream", headers=dict(self.headers))

    async def continue_stream(
        self, failed_profile: Profile, progress: fo.StreamProgress, failed: list[str]
    ) -> Continuation | None:
        """Start the rest of a cut stream on the least busy healthy profile of the same model
        that the tenant may use (None when there is none or it fails at once)."""
        p, ctx = self.plan, self.ctx
        allowed = set(p.request.tenant.all_eligible_profiles())
        targets = fo.other_profiles(
            failed_profile.served_model_name,
            failed,
            [q for q in ctx.catalog.profiles if q.name in allowed],
            lambda name: not ctx.profile_ready(name),
        )
        for target in sorted(targets, key=lambda q: ctx.load.in_flight(q.name)):
            cont = fo.continuation_body(
                p.engine_body,
                progress,
                max_tokens=p.route.max_tokens,
                target_profile=target.name,
                max_model_len=target.max_model_len,
                request_id=f"{self.request_id}-migrated-{len(failed)}",
            )
            if cont is None:
                return None
            engine_request = openai_io.validate_request(cont, "completions")
            try:
                gen = ctx.handles(target.name).completions.remote(engine_request, None)
                first = await gen.__anext__()
            except Exception as exc:  # this one is down too: try the next
                ctx.engine_down(target.name, items.failure_text(exc))
                continue
            if items.is_error(items.first_item(first)):
                ctx.engine_down(target.name, items.failure_text(items.first_item(first)))
                continue
            ctx.load.move(self.request_id, target.name)
            prices = ctx.policy_source.current.prices[target.name]
            return Continuation(first, gen, target.name, prices)
        return None

    async def _take_slot(self, expected_out: int) -> Refused | None:
        """Wait for a free batch slot on the plan's profile (at once when one is free); the
        tenant's queue full is a 429 with Retry-After. A waiter whose profile lost its engine
        is planned again once (`_retry`: another profile, where it queues anew), else handed
        back with 429 and Retry-After. Refused or cancelled while queued (client gone):
        nothing was generated, so no ledger row and the hold is released."""
        replanned = False
        while True:
            p = self.plan
            item = Waiting(self.request_id, self.trace.tenant, p.predicted.prompt_tokens,
                           expected_out, p.predicted.budget.query_class,
                           background=p.request.spec.background)  # fmt: skip
            try:
                self.slot = await self.ctx.ingress_queue.turn(p.profile.name, item)
                break
            except ProfileLost as lost:
                retry = None if replanned else await self._retry()
                if retry is None:
                    return await self._queue_refused(p, lost, "profile_lost")
                replanned = True
                await self.switch(retry, {**decision_headers(retry.decision),
                                          "X-Orchestrator-Retried-From": lost.profile})  # fmt: skip
            except QueueFull as full:
                return await self._queue_refused(p, full, full.reason)
            except BaseException:
                self._unhold(p)
                raise
        self.ctx.metrics.queue_wait(self.trace.tenant, p.request.tenant.priority,
                                    self.slot.waited_s)  # fmt: skip
        return None

    def _unhold(self, p: EnginePlan) -> None:
        """Out of the load book, its budget hold released (nothing was generated, nothing
        will be settled)."""
        self._abandon()
        if route_inputs.budget_limits(p.request.tenant.budgets):
            self.ctx.budget.release(self.request_id)

    async def _queue_refused(
        self, p: EnginePlan, exc: QueueFull | ProfileLost, reason: str
    ) -> Refused:
        """The 429 with Retry-After for a request the queue handed back, recorded."""
        self._unhold(p)
        self.ctx.metrics.queue_refused(self.trace.tenant, reason)
        self.ctx.quality.handed_back(self.trace.tenant, p.decision)  # unanswered: counts 0
        refused = queue_refusal(p, str(exc), exc.retry_after_s, reason)  # recorded, explained
        await self.ctx.decisions.put(self.request_id, self.trace.tenant, refused.decision)
        return refused

    def queued_decision(self) -> Decision | None:
        """The decision that runs with its ingress queue wait: position at entry and time
        waited (None: it did not wait, or was refused or cancelled while waiting)."""
        slot = self.slot
        if slot is None or not slot.queued:
            return None
        wait = QueueWait(position=slot.position, waited_ms=round(1000.0 * slot.waited_s, 3))
        return self.plan.decision.model_copy(update={"queue": wait})

    # ----- settlement ----------------------------------------------------------------------
    def _release(self) -> None:
        self.end()
        if self.slot is not None:
            self.slot.done()

    def _settled(self, status: Status, usage: EngineUsage, cost: float) -> None:
        if self.slot is not None:  # the tenant's fair share: the actual tokens, not predicted
            self.slot.account(usage.prompt_tokens, usage.output_tokens)
        # only a stream shows when its first token came (a whole answer arrives at once: its
        # wait is the whole generation, neither a TTFT nor a TPOT)
        p, trace = self.plan, self.trace
        timed = status == "ok" and p.request.stream
        tokens = usage.output_tokens / p.request.spec.choices
        observed = (trace.ttft_s if timed else None, trace.tpot_s(tokens) if timed else None)
        slo = p.decision.slo
        done = Settled(trace.profile, status, usage, cost, observed, self.modelled,
                       (slo.ttft_p95_ms, slo.tpot_p95_ms))  # fmt: skip
        self._teach_level(status, tokens)
        for hook in self.ctx.on_settle:
            hook(done)
        if status != "error":  # errors are closed by `serve` with their HTTP status
            self.obs.close(200 if status in ("ok", "migrated") else 499, usage, cost, trace.ttft_s)

    def _teach_level(self, status: Status, tokens: float) -> None:
        """The demand level (`planning/level.py`) learns what this request generated (per
        choice) against what it was sized at, on the profile it was sized for: exact when it
        ended or reached its cap, a lower bound when stopped early (cancelled, failed); a
        request carried to another profile teaches nothing."""
        if self.sized is None or status == "migrated" or self.sized[0] != self.trace.profile:
            return
        spec = self.ctx.policy_source.current.spec.autoscaling.demand_level
        self.ctx.demand.level.observe(*self.sized, tokens, spec, ended=status == "ok")

    def _modelled(self, engine_plan: EnginePlan) -> tuple[float | None, float | None]:
        name = engine_plan.profile.name
        return self.ctx.scales.modelled(name, engine_plan.decision.estimate, time.monotonic())

    @staticmethod
    def _estimated(engine_plan: EnginePlan) -> float | None:
        estimate = engine_plan.decision.estimate
        return estimate.cost_usd if estimate else None


def queue_refusal(
    engine_plan: EnginePlan, message: str, retry_after_s: int, reason: str = "queue_full"
) -> Refused:
    """The 429 for a request the ingress queue could not take or handed back (code
    `queue_full`; `queue_timeout` when it waited past its bound; `profile_lost` when the
    engine it waited for failed and no other profile could take it), recorded and explained
    like every refusal."""
    code = reason if reason in ("profile_lost", "queue_timeout") else "queue_full"
    decision = engine_plan.decision.model_copy(
        update={
            "action": "reject",
            "profile": None,
            "rejection": Rejection(
                status=429, code=code, message=message, retry_after_s=retry_after_s
            ),
        }
    )
    request = engine_plan.request
    return Refused(request.spec, request.tenant, decision, engine_plan.predicted)
