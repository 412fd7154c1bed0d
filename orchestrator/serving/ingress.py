"""The OpenAI-compatible ingress deployment: validate, choose a profile, stream from its engine.

Built on ray.serve.llm's `OpenAiIngress` (its profile handles, model cards and handle
configuration); the endpoints are our own because the profile is chosen per request from the
model family (not looked up by exact model id) and every response carries the decision.

Invariants: every response (success or error) carries `X-Request-Id` (set by Serve's proxy,
the id we log and pass to the engine); no exception escapes as
a bare 500 (see `errors.py`); a profile whose deployment is not HEALTHY is never chosen.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray.serve.handle import DeploymentHandle
from ray.serve.llm.ingress import OpenAiIngress
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.catalog.schema import Catalog, Profile
from orchestrator.policy import PolicyWatcher, TenantPolicy
from orchestrator.serving import openai_io
from orchestrator.serving.engine_config import deployment_name
from orchestrator.serving.errors import (
    OrchestratorHTTPError,
    error_response,
    from_exception,
    param_from_loc,
)
from orchestrator.serving.profile_selection import (
    AUTO_MODEL,
    candidates_for_model,
    least_loaded,
)

log = logging.getLogger("orchestrator.ingress")

APP_NAME = "orchestrator"
READINESS_REFRESH_S = 1.0


def create_fastapi_app() -> FastAPI:
    """FastAPI app whose error handlers speak OpenAI error JSON (never FastAPI's 422 shape)."""
    app = FastAPI(title="orchestrator", version="0.1.0")

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
        return error_response(exc.status_code, str(exc.detail))

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
        lora_paths: dict[str, str] | None = None,
    ):
        super().__init__(llm_deployments, model_cards, lora_paths=lora_paths)
        self._catalog = Catalog.model_validate(catalog)
        # the policy file is watched; a bad edit is reported and the last good policy stays
        self._policy = PolicyWatcher(policy_path, self._catalog).start()
        self._started_at = time.time()
        self._ready: dict[str, bool] = {p.name: False for p in self._catalog.profiles}
        self._in_flight: dict[str, int] = defaultdict(int)
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
                        running = dep is not None and dep.replica_states.get("RUNNING", 0) > 0
                        self._ready[name] = bool(running)
            except Exception:  # the controller may be restarting; keep the last view
                log.warning("could not refresh deployment readiness", exc_info=True)
            await asyncio.sleep(READINESS_REFRESH_S)

    def _ensure_ready_task(self) -> None:
        if self._ready_task is None or self._ready_task.done():
            self._ready_task = asyncio.get_running_loop().create_task(self._refresh_ready_forever())

    async def check_health(self) -> None:
        self._ensure_ready_task()

    # ----- endpoints -------------------------------------------------------------------
    @fastapi_app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        self._ensure_ready_task()
        ready = dict(self._ready)
        ok = any(ready.values())
        body = {"status": "ok" if ok else "starting", "profiles": ready}
        return JSONResponse(body, status_code=200 if ok else 503)

    @fastapi_app.get("/v1/orchestrator/status")
    async def orchestrator_status(self) -> JSONResponse:
        self._ensure_ready_task()
        policy = self._policy.current
        return JSONResponse(
            {
                "uptime_s": round(time.time() - self._started_at, 1),
                "profiles": {
                    p.name: {
                        "ready": self._ready.get(p.name, False),
                        "in_flight": self._in_flight.get(p.name, 0),
                        "family": p.served_model_name,
                    }
                    for p in self._catalog.profiles
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
                        "ready": self._ready.get(p.name, False),
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

    # ----- request path ----------------------------------------------------------------
    def _choose_profile(self, model: str | None) -> Profile:
        candidates = candidates_for_model(model, self._catalog)
        return least_loaded(candidates, self._ready, self._in_flight)

    async def _serve(self, request: Request, endpoint: openai_io.Endpoint) -> Response:
        self._ensure_ready_task()
        request_id = _serve_request_id(request)
        tenant = self._authenticate(request)
        body = openai_io.parse_json_body(await request.body())
        body.pop("orchestrator", None)  # caller targets: consumed by the router
        openai_io.check_common_fields(body, endpoint)
        requested_model = body.get("model")
        profile = self._choose_profile(requested_model)

        stream = bool(body.get("stream"))
        wants_usage = openai_io.client_wants_stream_usage(body)
        body["model"] = profile.name
        body["request_id"] = request_id
        if stream:  # always account: ask the engine for usage, hide it unless asked
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        parsed = openai_io.validate_request(body, endpoint)
        if endpoint == "chat":
            from ray.llm._internal.serve.core.ingress.utils import (
                _sanitize_chat_completion_request,
            )

            parsed = _sanitize_chat_completion_request(parsed)

        headers = {"X-Orchestrator-Profile": profile.name}
        handle = self._get_configured_serve_handle(profile.name)
        self._in_flight[profile.name] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._in_flight[profile.name] -= 1

        try:
            gen = getattr(handle, endpoint).remote(parsed, None)
            first = await gen.__anext__()
        except Exception as exc:
            release()
            raise self._engine_failure(profile, exc) from None
        first_item = first[0] if isinstance(first, list) and first else first
        if _is_error(first_item):
            release()
            status, message = _error_fields(first_item)
            return error_response(status, message, headers=headers)
        if not stream:
            release()
            payload = first_item.model_dump() if hasattr(first_item, "model_dump") else first_item
            payload["model"] = requested_model or profile.served_model_name
            return JSONResponse(payload, headers=headers)
        relay = self._relay_stream(first, gen, wants_usage, release, profile, requested_model)
        return StreamingResponse(relay, media_type="text/event-stream", headers=headers)

    def _authenticate(self, request: Request) -> TenantPolicy:
        """The tenant named by `Authorization: Bearer <key>`; 401 for a key the policy does
        not know (with no keys in the policy, everyone is the default tenant)."""
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        key = token.strip() if scheme.lower() == "bearer" else None
        tenant = self._policy.current.resolve_tenant(key or None)
        if tenant is None:
            raise OrchestratorHTTPError(
                401,
                "Incorrect API key provided."
                if key
                else "Missing API key: send Authorization: Bearer <key>.",
                code="invalid_api_key",
            )
        return tenant

    async def _relay_stream(
        self,
        first: Any,
        gen: Any,
        wants_usage: bool,
        release: Any,
        profile: Profile,
        requested_model: str | None,
    ) -> AsyncIterator[str]:
        """Relay engine SSE events; hide the usage-only chunk unless the client asked for it."""
        shown_model = f'"model":"{requested_model or profile.served_model_name}"'
        engine_model = f'"model":"{profile.name}"'
        done_sent = False
        try:
            pending: list[Any] = [first]
            while True:
                for packet in pending:
                    for event in _events(packet):
                        if event.startswith("data: [DONE]"):
                            done_sent = True
                            yield event
                            continue
                        usage = openai_io.usage_from_sse(event)
                        if usage is not None and '"choices":[]' in event and not wants_usage:
                            continue
                        yield event.replace(engine_model, shown_model, 1)
                try:
                    pending = [await gen.__anext__()]
                except StopAsyncIteration:
                    break
            if not done_sent:
                yield "data: [DONE]\n\n"
        finally:
            release()

    def _engine_failure(self, profile: Profile, exc: Exception) -> OrchestratorHTTPError:
        log.warning("profile %s failed a request: %r", profile.name, exc)
        return OrchestratorHTTPError(
            503,
            f"the engine for profile '{profile.name}' is unavailable: {type(exc).__name__}",
            code="engine_unavailable",
            headers={"Retry-After": "5"},
        )


def _serve_request_id(request: Request) -> str:
    """The id Serve's proxy gave this request (the caller's X-Request-Id if it sent one); the
    proxy also returns it as the X-Request-Id response header."""
    from ray.serve.context import _get_serve_request_context

    rid = _get_serve_request_context().request_id
    return rid or request.headers.get("x-request-id") or f"req-{uuid.uuid4().hex}"


def _events(packet: Any) -> list[str]:
    if isinstance(packet, list):
        out: list[str] = []
        for item in packet:
            out.extend(_events(item))
        return out
    if isinstance(packet, str):
        return openai_io.split_sse(packet)
    if hasattr(packet, "model_dump_json"):
        return [f"data: {packet.model_dump_json()}\n\n"]
    return [f"data: {packet}\n\n"]


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
