"""The OpenAPI document of the ingress: real request and response bodies, errors, media types.

The request handlers read raw bodies (so that every validation failure is our OpenAI-style 400,
never FastAPI's 422), so FastAPI alone sees no body and no response shape. This module adds,
per operation: the request body (vLLM's own request models, the ones `openai_io` validates
with, plus our `orchestrator` extension), the response bodies and media types, the response
headers, and the OpenAI error schema for every error status the route can return.

Invariants:
- `build_openapi(strict=True)` (the tests) fails on a route `api_operations.operations()` does
  not describe; the served document never fails, it lists such a route with FastAPI's untyped
  entry (and logs it), so nothing is hidden;
- every error status an operation lists uses `ErrorResponse` (`errors.error_body`'s shape),
  except the health probes, whose 503 body is their own status object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from orchestrator.serving.api_bodies import ErrorResponse, OrchestratorOptions
from orchestrator.serving.api_operations import (
    REF,
    ROUTED_HEADERS,
    Operation,
    operations,
    schema_ref,
)

log = logging.getLogger("orchestrator.ingress")
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


def _models_in(ops: Iterable[Operation]) -> list[type[BaseModel]]:
    found: dict[type[BaseModel], None] = {ErrorResponse: None, OrchestratorOptions: None}
    for op in ops:
        for value in (*op.ok.values(), op.request, op.error_body):
            if isinstance(value, type) and issubclass(value, BaseModel):
                found[value] = None
    return list(found)


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
            body["properties"]["orchestrator"] = schema_ref(OrchestratorOptions)
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
            "content": {"application/json": {"schema": schema_ref(op.request)}},
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
        name: {"description": ROUTED_HEADERS[name], "schema": {"type": "string"}}
        for name in op.headers
    }
    ok: dict[str, Any] = {
        "description": "OK",
        "content": {media: {"schema": schema_ref(s)} for media, s in op.ok.items()},
    }
    if headers:
        ok["headers"] = headers
    responses: dict[str, Any] = {"200": ok}
    error_schema = schema_ref(op.error_body or ErrorResponse)
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
