"""What the decision log stores per request (pydantic, frozen, extra=forbid).

One row per request id: the `Decision` (routing/types.py: action, profile, max_tokens,
estimate, candidates with their estimates, prediction p50/p90, query class, SLO, cost target)
plus `DecisionInputs`, what the router saw: the full prediction, each profile's live load and
token prices, the budget left. With the ledger row of the same request id (actual tokens and
cost) this is enough to replay the traffic (docs/storage.md, "Decision log").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.predict.schema import Prediction
from orchestrator.replica_model import LiveState
from orchestrator.routing.types import Decision


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# LiveState fields that rows written by older versions hold and this one does not: dropped on
# read (`recent_tpot_ms` was never set, always null; `tpot_scale` replaced it)
RETIRED_LIVE_FIELDS = frozenset({"recent_tpot_ms"})


class ProfileSeen(_Frozen):
    """One profile as the router saw it when deciding: live load and token prices."""

    live: LiveState
    input_usd_per_token: float = Field(ge=0)
    cached_input_usd_per_token: float = Field(ge=0)
    output_usd_per_token: float = Field(ge=0)

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_live_fields(cls, data: Any) -> Any:
        live = data.get("live") if isinstance(data, dict) else None
        if isinstance(live, dict) and RETIRED_LIVE_FIELDS & live.keys():
            live = {k: v for k, v in live.items() if k not in RETIRED_LIVE_FIELDS}
            data = {**data, "live": live}
        return data


class DecisionInputs(_Frozen):
    """The inputs of one decision besides the policy (named by its version)."""

    prediction: Prediction | None = None
    profiles: dict[str, ProfileSeen] = Field(default_factory=dict)
    budget_remaining_usd: float | None = None
    endpoint: str | None = Field(None, description="chat | completions | responses")
    model: str | None = Field(None, description="the model the client asked for")
    stream: bool | None = None
    max_tokens: int | None = Field(None, ge=0, description="the client's max_tokens, if any")

    @classmethod
    def from_views(cls, views: Iterable[Any], **fields: Any) -> DecisionInputs:
        """From the router's `ProfileView`s (their `.live` and `.prices`) plus `fields`."""
        profiles = {
            v.name: ProfileSeen(
                live=v.live,
                input_usd_per_token=v.prices.input_usd_per_token,
                cached_input_usd_per_token=v.prices.cached_input_usd_per_token,
                output_usd_per_token=v.prices.output_usd_per_token,
            )
            for v in views
        }
        return cls(profiles=profiles, **fields)


class DecisionEntry(_Frozen):
    """One stored row (see docs/storage.md for the table)."""

    request_id: str = Field(min_length=1, max_length=200)
    tenant: str
    decided_at: datetime
    policy_version: str | None = None
    decision: Decision
    inputs: DecisionInputs | None = None


class Retention(_Frozen):
    """How much of the log is kept; pruning runs every `prune_interval_s` from `put`.

    None for a bound = unbounded in that dimension; at least one bound must be set."""

    max_age_s: float | None = Field(7 * 86400.0, gt=0, description="drop rows older than this")
    max_rows: int | None = Field(1_000_000, ge=1, description="keep at most the newest N rows")
    prune_interval_s: float = Field(60.0, ge=0, description="seconds between prunes (0: every put)")

    @model_validator(mode="after")
    def _bounded(self) -> Retention:
        if self.max_age_s is None and self.max_rows is None:
            raise ValueError(
                "retention needs max_age_s or max_rows (an unbounded log fills the disk)"
            )
        return self
