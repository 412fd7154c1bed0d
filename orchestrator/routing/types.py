"""The router's own input and output types (decoupled from the policy and predictor schemas).

Adapters elsewhere build these from the policy file, the predictor's output, the catalog and
live replica stats; `decide` only ever sees these. All models are frozen pydantic models with
`extra="forbid"`; `Decision` is JSON-serializable with `model_dump(mode="json")`.

Token conventions (shared by every field below):
- `TokenBudget.p50/p90_output_tokens` count the visible answer only, never reasoning tokens;
- `TokenBudget.reasoning_tokens` is what the model is expected to think when thinking is on
  at full effort (not weighted by `reasoning_probability`);
- every `max_tokens` (caller's, policy cap, `Decision.max_tokens`) bounds ALL generated tokens,
  reasoning included, as vLLM's and OpenAI's `max_tokens` do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.concepts import (
    Action,
    DecisionAction,
    LatencySLO,
    QualityTier,
    QueryClass,
    ReasoningControl,
)
from orchestrator.pricing import TokenPrices
from orchestrator.replica_model import (
    PREFILL_LOAD_SLOWDOWN,
    TYPICAL_REQUEST_OUTPUT_TOKENS,
    LiveState,
    ReplicaPerformance,
)

Effort = Literal["low", "medium", "high"]
ReasoningLevel = Literal["off", "low", "medium", "high"]
REASONING_LEVELS: tuple[ReasoningLevel, ...] = ("off", "low", "medium", "high")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- inputs


class RouteRequest(_Frozen):
    """What the caller asked for, already tokenized."""

    model: str = Field("auto", min_length=1, description="'auto', a family or a profile name")
    prompt_tokens: int = Field(ge=0)
    max_tokens: int | None = Field(None, ge=1, description="caller's cap on generated tokens")
    cost_target_usd: float | None = Field(None, ge=0, description="caller's per-request target")
    latency_slo_ms: float | None = Field(None, gt=0, description="caller's end-to-end SLO")
    cached_prompt_share: float = Field(0.0, ge=0, le=1, description="expected prefix-cache hits")
    wants_reasoning: bool | None = Field(None, description="explicit caller setting, if any")
    needs_tool_parser: bool = Field(
        False, description="`tools` with any tool_choice but none: needs the engine's parser"
    )
    choices: int = Field(
        1, ge=1, description="sequences generated (`n`): token figures are per choice, cost is all"
    )


class TokenBudget(_Frozen):
    """The predictor's view of the request (see the module docstring for token conventions)."""

    p50_output_tokens: int = Field(ge=0)
    p90_output_tokens: int = Field(ge=0)
    reasoning_probability: float = Field(0.0, ge=0, le=1)
    reasoning_tokens: int = Field(0, ge=0)
    query_class: QueryClass = "standard"
    tier_success: dict[QualityTier, float] | None = Field(
        None, description="P(each quality tier answers well); None = not predicted"
    )

    @model_validator(mode="after")
    def _ordered(self) -> TokenBudget:
        if self.p90_output_tokens < self.p50_output_tokens:
            raise ValueError("p90_output_tokens must be >= p50_output_tokens")
        return self


class TenantRules(_Frozen):
    """The tenant's slice of the policy, with its live remaining budget."""

    tenant: str = "default"
    allowed_profiles: tuple[str, ...] | None = Field(None, description="None = every profile")
    cost_target_usd: float | None = Field(None, ge=0, description="per-request soft target")
    cost_cap_usd: float | None = Field(None, ge=0, description="per-request hard cap")
    slo: LatencySLO = LatencySLO()
    quality_floor: QualityTier = "small"
    min_success: float | None = Field(
        None, ge=0, le=1, description="quality target: a tier's P(answers well) >= this"
    )
    share_of_strongest: float | None = Field(
        None, ge=0, le=1, description="quality target: P >= this x the strongest usable tier's"
    )
    quality_slack: float = Field(
        0.0,
        description="expected successes the tenant's earlier requests banked above its "
        "share_of_strongest target (routing/quality.QualityAccount); a request may use it",
    )
    on_cost_cap: tuple[Action, ...] = ("downgrade", "cap_tokens", "reject")
    on_budget_exhausted: tuple[Action, ...] = ("reject",)
    on_slo_unmeetable: tuple[Action, ...] = Field(
        (), description="empty: a latency target is a p95 (served on the closest profile)"
    )
    on_cost_target: tuple[Action, ...] = Field(
        (), description="empty: the cost target is soft (preferred, a miss is recorded)"
    )
    cap_tokens_floor: int = Field(16, ge=1, description="cap_tokens never goes below this")
    reasoning_allowed: bool = True
    max_reasoning_tokens: int | None = Field(None, ge=0)
    max_tokens_cap: int | None = Field(None, ge=1)
    remaining_budget_usd: float | None = Field(None, description="None = unlimited")
    budget_retry_after_s: int | None = Field(
        None, ge=0, description="seconds to the next budget window (429 Retry-After)"
    )


class ProfileView(_Frozen):
    """One profile as the router sees it."""

    name: str
    family: str = Field(description="served_model_name")
    max_model_len: int = Field(ge=1)
    quality_tier: QualityTier = "small"
    reasoning_supported: bool = False
    reasoning_control: ReasoningControl = "none"
    reasoning_default_on: bool = False
    tool_calling: bool = Field(False, description="has a tool_call_parser (auto tool choice)")
    prices: TokenPrices
    replica_usd_per_hour: float = Field(
        0.0, ge=0, description="what one replica costs an hour (the catalog's price)"
    )
    performance: ReplicaPerformance
    live: LiveState = LiveState()


class RoutingKnobs(_Frozen):
    """Tunables of the decision; defaults are documented in docs/routing.md."""

    reasoning_on_probability: float = Field(0.5, ge=0, le=1)
    reasoning_high_probability: float = Field(0.8, ge=0, le=1)
    effort_token_share: dict[str, float] = Field(
        default_factory=lambda: {"low": 0.25, "medium": 0.5, "high": 1.0}
    )
    reasoning_budget_share: float = Field(
        0.02, gt=0, description="reasoning may cost at most this share of the remaining budget"
    )
    reasoning_class_tier_capable: QualityTier = "medium"
    reasoning_class_tier_plain: QualityTier = "large"
    typical_request_output_tokens: int = Field(
        TYPICAL_REQUEST_OUTPUT_TOKENS, ge=1, description="for queue drain time"
    )
    prefill_load_slowdown: float = Field(
        PREFILL_LOAD_SLOWDOWN, ge=0, description="prefill x (1 + this*load)"
    )


DEFAULT_KNOBS = RoutingKnobs()


# ---------------------------------------------------------------- outputs


class ReasoningSetting(_Frozen):
    """What to send for reasoning; `expected_tokens` is what the estimates assumed."""

    enabled: bool = False
    effort: Effort | None = None
    token_cap: int | None = Field(None, description="reasoning-token cap (thinking budget)")
    expected_tokens: int = 0
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    request_params: dict[str, Any] = Field(default_factory=dict)
    note: str = ""


# Estimate and CandidateReport are built for every profile on every request, so they are
# slotted stdlib dataclasses (several times cheaper to build than models, and not frozen for
# the same reason: treat them as read-only); pydantic still validates and serializes them as
# fields of `Decision`, with extra keys forbidden.


@dataclass(slots=True)
class Estimate:
    """One candidate priced under current load. Latencies include the queue wait."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    cost_usd: float  # expected: p50 answer + expected reasoning tokens
    cost_usd_p90: float
    latency_ms: float  # expected end-to-end
    latency_ms_p90: float
    queue_wait_ms: float
    ttft_ms: float  # queue wait + time to first token
    tpot_ms: float
    spec_speedup: float  # effective speculative speed-up at current load
    output_tokens: int  # expected generated tokens, reasoning included
    output_tokens_p90: int
    reasoning_tokens: int
    max_tokens: int  # the cap this candidate would be sent with


@dataclass(slots=True)
class CandidateReport:
    """Every profile, whether it won, and why not."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    profile: str
    family: str
    tier: QualityTier
    chosen: bool = False
    stage: str = ""  # last stage it was evaluated in
    lost_because: tuple[str, ...] = ()
    detail: str = ""
    estimate: Estimate | None = None


class Rejection(_Frozen):
    status: int
    code: str
    message: str
    retry_after_s: int | None = None
    param: str | None = None  # the client's field at fault, as it sent it (bounds)


class QueueWait(_Frozen):
    """How a routed request waited in the ingress queue for a batch slot on its profile."""

    position: int = Field(ge=0, description="requests ahead of it in key order when it was queued")
    waited_ms: float = Field(ge=0, description="time it waited for the slot")


class Decision(_Frozen):
    """The outcome of `decide`. `profile` is None exactly when `action == "reject"`."""

    action: DecisionAction
    profile: str | None
    reason: str = Field(description="short, ASCII; for the X-Orchestrator-Decision header")
    max_tokens: int | None = None
    reasoning: ReasoningSetting | None = None
    estimate: Estimate | None = None
    rejection: Rejection | None = None
    query_class: QueryClass
    predicted_tokens: tuple[int, int] = Field(description="(p50, p90) answer tokens")
    tier_success: dict[QualityTier, float] | None = Field(
        None, description="the prediction's P(each quality tier answers well)"
    )
    cost_target_usd: float | None = None
    cost_cap_usd: float | None = None
    share_of_strongest: float | None = Field(
        None, description="the tenant's quality target held over its traffic (None: none)"
    )
    slo: LatencySLO = LatencySLO()
    steps: tuple[str, ...] = ()
    candidates: tuple[CandidateReport, ...] = ()
    misses: tuple[str, ...] = Field(
        (),
        description="soft targets the routed profile is expected to miss (cost_target, "
        "slo_ttft, slo_tpot, slo_e2e)",
    )
    queue: QueueWait | None = Field(
        None,
        description="the ingress queue: position at entry and time waited (None: the request "
        "went straight to a free batch slot, or was not routed)",
    )
