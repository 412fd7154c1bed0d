"""OpenAI-style error responses: `{"error": {"message", "type", "param", "code"}}`.

Invariant: every failure leaving the ingress goes through `error_response`, so clients never
see a bare 500 or a traceback; `code` is always a string (`request.errors.default_code` when
the raiser gave none), `param` names the client's field or is null.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from orchestrator.request.errors import RequestError, default_code

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


# one error type for the whole request path (the request core raises it too)
OrchestratorHTTPError = RequestError


def error_body(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(
                status, "server_error" if status >= 500 else "invalid_request_error"
            ),
            "param": param,
            "code": code if code is not None else default_code(status),
        }
    }


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, message, param, code), status_code=status, headers=headers
    )


def from_exception(exc: OrchestratorHTTPError) -> JSONResponse:
    return error_response(
        exc.status, exc.message, param=exc.param, code=exc.code, headers=exc.headers
    )


def param_from_loc(loc: tuple[Any, ...] | list[Any]) -> str:
    """Dotted field name from a pydantic error location (dropping `body` and union tags)."""
    parts = [str(p) for p in loc if p not in ("body",)]
    out = ""
    for p in parts:
        if p.isdigit():
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out
