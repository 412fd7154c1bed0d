"""The profile replica: ray.serve.llm's `LLMServer` plus the load figures our replica router
reads through Serve's `record_routing_stats` hook, and the controller's custom autoscaling
metrics (`record_autoscaling_stats`: streams running, TTFT/TPOT percentiles of recent streams).

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
from orchestrator.scheduling.replicas import pending_prefill, remaining_work, request_work
from orchestrator.signals.meters import LatencyMeter

TTFT_EMA_WEIGHT = 0.2


class ProfileServer(LLMServer):
    """LLMServer whose chat / completion streams are counted for the replica router."""

    _running = 0
    _ttft_ema_ms: float | None = None
    _latency: LatencyMeter | None = None
    _work: dict[int, list[int]] | None = None  # live stream -> [prompt, predicted, generated]

    def _meter(self) -> LatencyMeter:
        if self._latency is None:
            self._latency = LatencyMeter()
        return self._latency

    def outstanding_tokens(self) -> float:
        """Predicted work still ahead of this replica's streams (those that carry a prediction)."""
        return sum(remaining_work(*w) for w in (self._work or {}).values())

    def prefill_tokens(self) -> float:
        """Prompt tokens of this replica's streams still before their first token."""
        return float(sum(pending_prefill(w[0], w[2]) for w in (self._work or {}).values()))

    async def _tracked(
        self, stream: AsyncGenerator[Any, None], request: Any = None
    ) -> AsyncGenerator[Any, None]:
        self._running += 1
        predicted = request_work(request)
        work = None
        if predicted is not None:
            if self._work is None:
                self._work = {}
            work = self._work[id(stream)] = [*predicted, 0]
        started = time.perf_counter()
        first_at = last_at = 0.0
        items = 0
        try:
            async for item in stream:
                last_at = time.perf_counter()
                items += 1
                if work is not None:
                    work[2] = items
                if items == 1:
                    first_at = last_at
                    ttft = (last_at - started) * 1000
                    prev = self._ttft_ema_ms
                    self._ttft_ema_ms = (
                        ttft if prev is None else prev + TTFT_EMA_WEIGHT * (ttft - prev)
                    )
                    self._meter().first_token(ttft, time.monotonic())
                yield item
        finally:
            self._running -= 1
            if work is not None:
                self._work.pop(id(stream), None)
            self._meter().stream_done(first_at, last_at, items, time.monotonic())

    async def chat(self, request: Any, raw_request_info: Any = None) -> AsyncGenerator[Any, None]:
        return self._tracked(await super().chat(request, raw_request_info), request)

    async def completions(
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncGenerator[Any, None]:
        return self._tracked(await super().completions(request, raw_request_info), request)

    async def record_routing_stats(self) -> dict[str, Any]:
        stats = await super().record_routing_stats()
        ours = ReplicaStats(
            running=self._running,
            ttft_ms=self._ttft_ema_ms,
            outstanding_tokens=self.outstanding_tokens(),
            prefill_tokens=self.prefill_tokens(),
        ).to_dict()
        return {**(stats or {}), **ours}

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """Custom metrics for the controller (orchestrator.control.serve_policy)."""
        return {"running": float(self._running), **self._meter().export(time.monotonic())}
