"""The batch runner's view of the ingress: run a line through the executor, read the load.

Kept apart from `ingress.py` so the Serve class only wires objects together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Protocol

from fastapi.responses import Response

from orchestrator.batch.pacing import Yield, quiet_slots
from orchestrator.batch.runner import Capacity, LineResult
from orchestrator.policy import Policy
from orchestrator.routing.types import ProfileView

ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions",
             "/v1/responses": "responses"}  # fmt: skip


class LineExecutor(Protocol):
    """What a batch line needs of the request executor."""

    async def serve_line(
        self,
        tenant: str,
        body: dict[str, Any],
        endpoint: str,
        request_id: str,
        *,
        price_factor: float,
    ) -> Response: ...


class ExecutorLines:
    """`LineRunner` over the request executor: a line is a non-streamed request of its
    tenant, charged at the tenant's `batch.price_factor` of the interactive price."""

    def __init__(self, executor: LineExecutor, policy: Any) -> None:
        self.executor = executor
        self.policy = policy  # a PolicyWatcher (its `current` is the policy in force)

    async def __call__(
        self, tenant: str, endpoint: str, body: dict[str, Any], request_id: str
    ) -> LineResult:
        policy: Policy = self.policy.current
        factor = policy.tenant(tenant).batch.price_factor or 1.0
        response = await self.executor.serve_line(
            tenant, {**body, "stream": False}, ENDPOINTS[endpoint], request_id,
            price_factor=factor,
        )  # fmt: skip
        try:
            answer = json.loads(bytes(response.body))
        except (ValueError, AttributeError):
            answer = {"error": {"message": "unreadable answer", "code": "internal_error"}}
        usage = answer.get("usage") if isinstance(answer, dict) else None
        cost = float(usage.get("cost_usd") or 0.0) if isinstance(usage, dict) else 0.0
        return LineResult(response.status_code, answer, cost)


def tenant_line_cap(policy: Any) -> Callable[[str], int]:
    """A tenant's `batch.max_concurrent_lines` under the policy in force (`policy`: a
    PolicyWatcher), read at each call so a hot reload takes effect at the next tick."""

    def cap(tenant: str) -> int:
        return policy.current.tenant(tenant).batch.max_concurrent_lines or 1

    return cap


def tenant_yield_s(policy: Any) -> Callable[[str], float]:
    """A tenant's `batch.yield_to_interactive_s` under the policy in force (`policy`: a
    PolicyWatcher), read at each call like `tenant_line_cap`."""

    def yield_s(tenant: str) -> float:
        value = policy.current.tenant(tenant).batch.yield_to_interactive_s
        return float(value or 0.0)

    return yield_s


def capacity_of(
    views: list[ProfileView], interactive_idle_s: Callable[[str], float] | None = None
) -> Capacity:
    """Interactive load on the healthy profiles: the share of their request slots (catalog
    max_concurrency x running replicas) in use, and the *quiet* slots left (`quiet_slots`: a
    batch line there keeps interactive latency within the tolerance of idle). Profiles with one
    quiet slot (CPU engines) also report how long they have had no interactive request
    (`interactive_idle_s(profile)`, the load book's; the shortest of them)."""
    slots = quiet = busy = 0
    idle: float | None = None
    for v in views:
        if not v.live.healthy or v.live.replicas_running <= 0:
            continue
        running = v.live.replicas_running
        per_replica = quiet_slots(v.performance)
        slots += v.performance.max_concurrency * running
        quiet += per_replica * running
        busy += v.live.requests_in_flight + v.live.requests_queued
        if per_replica == 1 and interactive_idle_s is not None:
            idle = min(math.inf if idle is None else idle, interactive_idle_s(v.name))
    exclusive = None if idle is None else Yield(idle, max(1, quiet))
    if slots <= 0:
        return Capacity(1.0, 0, exclusive)
    return Capacity(min(1.0, busy / slots), max(0, quiet - busy), exclusive)
