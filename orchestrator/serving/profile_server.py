"""The profile replica: ray.serve.llm's `LLMServer` plus the load figures our replica router
reads through Serve's `record_routing_stats` hook.

Invariant: `running` counts the requests this replica is serving right now (incremented when
a chat / completion stream starts, decremented when it ends for any reason), and `ttft_ms` is
an exponential moving average of time to the first streamed item, measured at the replica.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

from ray.serve.llm import LLMServer

from orchestrator.routing.affinity import ReplicaStats

TTFT_EMA_WEIGHT = 0.2


class ProfileServer(LLMServer):
    """LLMServer whose chat / completion streams are counted for the replica router."""

    _running = 0
    _ttft_ema_ms: float | None = None

    async def _tracked(self, stream: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
        self._running += 1
        started = time.perf_counter()
        first = True
        try:
            async for item in stream:
                if first:
                    first = False
                    ttft = (time.perf_counter() - started) * 1000
                    prev = self._ttft_ema_ms
                    self._ttft_ema_ms = (
                        ttft if prev is None else prev + TTFT_EMA_WEIGHT * (ttft - prev)
                    )
                yield item
        finally:
            self._running -= 1

    async def chat(self, request: Any, raw_request_info: Any = None) -> AsyncGenerator[Any, None]:
        return self._tracked(await super().chat(request, raw_request_info))

    async def completions(
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncGenerator[Any, None]:
        return self._tracked(await super().completions(request, raw_request_info))

    async def record_routing_stats(self) -> dict[str, Any]:
        stats = await super().record_routing_stats()
        ours = ReplicaStats(running=self._running, ttft_ms=self._ttft_ema_ms).to_dict()
        return {**(stats or {}), **ours}
