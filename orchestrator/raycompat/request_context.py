"""The request id Serve's HTTP proxy assigned to the request being handled.

Private API: `ray.serve.context._get_serve_request_context()` (Ray 2.60). Relied on: inside a
request handled through the proxy, `.request_id` is the caller's `X-Request-Id` or a fresh one
(the proxy returns the same id as the `X-Request-Id` response header); outside a request it is
an empty string.
"""

from __future__ import annotations


def serve_request_id() -> str | None:
    """The proxy's id for the current request, or None outside a Serve request."""
    from ray.serve.context import _get_serve_request_context

    return _get_serve_request_context().request_id or None
