"""The OpenAI-compatible ingress deployment: validate, choose a profile, stream from its engine.

Built on ray.serve.llm's `OpenAiIngress` (its profile handles, model cards and handle
configuration); the endpoints are our own because the profile is chosen per request from the
model family (not looked up by exact model id) and every response carries the decision.

Invariants:
- every response (success or error) carries `X-Request-Id` exactly once: Serve's proxy sets it
  (the caller's id, or a new one) and the ingress never does (the proxy appends its own to
  whatever the app sends, so an app-set one would be sent twice); it is the id we log, store
  decisions under and pass to the engine;
- a body is validated completely (JSON, our field checks, vLLM's own request model) before
  anything is predicted, priced, decided, reserved or recorded: an invalid body gets its 4xx
  and leaves no decision, no reservation and no ledger row;
- no exception escapes as a bare 500 (see `errors.py`); a profile whose deployment is not
  HEALTHY is never chosen;
- every routed request is settled exactly once (`RequestSettlement`), streams cut short
  included (charged for the tokens they carried; see `relay.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections import OrderedDict, defaultdict
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray.llm._internal.serve.core.ingress.utils import _sanitize_chat_completion_request
from ray.serve.handle import DeploymentHandle
from ray.serve.llm.ingress import OpenAiIngress
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.control.meters import DemandMeter
from orchestrator.control.status import read_status
from orchestrator.ledger import Status, UsageLedger, default_ledger_path
from orchestrator.paths import STATE_DIR_ENV
from orchestrator.policy import Policy, PolicyWatcher, TenantPolicy
from orchestrator.predict import Predictor, PredictorInputError
from orchestrator.routing.decide import decide
from orchestrator.routing.types import Decision, ProfileView
from orchestrator.routing.views import with_live
from orchestrator.serving import (
    admission,
    api_docs,
    bounds,
    client_fields,
    openai_io,
    responses_api,
    route_inputs,
)
from orchestrator.serving import failover as fo
from orchestrator.serving.accounting import (
    Accountant,
    EngineUsage,
    RequestSettlement,
    RequestTrace,
)
from orchestrator.serving.engine_config import deployment_name
from orchestrator.serving.errors import (
    OrchestratorHTTPError,
    error_response,
    from_exception,
    param_from_loc,
)
from orchestrator.serving.observe import RequestObservation
from orchestrator.serving.profile_selection import AUTO_MODEL, candidates_for_model
from orchestrator.serving.relay import Continuation, StreamFailover, relay_stream
from orchestrator.telemetry import (
    OrchestratorMetrics,
    configure_json_logging,
    configure_tracing,
    request_id_scope,
)

log = logging.getLogger("orchestrator.ingress")

APP_NAME = "orchestrator"
READINESS_REFRESH_S = 1.0
RECENT_TTFT_WEIGHT = 0.2
RECENT_TTFT_MAX_AGE_S = 60.0
ApiEndpoint = openai_io.Endpoint | Literal["responses"]


def create_fastapi_app() -> FastAPI:
    """FastAPI app whose error handlers speak OpenAI error JSON (never FastAPI's 422 shape)."""
    # no /docs or /redoc: the server answers only routes its OpenAPI document lists
    app = FastAPI(
        title="orchestrator",
        version=api_docs.ORCHESTRATOR_VERSION,
        docs_url=None,
        redoc_url=None,
    )
    api_docs.install(app)

    @app.exception_handler(OrchestratorHTTPError)
    async def _orchestrator_error(request: Request, exc: OrchestratorHTTPError) -> JSONResponse:
        return from_exception(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = param_from_loc(err.get("loc", ()))
        return error_response(400, f"invalid '{param}': {err.get('msg')}", param=param or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # keeps Starlette's headers: a 405 names the methods the path takes in `Allow`
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in ingress")
        return error_response(500, f"internal error: {type(exc).__name__}", code="internal_error")

    return app


fastapi_app = create_fastapi_app()


class OrchestratorIngress(OpenAiIngress):
    """Routes each OpenAI request to one profile deployment and relays its (streamed) answer."""

    def __init__(
        self,
        llm_deployments: dict[str, DeploymentHandle],
        model_cards: dict[str, Any],
        *,
        catalog: dict[str, Any],
        policy_path: str,
        ledger_path: str | None = None,
        state_dir: str | None = None,
        lora_paths: dict[str, str] | None = None,
    ):
        super().__init__(llm_deployments, model_cards, lora_paths=lora_paths)
        if state_dir:  # calibration and the default ledger live there (paths.state_dir)
            os.environ[STATE_DIR_ENV] = state_dir
        self._catalog = Catalog.model_validate(catalog)
        # the policy file is watched; a bad edit is reported and the last good policy stays
        self._policy = PolicyWatcher(policy_path, self._catalog).start()
        self._started_at = time.time()
        self._ready: dict[str, bool] = {p.name: False for p in self._catalog.profiles}
        self._in_flight: dict[str, int] = defaultdict(int)
        self._tenant_in_flight: dict[str, int] = defaultdict(int)
        self._health = fo.ProfileHealth()  # profiles seen failing, until healthy again
        # controller feedback (issue 13): replicas Serve runs, recent TTFT, predicted demand
        self._running: dict[str, int] = {p.name: 0 for p in self._catalog.profiles}
        self._starting: dict[str, int] = {p.name: 0 for p in self._catalog.profiles}
        self._recent_ttft: dict[str, tuple[float, float]] = {}  # profile -> (ms, at)
        self._demand = DemandMeter()
        self._controller: dict[str, Any] | None = None
        self._reserved_usd: dict[str, float] = defaultdict(float)
        self._predictor = Predictor.default()
        self._ledger = UsageLedger(ledger_path or default_ledger_path())
        self._accountant = Accountant(self._ledger, self._predictor)
        self._decisions = DecisionStore()
        self._responses = responses_api.ResponseStore()
        configure_tracing()  # from OTEL_* env vars; without them spans cost next to nothing
        # our own loggers write JSON lines with request and trace ids (Ray's stay as they are)
        configure_json_logging(logging.INFO, logger=logging.getLogger("orchestrator"))
        logging.getLogger("orchestrator").propagate = False
        self._metrics = OrchestratorMetrics()
        self._views: dict[str, ProfileView] = {}
        self._views_version: str | None = None
        self._ready_task: asyncio.Task[None] | None = None

    # ----- readiness -------------------------------------------------------------------
    async def _refresh_ready_forever(self) -> None:
        from ray import serve

        while True:
            try:
                status = await asyncio.to_thread(serve.status)
                app = status.applications.get(APP_NAME)
                if app is not None:
                    for name in self._ready:
                        dep = app.deployments.get(deployment_name(name))
                        states = dep.replica_states if dep is not None else {}
                        self._running[name] = int(states.get("RUNNING", 0))
                        self._starting[name] = int(states.get("STARTING", 0))
                        self._ready[name] = self._running[name] > 0
            except Exception:  # the controller may be restarting; keep the last view
                log.warning("could not refresh deployment readiness", exc_info=True)
            await self._probe_down_profiles()
            await asyncio.sleep(READINESS_REFRESH_S)

    async def _probe_down_profiles(self) -> None:
        """A profile marked down comes back once its deployment passes a health check."""
        for name in self._health.probe_due():
            try:
                handle = self._get_configured_serve_handle(name).options(stream=False)
                await asyncio.wait_for(handle.check_health.remote(), timeout=2.0)
            except Exception:  # still dead, or its replica is being replaced
                continue
            self._health.mark_up(name)
            log.info("profile healthy again", extra={"profile": name})

    def _profile_ready(self, name: str) -> bool:
        return self._ready.get(name, False) and not self._health.is_down(name)

    def _engine_down(self, profile: str, reason: str) -> None:
        """Take a profile out of routing at once (not after Ray's health check)."""
        if self._health.mark_down(profile, reason):
            log.warning("profile marked down", extra={"profile": profile, "reason": reason})

    def _ensure_ready_task(self) -> None:
        if self._ready_task is None or self._ready_task.done():
            self._ready_task = asyncio.get_running_loop().create_task(self._refresh_ready_forever())

    async def check_health(self) -> None:
        self._ensure_ready_task()

    # ----- endpoints -------------------------------------------------------------------
    @fastapi_app.get("/health")
    @fastapi_app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        """200 while at least one profile has a running replica, 503 otherwise."""
        self._ensure_ready_task()
        ready = {name: self._profile_ready(name) for name in self._ready}
        ok = any(ready.values())
        body = {"status": "ok" if ok else "starting", "profiles": ready}
        if self._health.down():
            body["down"] = self._health.down()
        return JSONResponse(body, status_code=200 if ok else 503)

    @fastapi_app.get("/version")
    async def version(self) -> JSONResponse:
        return JSONResponse(api_docs.version_info().model_dump())

    @fastapi_app.get("/metrics")
    async def metrics(self, request: Request) -> Response:
        self._export_gauges()
        body, content_type = self._metrics.render_prometheus(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    def _export_gauges(self) -> None:
        targets = (self._controller or {}).get("targets", {})
        for p in self._catalog.profiles:
            target = targets.get(p.name, {}).get("target", p.replicas.start)
            self._metrics.set_replicas(p.name, target, self._running.get(p.name, 0))
        if self._controller is not None:
            self._metrics.set_controller(
                self._controller.get("cost_per_hour_usd", 0.0),
                bool(self._controller.get("ceiling_binding")),
            )

    async def _refresh_controller(self) -> dict[str, Any] | None:
        """The controller's last decision (published by the planner in the Serve controller)."""
        try:
            found = await asyncio.wait_for(read_status(), timeout=2.0)
        except Exception:
            log.warning("could not read the controller status", exc_info=True)
            found = None
        if found is not None:
            self._controller = found
        return self._controller

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """Predicted demand and spend per profile, for the controller (Serve custom metrics)."""
        return self._demand.export(time.monotonic())

    @fastapi_app.get("/v1/orchestrator/status")
    async def orchestrator_status(self) -> JSONResponse:
        self._ensure_ready_task()
        policy = self._policy.current
        controller = await self._refresh_controller()
        targets = (controller or {}).get("targets", {})
        return JSONResponse(
            {
                "uptime_s": round(time.time() - self._started_at, 1),
                "profiles": {
                    p.name: {
                        "ready": self._profile_ready(p.name),
                        "in_flight": self._in_flight.get(p.name, 0),
                        "down": self._health.down().get(p.name),
                        "family": p.served_model_name,
                        "replicas_running": self._running.get(p.name, 0),
                        "replicas_starting": self._starting.get(p.name, 0),
                        "replicas_target": targets.get(p.name, {}).get("target"),
                        "reason": targets.get(p.name, {}).get("reason"),
                    }
                    for p in self._catalog.profiles
                },
                "controller": controller,
                "policy": {
                    "name": policy.spec.metadata.name if policy.spec.metadata else None,
                    **self._policy.status().model_dump(mode="json"),
                },
            }
        )

    @fastapi_app.get("/v1/models")
    async def list_models(self) -> JSONResponse:
        created = int(time.time())
        data = [
            {
                "id": AUTO_MODEL,
                "object": "model",
                "created": created,
                "owned_by": "orchestrator",
                "metadata": {
                    "kind": "router",
                    "profiles": [p.name for p in self._catalog.profiles],
                },
            }
        ]
        for family in self._catalog.families:
            members = [p for p in self._catalog.profiles if p.served_model_name == family]
            data.append(
                {
                    "id": family,
                    "object": "model",
                    "created": created,
                    "owned_by": "orchestrator",
                    "max_model_len": max(p.max_model_len for p in members),
                    "metadata": {"kind": "family", "profiles": [p.name for p in members]},
                }
            )
        for p in self._catalog.profiles:
            data.append(
                {
                    "id": p.name,
                    "object": "model",
                    "created": created,
                    "owned_by": "orchestrator",
                    "root": p.served_model_name,
                    "max_model_len": p.max_model_len,
                    "metadata": {
                        "kind": "profile",
                        "family": p.served_model_name,
                        "ready": self._profile_ready(p.name),
                    },
                }
            )
        return JSONResponse({"object": "list", "data": data})

    @fastapi_app.post("/v1/chat/completions")
    async def chat_completions(self, request: Request) -> Response:
        return await self._serve(request, "chat")

    @fastapi_app.post("/v1/completions")
    async def text_completions(self, request: Request) -> Response:
        return await self._serve(request, "completions")

    @fastapi_app.post("/v1/responses")
    async def responses(self, request: Request) -> Response:
        """OpenAI's Responses API, translated to chat (`responses_api`) and routed as chat."""
        return await self._serve(request, "responses")

    # ----- request path ----------------------------------------------------------------
    async def _serve(self, request: Request, endpoint: ApiEndpoint) -> Response:
        """Trace + metrics around the request path; `obs.close` runs once per request."""
        self._ensure_ready_task()
        request_id = _serve_request_id(request)
        obs = RequestObservation(self._metrics, request.headers, endpoint, request_id)
        try:
            with request_id_scope(request_id):
                response = await self._serve_routed(request, endpoint, request_id, obs)
        except OrchestratorHTTPError as exc:
            obs.close(exc.status)
            raise
        except Exception:
            obs.close(500)
            raise
        if not isinstance(response, StreamingResponse) and response.status_code >= 400:
            obs.close(response.status_code)
        return response

    async def _serve_routed(
        self,
        request: Request,
        endpoint: ApiEndpoint,
        request_id: str,
        obs: RequestObservation,
    ) -> Response:
        policy = self._policy.current  # one policy for the whole request, even mid-reload
        tenant = self._authenticate(request, policy)
        obs.tenant_known(tenant.name)

        # validate everything first: an invalid body is never priced, decided or recorded
        body = openai_io.parse_json_body(await request.body())
        targets = route_inputs.caller_targets(request.headers, body.pop("orchestrator", None))
        exchange: responses_api.Exchange | None = None
        if endpoint == "responses":  # from here on, a chat request like any other
            exchange = responses_api.Exchange.open(body, tenant.name, self._responses)
            body = exchange.chat_body()
            endpoint = "chat"
        openai_io.check_common_fields(body, endpoint)  # clearer messages for the common cases
        bounds.check_body_bounds(body, tenant.bounds)  # the policy's per-request bounds
        requested_model = body.get("model")
        candidates = candidates_for_model(requested_model, self._catalog)
        if endpoint == "completions" and client_fields.empty_prompt(body.get("prompt")):
            body["prompt"] = client_fields.document_start_ids(candidates[0])
        openai_io.validate_request(body, endpoint)  # vLLM's own request model: every field

        # predict -> price -> decide
        try:
            predictions = self._predictor.predict_many(body, candidates)
        except PredictorInputError as exc:
            raise OrchestratorHTTPError(400, str(exc)) from None
        first_prediction = predictions[candidates[0].name]
        bounds.check_prompt_bound(body, tenant.bounds, first_prediction.prompt_tokens)
        bounds.check_concurrency(
            tenant.name, tenant.bounds, self._tenant_in_flight.get(tenant.name, 0)
        )
        self._check_overload(policy, tenant, candidates, first_prediction.query_class)
        obs.predicted(first_prediction)
        query_class = first_prediction.query_class
        budget = await self._budget_state(tenant)
        rules = route_inputs.tenant_rules(
            tenant, query_class, budget, tenant.eligible_profiles(query_class)
        )
        decision = decide(
            route_inputs.route_request(body, first_prediction.prompt_tokens, targets),
            route_inputs.token_budget(first_prediction),
            rules,
            self._views_now(policy),
        )
        self._decisions.put(request_id, tenant.name, decision)
        obs.decided(decision)
        log.info(
            "decision",
            extra={"tenant": tenant.name, "profile": decision.profile, "action": decision.action},
        )
        headers = _decision_headers(decision)
        if decision.profile is None:
            rejection = decision.rejection
            status = rejection.status if rejection else 503
            if rejection and rejection.retry_after_s:
                headers["Retry-After"] = str(rejection.retry_after_s)
            elif status == 503:  # engines starting or down: worth a retry soon
                headers["Retry-After"] = "5"
            message = rejection.message if rejection else decision.reason
            code = rejection.code if rejection else "no_profile"
            return error_response(status, message, code=code, headers=headers)

        profile = self._catalog.profile(decision.profile)
        prediction = predictions.get(profile.name, first_prediction)
        _apply_decision(body, decision, endpoint)
        stream = bool(body.get("stream"))
        wants_usage = openai_io.client_wants_stream_usage(body)
        wants_continuous_usage = openai_io.client_wants_continuous_usage(body)
        body["model"] = profile.name
        body["request_id"] = request_id
        if stream:  # always account: usage per chunk and at the end, hidden unless asked
            body["stream_options"] = openai_io.engine_stream_options(body.get("stream_options"))
        shows_token_ids = bool(body.get("return_token_ids"))
        migratable = stream and tenant.failover.migrate_streams and fo.migratable(body)
        if migratable:  # token ids let a stream cut short continue token-exactly elsewhere
            body["return_token_ids"] = True
        # the engine request: the validated body plus the decision's own (valid) settings
        parsed = openai_io.validate_request(body, endpoint)
        if endpoint == "chat":
            parsed = _sanitize_chat_completion_request(parsed)

        prices = policy.prices[profile.name]
        trace = RequestTrace(
            request_id=request_id,
            started_at=obs.started_at,
            tenant=tenant.name,
            profile=profile.name,
            predicted_p50=prediction.p50_tokens,
            predicted_p90=prediction.p90_tokens,
            estimated_cost_usd=decision.estimate.cost_usd if decision.estimate else None,
            reserved_usd=prices.cost_usd(  # the most it can cost: every choice at max_tokens
                prediction.prompt_tokens,
                decision.max_tokens * bounds.choices(body)
                if decision.max_tokens
                else prediction.p90_tokens,
            ),
        )
        handle = self._get_configured_serve_handle(profile.name)

        def observe(status: Status, usage: EngineUsage, cost: float) -> None:
            self._observed(profile.name, trace.ttft_s if status == "ok" else None, cost)
            if status != "error":  # errors are closed by _serve with their HTTP status
                obs.close(200 if status in ("ok", "migrated") else 499, usage, cost, trace.ttft_s)

        settlement = RequestSettlement(
            self._accountant,
            trace,
            prices,
            profile=profile,
            prediction=prediction,
            release=lambda: self._end(trace),
            observe=observe,
        )
        expected_out = (
            decision.estimate.output_tokens if decision.estimate else prediction.p50_tokens
        )
        self._demand.add(profile.name, prediction.prompt_tokens, expected_out, time.monotonic())
        self._begin(trace)
        obs.engine_started()
        retried = False
        while True:
            failure: Any = None
            try:
                gen = getattr(handle, endpoint).remote(parsed, None)
                first = await gen.__anext__()
                first_item = first[0] if isinstance(first, list) and first else first
                if _is_error(first_item) and fo.engine_failed(_error_payload(first_item)):
                    failure = first_item
            except Exception as exc:
                failure = exc
            if failure is None:
                break
            # the engine failed before any output: mark its profile down at once and retry
            # once on another eligible profile (unless the tenant's policy forbids it)
            self._engine_down(profile.name, _failure_text(failure))
            retry = None
            if not retried and tenant.failover.retry:
                asked = {**body, "model": requested_model}  # not the profile it was sent to
                retry = decide(
                    route_inputs.route_request(asked, first_prediction.prompt_tokens, targets),
                    route_inputs.token_budget(first_prediction),
                    rules,
                    self._views_now(policy),
                )
            if retry is None or retry.profile is None or retry.profile == profile.name:
                await settlement.settle(EngineUsage(), "error")
                raise self._engine_failure(profile, failure) from None
            retried = True
            self._end(trace)
            profile = self._catalog.profile(retry.profile)
            prediction = predictions.get(profile.name, first_prediction)
            _apply_decision(body, retry, endpoint)
            body["model"] = profile.name
            parsed = openai_io.validate_request(body, endpoint)
            if endpoint == "chat":
                parsed = _sanitize_chat_completion_request(parsed)
            prices = policy.prices[profile.name]
            trace.profile = profile.name
            settlement.prices, settlement.profile = prices, profile
            settlement.prediction = prediction
            headers = _decision_headers(retry)
            headers["X-Orchestrator-Retried-From"] = self._catalog.profile(decision.profile).name
            self._decisions.put(request_id, tenant.name, retry)
            self._begin(trace)
            handle = self._get_configured_serve_handle(profile.name)
            log.info("retrying on another profile", extra={"profile": profile.name})
        if _is_error(first_item):
            await settlement.settle(EngineUsage(), "error")
            status, message = _error_fields(first_item)
            return error_response(status, message, headers=headers)
        if not stream:
            trace.mark_first_token()
            payload = first_item.model_dump() if hasattr(first_item, "model_dump") else first_item
            payload["model"] = requested_model or profile.served_model_name
            cost = await settlement.settle(EngineUsage.from_openai(payload.get("usage")))
            if isinstance(payload.get("usage"), dict):
                payload["usage"]["cost_usd"] = round(cost, 10)
            if exchange is not None:
                response = exchange.from_chat(payload, self._responses)
                return JSONResponse(response.model_dump(mode="json"), headers=headers)
            return JSONResponse(payload, headers=headers)
        relay = relay_stream(
            first,
            gen,
            settlement,
            trace,
            engine_model=profile.name,
            shown_model=requested_model or profile.served_model_name,
            wants_usage=wants_usage or exchange is not None,  # Responses always end with usage
            wants_continuous_usage=wants_continuous_usage and exchange is None,
            prompt_tokens=prediction.prompt_tokens,
            failover=StreamFailover(
                endpoint=endpoint,
                migratable=migratable,
                start=lambda progress, failed: self._continue_stream(
                    policy, tenant, profile, body, progress, failed, request_id
                ),
                on_failure=self._engine_down,
                show_token_ids=shows_token_ids,
            ),
        )
        if exchange is not None:
            shown = requested_model or profile.served_model_name
            relay = responses_api.ResponseStreamer(exchange, self._responses, shown).relay(relay)
        return StreamingResponse(relay, media_type="text/event-stream", headers=headers)

    async def _continue_stream(
        self,
        policy: Policy,
        tenant: TenantPolicy,
        failed_profile: Profile,
        engine_body: dict[str, Any],
        progress: fo.StreamProgress,
        failed: list[str],
        request_id: str,
    ) -> Continuation | None:
        """Start the rest of a cut stream on the least busy healthy profile of the same model
        that the tenant may use (None when there is none or it fails at once)."""
        allowed = set(tenant.all_eligible_profiles())
        targets = fo.other_profiles(
            failed_profile.served_model_name,
            failed,
            [p for p in self._catalog.profiles if p.name in allowed],
            lambda name: not self._profile_ready(name),
        )
        for target in sorted(targets, key=lambda p: self._in_flight.get(p.name, 0)):
            cont = fo.continuation_body(
                engine_body,
                progress,
                target_profile=target.name,
                max_model_len=target.max_model_len,
                request_id=f"{request_id}-migrated-{len(failed)}",
            )
            if cont is None:
                return None
            parsed = openai_io.validate_request(cont, "completions")
            handle = self._get_configured_serve_handle(target.name)
            try:
                gen = handle.completions.remote(parsed, None)
                first = await gen.__anext__()
            except Exception as exc:  # this one is down too: try the next
                self._engine_down(target.name, _failure_text(exc))
                continue
            first_item = first[0] if isinstance(first, list) and first else first
            if _is_error(first_item):
                self._engine_down(target.name, _failure_text(first_item))
                continue
            return Continuation(first, gen, target.name, policy.prices[target.name])
        return None

    def _check_overload(
        self, policy: Policy, tenant: TenantPolicy, candidates: list[Profile], query_class: str
    ) -> None:
        """429 + Retry-After when every eligible replica is saturated (see admission.py)."""
        eligible = set(tenant.eligible_profiles(query_class))  # type: ignore[arg-type]
        loads = [
            admission.ProfileLoad(
                name=p.name,
                running_replicas=(
                    max(1, self._running.get(p.name, 0)) if self._profile_ready(p.name) else 0
                ),
                max_concurrency=p.performance.max_concurrency,
                output_tokens_per_s=p.performance.output_tokens_per_s,
                in_flight=self._in_flight.get(p.name, 0),
            )
            for p in candidates
            if p.name in eligible
        ]
        admission.check_overload(
            loads,
            priority=tenant.priority,
            priorities=[t.priority for t in policy.reachable_tenants()],
        )

    # ----- routing state ---------------------------------------------------------------
    def _views_now(self, policy: Policy) -> list[ProfileView]:
        """Router views priced by the policy in force, with this moment's load."""
        if self._views_version != policy.version:
            self._views = route_inputs.priced_views(self._catalog, policy)
            self._views_version = policy.version
        now = time.monotonic()
        live = {
            p.name: route_inputs.live_state(
                self._profile_ready(p.name),
                self._in_flight.get(p.name, 0),
                self._running.get(p.name, 0),
                self._fresh_ttft(p.name, now),
                batch=p.max_num_seqs or p.performance.max_concurrency,
            )
            for p in self._catalog.profiles
        }
        return with_live(self._views.values(), live)

    def _fresh_ttft(self, profile: str, now: float) -> float | None:
        found = self._recent_ttft.get(profile)
        if found is None or now - found[1] > RECENT_TTFT_MAX_AGE_S:
            return None
        return found[0]

    def _observed(self, profile: str, ttft_s: float | None, cost_usd: float) -> None:
        """A settled request: its TTFT feeds the router's live state, its cost the spend rate."""
        now = time.monotonic()
        self._demand.spent(profile, cost_usd, now)
        if ttft_s is not None:
            ms = ttft_s * 1000.0
            prev = self._fresh_ttft(profile, now)
            ema = ms if prev is None else prev + RECENT_TTFT_WEIGHT * (ms - prev)
            self._recent_ttft[profile] = (ema, now)

    async def _budget_state(self, tenant: TenantPolicy) -> route_inputs.BudgetState:
        """Remaining budget: one ledger query for every window the tenant has a limit on."""
        limits = route_inputs.budget_limits(tenant.budgets)
        if not limits:
            return route_inputs.BudgetState(None, None)
        now = datetime.now(UTC)
        spends = await asyncio.to_thread(
            self._ledger.spend_windows, tenant.name, list(limits), now=now
        )
        spent = {w: (s.cost_usd, s.retry_after_s(now)) for w, s in spends.items()}
        return route_inputs.budget_state(
            tenant.budgets, spent, self._reserved_usd.get(tenant.name, 0.0)
        )

    def _begin(self, trace: RequestTrace) -> None:
        self._in_flight[trace.profile] += 1
        self._tenant_in_flight[trace.tenant] += 1
        self._reserved_usd[trace.tenant] += trace.reserved_usd

    def _end(self, trace: RequestTrace) -> None:
        self._in_flight[trace.profile] -= 1
        self._tenant_in_flight[trace.tenant] -= 1
        self._reserved_usd[trace.tenant] -= trace.reserved_usd

    @fastapi_app.get("/v1/orchestrator/decisions/{request_id}")
    async def get_decision(self, request_id: str, request: Request) -> JSONResponse:
        tenant = self._authenticate(request, self._policy.current)
        found = self._decisions.get(request_id)
        if found is None or (found[0] != tenant.name and self._policy.current.defines_keys):
            raise OrchestratorHTTPError(
                404, f"no decision recorded for request '{request_id}'", code="decision_not_found"
            )
        return JSONResponse(
            {"request_id": request_id, "tenant": found[0], **found[1].model_dump(mode="json")}
        )

    def _authenticate(self, request: Request, policy: Policy) -> TenantPolicy:
        """The tenant named by `Authorization: Bearer <key>`; 401 for a key the policy does
        not know (with no keys in the policy, everyone is the default tenant)."""
        header = request.headers.get("authorization") or ""
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

    def _engine_failure(self, profile: Profile, failure: Any) -> OrchestratorHTTPError:
        log.warning("profile %s failed a request: %s", profile.name, _failure_text(failure))
        return OrchestratorHTTPError(
            503,
            f"the engine for profile '{profile.name}' is unavailable: {_failure_text(failure)}",
            code="engine_unavailable",
            headers={"Retry-After": "5"},
        )


def _decision_headers(decision: Decision) -> dict[str, str]:
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


def _apply_decision(body: dict[str, Any], decision: Decision, endpoint: str) -> None:
    """Write the decision's token cap and reasoning setting into the engine request."""
    if decision.max_tokens is not None:
        body.pop("max_completion_tokens", None)
        body["max_tokens"] = decision.max_tokens
    reasoning = decision.reasoning
    if reasoning is None or endpoint != "chat":
        return
    if reasoning.chat_template_kwargs:
        body["chat_template_kwargs"] = {
            **(body.get("chat_template_kwargs") or {}),
            **dict(reasoning.chat_template_kwargs),
        }
    for key, value in reasoning.request_params.items():
        body[key] = value


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


def _serve_request_id(request: Request) -> str:
    """The id Serve's proxy gave this request (the caller's X-Request-Id if it sent one); the
    proxy also returns it as the X-Request-Id response header."""
    from ray.serve.context import _get_serve_request_context

    rid = _get_serve_request_context().request_id
    return rid or request.headers.get("x-request-id") or f"req-{uuid.uuid4().hex}"


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
