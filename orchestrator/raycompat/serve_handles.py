"""The streaming handle to one model deployment, as ray.serve.llm's ingress keeps it.

Private API: `OpenAiIngress._get_configured_serve_handle(model_id)` (Ray 2.60). Relied on: it
returns the deployment handle of `model_id` configured with `stream=True` (a LoRA id as the
multiplexed model id), the same handle for every later call with that id, and raises
FastAPI's `HTTPException` 404 for an id the ingress was not built with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def configured_handles(ingress: Any) -> Callable[[str], Any]:
    """`model_id -> streaming DeploymentHandle` of an `OpenAiIngress` (cached by Ray)."""
    return ingress._get_configured_serve_handle
