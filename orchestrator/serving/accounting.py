"""After a request: what it really cost, and the durable record of it.

`actual_cost_usd` and `usage_record` are pure; `Accountant` owns the I/O (ledger append,
predictor calibration) and runs it off the event loop. Invariant: one ledger row per request
id (the ledger ignores repeats), written only once the engine's usage is known, so a crash
mid-request leaves no half record.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.ledger import UsageLedger, UsageRecord
from orchestrator.policy import TokenPrices

log = logging.getLogger("orchestrator.accounting")


@dataclass(frozen=True)
class EngineUsage:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> EngineUsage:
        if not usage:
            return cls()
        prompt = int(usage.get("prompt_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
        out_details = usage.get("completion_tokens_details") or {}
        reasoning = (
            int(out_details.get("reasoning_tokens") or 0) if isinstance(out_details, dict) else 0
        )
        output = int(usage.get("completion_tokens") or 0)
        return cls(prompt, min(cached, prompt), output, min(reasoning, output))


def actual_cost_usd(prices: TokenPrices, usage: EngineUsage) -> float:
    return prices.cost_usd(usage.prompt_tokens, usage.output_tokens, usage.cached_tokens)


@dataclass
class RequestTrace:
    """What the ingress learns about one request while serving it."""

    request_id: str
    tenant: str
    profile: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    first_token_at: datetime | None = None
    predicted_p50: int | None = None
    predicted_p90: int | None = None
    estimated_cost_usd: float | None = None
    reserved_usd: float = 0.0

    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = datetime.now(UTC)

    @property
    def ttft_s(self) -> float | None:
        if self.first_token_at is None:
            return None
        return (self.first_token_at - self.started_at).total_seconds()


def usage_record(
    trace: RequestTrace, usage: EngineUsage, cost_usd: float, status: str = "ok"
) -> UsageRecord:
    finished = datetime.now(UTC)
    ttft = trace.ttft_s * 1000 if trace.ttft_s is not None else None
    return UsageRecord(
        request_id=trace.request_id,
        tenant=trace.tenant,
        profile=trace.profile,
        prompt_tokens=usage.prompt_tokens,
        cached_tokens=usage.cached_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        predicted_p50=trace.predicted_p50,
        predicted_p90=trace.predicted_p90,
        estimated_cost_usd=trace.estimated_cost_usd,
        cost_usd=max(cost_usd, 0.0),
        latency_ms=(finished - trace.started_at).total_seconds() * 1000,
        ttft_ms=ttft,
        status=status,  # type: ignore[arg-type]
        started_at=trace.started_at,
        finished_at=finished,
    )


class Accountant:
    """Writes usage records and feeds the predictor's calibration, off the event loop."""

    def __init__(self, ledger: UsageLedger, predictor: Any | None):
        self.ledger = ledger
        self.predictor = predictor

    def _write(self, record: UsageRecord, profile: Any, prediction: Any) -> None:
        self.ledger.append(record)
        if self.predictor is not None and prediction is not None and record.status == "ok":
            try:
                self.predictor.observe(
                    profile, prediction, record.output_tokens, record.reasoning_tokens
                )
            except Exception:  # calibration is best effort; the ledger row is what counts
                log.warning("predictor calibration update failed", exc_info=True)

    async def record(self, record: UsageRecord, profile: Any, prediction: Any) -> None:
        try:
            await asyncio.to_thread(self._write, record, profile, prediction)
        except Exception:
            log.exception("could not write usage record %s", record.request_id)
