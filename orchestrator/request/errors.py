"""The one error type of the request core: a refusal of the request as the client sent it.

Pure (no HTTP framework): `status` is the OpenAI-style status the edge answers with (the edge,
`serving/errors.py`, turns it into the JSON error), `param` names the field as the client sent
it (None when no single field is at fault), `code` is always a string.
"""

from __future__ import annotations

# the code of an error raised without one (OpenAI's codes are strings, never the status)
DEFAULT_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    402: "insufficient_quota",
    403: "permission_denied",
    404: "not_found",
    408: "timeout",
    413: "request_too_large",
    422: "invalid_request",
    429: "rate_limit_exceeded",
    503: "service_unavailable",
}


def default_code(status: int) -> str:
    """The string code for an error raised without one."""
    return DEFAULT_CODES.get(status, "server_error" if status >= 500 else "invalid_request")


class RequestError(Exception):
    """A request refused with an HTTP-style status, raised anywhere in request handling."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code if code is not None else default_code(status)
        self.headers = headers or {}
