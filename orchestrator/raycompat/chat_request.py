"""Make a validated chat request picklable before it is sent to a profile deployment.

Private API: `ray.llm._internal.serve.core.ingress.utils._sanitize_chat_completion_request`
(Ray 2.60). Relied on: it returns the same request with every message `content` that pydantic
stored as a lazy iterator (the `Iterable[ContentPart]` arm) turned into a list, so the request
survives pickling to the engine's replica; string contents are left as they are.
"""

from __future__ import annotations

from typing import Any


def sanitize_chat_request(request: Any) -> Any:
    """The chat request with lazily validated message parts materialized (picklable)."""
    from ray.llm._internal.serve.core.ingress.utils import _sanitize_chat_completion_request

    return _sanitize_chat_completion_request(request)
