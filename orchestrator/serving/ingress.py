"""The OpenAI-compatible ingress deployment: the Serve edge of the request path.

The request path itself is `executor.RequestExecutor` (read, predict in a worker thread,
`plan.plan`, send, relay, settle); this class wires it to Ray Serve: profile handles,
readiness from Serve's replica states (`raycompat.replica_states`), the policy watcher, the
proxy's request id, and the FastAPI routes. Built on ray.serve.llm's `OpenAiIngress` (its
profile handles, model cards and handle configuration); the endpoints are our own because the profile is chosen per request from the
model family (not looked up by exact model id) and every response carries the decision.

Invariants:
- every response (success or error) carries `X-Request-Id` exactly once: Serve's proxy sets it
  (the caller's id, or a new one) and the ingress never does (the proxy appends its own to
  whatever the app sends, so an app-set one would be sent twice); it is the id we log, store
  decisions under and pass to the engine;
- a body is validated completely (JSON, our field checks, vLLM's own request model) before
  anything is predicted, priced, decided, reserved or recorded (see `executor.py`);
- no exception escapes as a bare 500 (see `errors.py`); a profile seen failing, or failed or
  unplaceable with no replica running, is never chosen (one at zero is closed: live.py);
- every routed request is settled exactly once (`RequestSettlement`), streams cut short
  included (charged for the tokens they carried; see `relay.py`);
- what a request needs beyond its own replica lives in the ledger's database (usage rows,
  budget holds, decisions, stored Responses conversations), so any number of ingress replicas
  share it on PostgreSQL; every routed answer, decision look-up and health check names the
  replica that served it in `X-Orchestrator-Replica`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from ray.serve.handle import DeploymentHandle
from ray.serve.llm.ingress import OpenAiIngress
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from orchestrator.batch.runner import BatchRunner
from orchestrator.batch.store import BatchStore
from orchestrator.catalog.schema import Catalog
from orchestrator.cluster.monitor import PlacementMonitor
from orchestrator.control.status import read_status
from orchestrator.engines.config import deployment_name
from orchestrator.policy import PolicyWatcher
from orchestrator.predict import Predictor
from orchestrator.raycompat.replica_states import replica_states
from orchestrator.raycompat.request_context import serve_request_id
from orchestrator.raycompat.serve_handles import configured_handles
from orchestrator.request.candidates import AUTO_MODEL
from orchestrator.serving import api_bodies, api_docs, health_report, openai_io
from orchestrator.serving.auth import authenticate
from orchestrator.serving.batch_api import BatchApi
from orchestrator.serving.batch_wiring import (
    ExecutorLines,
    capacity_of,
    tenant_line_cap,
    tenant_yield_s,
)
from orchestrator.serving.errors import (
    OrchestratorHTTPError,
    error_response,
    from_exception,
    param_from_loc,
)
from orchestrator.serving.executor import ApiEndpoint, RequestExecutor
from orchestrator.serving.heap import StartupHeap
from orchestrator.serving.storage_target import open_shared_state, replica_name, resolve_target
from orchestrator.telemetry import OrchestratorMetrics, configure_json_logging, configure_tracing

log = logging.getLogger("orchestrator.ingress")

APP_NAME = "orchestrator"
READINESS_REFRESH_S = 1.0
RESERVATION_EXPIRY_S = 30.0
REPLICA_HEADER = "X-Orchestrator-Replica"
BATCH_LEASE_S = 30.0  # a dead replica's batch lines run elsewhere after this (renewed at 1/3)


def create_fastapi_app() -> FastAPI:
    """FastAPI app whose error handlers speak OpenAI error JSON (never FastAPI's 422 shape)."""
    # no /docs or /redoc: the server answers only routes its OpenAPI document lists
    app = FastAPI(
        title="orchestrator",
        version=api_bodies.ORCHESTRATOR_VERSION,
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
        # keeps Starlette's headers; a 405's `Allow` names every method the path takes (Starlette
        # names only the first matching route's, and a path may have one route per method)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(app, request.scope))
        return error_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in ingress")
        return error_response(500, f"internal error: {type(exc).__name__}", code="internal_error")

    return app


def allowed_methods(app: FastAPI, scope: Any) -> list[str]:
    """Every method the app routes for the request's path, in Starlette's order."""
    seen: dict[str, None] = {}
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match != Match.NONE:
            seen.update(dict.fromkeys(getattr(route, "methods", None) or ()))
    return list(seen)


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
        ledger: str | None = None,
        state_dir: str | None = None,
        lora_paths: dict[str, str] | None = None,
    ):
        super().__init__(llm_deployments, model_cards, lora_paths=lora_paths)
        self._catalog = Catalog.model_validate(catalog)
        # the policy file is watched; a bad edit is reported and the last good policy stays
        self._policy = PolicyWatcher(policy_path, self._catalog).start()
        self._started_at = time.time()
        names = [p.name for p in self._catalog.profiles]
        # replicas Serve runs and starts; deployments failed or unplaceable with none running
        self._running, self._starting = dict.fromkeys(names, 0), dict.fromkeys(names, 0)
        self._ready, self._failed = dict.fromkeys(names, False), dict.fromkeys(names, False)
        self._controller: dict[str, Any] | None = None
        configure_tracing()  # from OTEL_* env vars; without them spans cost next to nothing
        # our own loggers write JSON lines with request and trace ids (Ray's stay as they are)
        configure_json_logging(logging.INFO, logger=logging.getLogger("orchestrator"))
        logging.getLogger("orchestrator").propagate = False
        self._metrics = OrchestratorMetrics()
        shared = open_shared_state(resolve_target(ledger, state_dir=state_dir))
        self._placement = PlacementMonitor(self._catalog, APP_NAME)
        self._executor = RequestExecutor(
            catalog=self._catalog,
            policy_source=self._policy,
            predictor=Predictor.default(state_dir),  # its calibration lives there
            ledger=shared.ledger,
            metrics=self._metrics,
            handles=configured_handles(self),
            ready=self._ready,
            running=self._running,
            starting=self._starting,
            failed=self._failed,
            placement_note=self._placement.explain,
            decisions=shared.decisions,
            responses=shared.responses,
        )
        self._replica = replica_name()
        self._next_expiry = 0.0
        self._ready_task: asyncio.Task[None] | None = None
        # OpenAI Batch API: jobs in the shared database, run by every replica's runner
        batches = BatchStore(shared.ledger.db)
        self._batch_runner = BatchRunner(
            batches,
            ExecutorLines(self._executor, self._policy),
            owner=self._replica,
            tenant_cap=tenant_line_cap(self._policy),
            capacity=lambda: capacity_of(
                self._executor.views_now(self._policy.current),
                self._executor.load.interactive_idle_s,
            ),
            tenant_yield_s=tenant_yield_s(self._policy),
            lease_s=BATCH_LEASE_S,
        )
        self._batches = BatchApi(
            batches,
            self._catalog,
            lambda headers: authenticate(headers, self._policy.current),
            paces=lambda: self._batch_runner.last_paces,
        )
        self._batch_task: asyncio.Task[None] | None = None
        # what is alive now lives as long as the replica: out of the collector's full walks
        self._heap = StartupHeap()
        self._heap.freeze()

    # ----- readiness -------------------------------------------------------------------
    async def _refresh_ready_forever(self) -> None:
        while True:
            try:
                # not serve.status(): see raycompat.replica_states (it stalled the relays)
                apps = await asyncio.to_thread(replica_states, APP_NAME)
                if apps is not None:
                    for name in self._ready:
                        states = apps.get(deployment_name(name), {})
                        self._running[name] = int(states.get("RUNNING", 0))
                        self._starting[name] = int(states.get("STARTING", 0))
                        # a replica on a node that died is not ready even before Serve notices
                        off = self._placement.unplaceable(name)
                        self._ready[name] = self._running[name] > 0 and not off
                        self._failed[name] = off or (not self._running[name] and "FAILED" in states)
                await self._placement.refresh()
            except Exception:  # the controller may be restarting; keep the last view
                log.warning("could not refresh deployment readiness", exc_info=True)
            await self._executor.status.probe()
            await self._expire_reservations()
            await asyncio.sleep(READINESS_REFRESH_S)

    async def _expire_reservations(self) -> None:
        """Every RESERVATION_EXPIRY_S, renew the holds of this replica's running requests and
        drop budget holds whose replica died (any replica may)."""
        now = time.monotonic()
        if now < self._next_expiry:
            return
        self._next_expiry = now + RESERVATION_EXPIRY_S
        try:
            await self._executor.budget.renew()
            await self._executor.budget.expire()
        except Exception:  # the database may be briefly away; the next round retries
            log.warning("could not renew or expire budget reservations", exc_info=True)

    def _ensure_ready_task(self) -> None:
        loop = asyncio.get_running_loop()
        if self._ready_task is None or self._ready_task.done():
            self._ready_task = loop.create_task(self._refresh_ready_forever())
        if self._batch_task is None or self._batch_task.done():
            self._batch_task = loop.create_task(self._batch_runner.run_forever())

    async def check_health(self) -> None:
        self._ensure_ready_task()

    # ----- endpoints -------------------------------------------------------------------
    @fastapi_app.get("/health")
    @fastapi_app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        """200 while the ingress can serve (`profile_status.can_serve`), else 503."""
        self._ensure_ready_task()
        body, ok = health_report.health(self._executor, self._ready)
        headers = {REPLICA_HEADER: self._replica}
        return JSONResponse(body, status_code=200 if ok else 503, headers=headers)

    @fastapi_app.get("/version")
    async def version(self) -> JSONResponse:
        return JSONResponse(api_bodies.version_info().model_dump())

    @fastapi_app.get("/metrics")
    async def metrics(self, request: Request) -> Response:
        self._export_gauges()
        await self._executor.budget.export(self._executor.policy_source.current)
        await self._export_batches()
        body, content_type = self._metrics.render_prometheus(request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    def _export_gauges(self) -> None:
        targets = (self._controller or {}).get("targets", {})
        for p in self._catalog.profiles:
            target = targets.get(p.name, {}).get("target", p.replicas.start)
            self._metrics.set_replicas(p.name, target, self._running.get(p.name, 0))
        for profile, queue in self._executor.ingress_queue.snapshot().items():
            for tenant, row in queue["tenants"].items():
                self._metrics.set_queue_length(
                    profile, tenant, int(row["priority"]), int(row["queued"])
                )
        if self._controller is not None:
            unserved = self._controller.get("unserved_share") or {}
            self._metrics.set_controller(
                self._controller.get("cost_per_hour_usd", 0.0),
                bool(self._controller.get("ceiling_binding")),
                {f: float(unserved.get(f, 0.0)) for f in self._catalog.families},
            )

    async def _batch_summary(self) -> dict[str, Any]:
        summary = await asyncio.to_thread(self._batch_runner.store.summary)
        finishes = [p.predicted_finish for p in self._batch_runner.last_paces.values()]
        summary["predicted_finish_at"] = int(max(finishes)) if finishes else None
        return summary

    async def _export_batches(self) -> None:
        try:
            summary = await self._batch_summary()
        except Exception:  # the database may be briefly away; the gauges keep their values
            log.warning("could not read the batch summary", exc_info=True)
            return
        finish = summary["predicted_finish_at"]
        self._metrics.set_batches(
            summary["jobs"], summary["active_lines"], (finish - time.time()) if finish else 0.0
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
        return self._executor.demand.export(time.monotonic())

    @fastapi_app.get("/v1/orchestrator/status")
    async def orchestrator_status(self) -> JSONResponse:
        self._ensure_ready_task()
        policy = self._policy.current
        controller = await self._refresh_controller()
        targets = (controller or {}).get("targets", {})
        replicas = (self._running, self._starting)
        return JSONResponse(
            {
                "uptime_s": round(time.time() - self._started_at, 1),
                "profiles": health_report.profile_rows(
                    self._executor, self._catalog, self._placement.report, replicas, targets
                ),
                "controller": controller,
                "batches": await self._batch_summary(),
                "queues": self._executor.ingress_queue.snapshot(),
                "slo_attainment": {
                    tenant: a.as_dict()
                    for tenant, a in self._metrics.attainment.snapshot(time.monotonic()).items()
                },
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
                        "ready": self._executor.profile_ready(p.name),
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

    # ----- request path (the executor runs it) ------------------------------------------
    async def _serve(self, request: Request, endpoint: ApiEndpoint) -> Response:
        self._ensure_ready_task()
        request_id = serve_request_id() or request.headers.get("x-request-id") or _new_id()
        body = await request.body()
        response = await self._executor.serve(request.headers, body, endpoint, request_id)
        response.headers[REPLICA_HEADER] = self._replica
        self._heap.request_done()
        return response

    # ----- Files and Batches API (batch_api.py) -----------------------------------------
    @fastapi_app.post("/v1/files")
    async def upload_file(self, request: Request) -> JSONResponse:
        self._ensure_ready_task()
        try:
            form = await request.form()
        except Exception as exc:  # not multipart, or cut short
            raise OrchestratorHTTPError(
                400, f"send the file as multipart/form-data ({exc})", param="file",
                code="invalid_file",
            ) from None  # fmt: skip
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise OrchestratorHTTPError(400, "'file' is required", param="file", code="missing")
        content = await upload.read()
        found = await self._batches.upload(
            request.headers, form.get("purpose"), upload.filename, content
        )
        return JSONResponse(found)

    @fastapi_app.get("/v1/files")
    async def list_files(self, request: Request, purpose: str | None = None) -> JSONResponse:
        return JSONResponse(await self._batches.files(request.headers, purpose))

    @fastapi_app.get("/v1/files/{file_id}")
    async def get_file(self, file_id: str, request: Request) -> JSONResponse:
        return JSONResponse(await self._batches.file(request.headers, file_id))

    @fastapi_app.delete("/v1/files/{file_id}")
    async def delete_file(self, file_id: str, request: Request) -> JSONResponse:
        return JSONResponse(await self._batches.delete_file(request.headers, file_id))

    @fastapi_app.get("/v1/files/{file_id}/content")
    async def file_content(self, file_id: str, request: Request) -> Response:
        content = await self._batches.file_content(request.headers, file_id)
        return Response(content, media_type="application/jsonl")

    @fastapi_app.post("/v1/batches")
    async def create_batch(self, request: Request) -> JSONResponse:
        self._ensure_ready_task()
        body = openai_io.parse_json_body(await request.body())
        return JSONResponse(await self._batches.create(request.headers, body))

    @fastapi_app.get("/v1/batches")
    async def list_batches(
        self, request: Request, after: str | None = None, limit: int = 20
    ) -> JSONResponse:
        return JSONResponse(await self._batches.list(request.headers, after, limit))

    @fastapi_app.get("/v1/batches/{batch_id}")
    async def get_batch(self, batch_id: str, request: Request) -> JSONResponse:
        return JSONResponse(await self._batches.get(request.headers, batch_id))

    @fastapi_app.post("/v1/batches/{batch_id}/cancel")
    async def cancel_batch(self, batch_id: str, request: Request) -> JSONResponse:
        return JSONResponse(await self._batches.cancel(request.headers, batch_id))

    @fastapi_app.get("/v1/orchestrator/decisions/{request_id}")
    async def get_decision(self, request_id: str, request: Request) -> JSONResponse:
        found = await self._executor.decision_for(request.headers, request_id)
        return JSONResponse(found, headers={REPLICA_HEADER: self._replica})


def _new_id() -> str:
    return f"req-{uuid.uuid4().hex}"
