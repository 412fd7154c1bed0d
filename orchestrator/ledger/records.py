"""What the ledger stores and what it answers (pydantic, frozen, extra=forbid)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Status = Literal["ok", "migrated", "error", "cancelled", "rejected"]
Window = Literal["hour", "day", "month"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UsageRecord(_Frozen):
    """One finished request. `request_id` is the idempotency key: the first write wins."""

    request_id: str = Field(min_length=1, max_length=200)
    tenant: str = Field(min_length=1)
    profile: str | None = None
    prompt_tokens: int = Field(0, ge=0)
    cached_tokens: int = Field(0, ge=0, description="prompt tokens served from the prefix cache")
    output_tokens: int = Field(0, ge=0, description="all generated tokens, reasoning included")
    reasoning_tokens: int = Field(0, ge=0)
    predicted_p50: int | None = Field(None, ge=0)
    predicted_p90: int | None = Field(None, ge=0)
    estimated_cost_usd: float | None = Field(None, ge=0)
    cost_usd: float = Field(0.0, ge=0, description="actual cost")
    latency_ms: float | None = Field(None, ge=0)
    ttft_ms: float | None = Field(None, ge=0)
    status: Status = "ok"
    started_at: datetime
    finished_at: datetime

    @field_validator("started_at", "finished_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> UsageRecord:
        if self.finished_at < self.started_at:
            raise ValueError("finished_at must not precede started_at")
        if self.cached_tokens > self.prompt_tokens:
            raise ValueError("cached_tokens cannot exceed prompt_tokens")
        if self.reasoning_tokens > self.output_tokens:
            raise ValueError("reasoning_tokens are part of output_tokens and cannot exceed them")
        return self


class WindowSpend(_Frozen):
    """A tenant's spend in the current calendar window [start, end) (UTC)."""

    tenant: str
    window: Window
    start: datetime
    end: datetime
    cost_usd: float
    requests: int

    def retry_after_s(self, now: datetime) -> int:
        """Whole seconds until the window ends (>= 1): the 429 Retry-After value."""
        left = (self.end - _utc(now)).total_seconds()
        return max(1, int(-(-left // 1)))


class UsageSummary(_Frozen):
    """Totals for one (tenant, profile) pair; profile None = requests rejected before routing."""

    tenant: str
    profile: str | None
    requests: int
    failed: int = Field(description="status other than ok")
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: float
    estimated_cost_usd: float
    mean_latency_ms: float | None


class Reservation(_Frozen):
    """The answer of `UsageLedger.reserve` (see orchestrator.ledger.reservations).

    Granted: the amount is held until `settle`/`release` or `expires_at`; `remaining_usd` is
    the tightest window's limit minus spend minus every reservation, this one included.
    Refused: nothing is held; `remaining_usd` is what the binding `window` has left before this
    request (<= 0 or held by others), `retry_after_s` when asking again can succeed."""

    request_id: str
    tenant: str
    granted: bool
    amount_usd: float = Field(ge=0)
    remaining_usd: float | None = None
    window: Window | None = None
    retry_after_s: int | None = None
    expires_at: datetime | None = None
