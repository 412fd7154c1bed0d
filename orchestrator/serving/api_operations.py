"""What each route of the ingress answers, for its OpenAPI entry: one `Operation` per
(method, path).

Invariant: `operations()` describes every (method, path) the ingress app routes;
`api_docs.build_openapi(strict=True)` (the tests) fails on a route it does not describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from orchestrator.serving.api_bodies import (
    DecisionRecord,
    HealthStatus,
    ModelList,
    OrchestratorStatus,
    VersionInfo,
)

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TEXT = "application/openmetrics-text; version=1.0.0; charset=utf-8"
REF = "#/components/schemas/{model}"


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


ROUTED_ERRORS = (400, 401, 402, 404, 413, 429, 503)
ROUTED_HEADERS = {
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
        "errors": ROUTED_ERRORS,
        "headers": tuple(ROUTED_HEADERS),
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
                 "data": {"type": "array", "items": schema_ref(FileObject)}}}  # fmt: skip
    batch_list = {"type": "object", "properties": {"object": {"type": "string"},
                  "data": {"type": "array", "items": schema_ref(BatchObject)}}}  # fmt: skip
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


def schema_ref(value: Any) -> dict[str, Any]:
    """A `$ref` to a model's component schema, or a copy of a raw schema."""
    if isinstance(value, type) and issubclass(value, BaseModel):
        return {"$ref": REF.format(model=value.__name__)}
    return dict(value)
