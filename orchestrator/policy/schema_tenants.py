"""The policy's per-tenant blocks: limits (overridable per request class), budgets, request
bounds, failover, batch settings, and the tenants themselves.

Invariants:
- an unset field is `None` (or out of `model_fields_set`), so blocks merge field by field,
  the more specific winning (`limits.py`): defaults -> tenant -> request class;
- action lists are non-empty, without duplicates, and `reject` can only come last;
- a block never lists a profile as both allowed and denied;
- API keys are references (`env` or `file`), never inline; tenant names are DNS labels.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from orchestrator.concepts import Action, LatencySLO, QualityTier, QueryClass
from orchestrator.policy.schema_base import NAME_PATTERN, Strict, invalid


class QualityFloor(Strict):
    """The weakest profile allowed: its tier must be >= min_tier (small < medium < large <
    frontier) and, when min_score is set, its catalog quality score must be >= min_score
    (a profile without a score then fails the floor)."""

    min_tier: QualityTier | None = None
    min_score: float | None = Field(None, ge=0, le=100)


class QualityTarget(Strict):
    """Soft quality targets on the predicted probability that a profile's tier answers the
    request well (the predictor's `tier_success`). `min_success`: per request, the chosen
    tier's expected success must be >= this. `share_of_strongest`: per tenant, its expected
    quality over its traffic is >= this share of always-strongest routing; a request may take
    a tier below this share of its strongest usable tier's while the surplus the tenant's
    earlier requests banked covers the gap (routing/quality.QualityAccount).
    The router takes the cheapest profile meeting both; when no usable tier does, the
    strongest qualify. `downgrade` (on_cost_cap) may drop the target; `quality_floor` is hard."""

    min_success: float | None = Field(
        None, gt=0, le=1, description="per request: expected success of the chosen tier >= this"
    )
    share_of_strongest: float | None = Field(
        None,
        gt=0,
        le=1,
        description="per tenant: expected quality >= this share of always-strongest routing",
    )


def _check_action_list(v: list[Action]) -> list[Action]:
    if not v:
        raise invalid("list at least one action (reject is applied when none fits)")
    dupes = sorted({a for a in v if v.count(a) > 1})
    if dupes:
        raise invalid(f"duplicate action(s): {', '.join(dupes)}")
    if "reject" in v and v[-1] != "reject":
        raise invalid("reject must be the last action: nothing after it can run")
    return v


class Actions(Strict):
    """What the router tries, in order, when a request would break its cost cap or the tenant's
    budget is spent. `downgrade` = a cheaper eligible profile; `cap_tokens` = lower max_tokens
    until the estimate fits (never below cap_tokens_floor); `reject` = 402 (cost cap) or 429
    (budget). When no listed action makes the request fit, it is rejected.

    The cost target and the latency targets are soft by default: a request over the target is
    served on the cheapest profile that fits (the miss is recorded), and a request whose own
    estimate misses a p95 latency target is served on the profile closest to it (a p95 is a
    share of requests). `on_cost_target` / `on_slo_unmeetable` make them act (e.g. `[reject]`:
    402 `cost_target_unmet` / 503 `latency_slo_unmeetable`, naming the action)."""

    on_cost_cap: list[Action] = Field(default_factory=lambda: ["downgrade", "cap_tokens", "reject"])
    on_budget_exhausted: list[Action] = Field(default_factory=lambda: ["reject"])
    on_cost_target: list[Action] = Field(
        default_factory=list,
        description="actions when no profile fits under the cost target (empty = soft: served "
        "on the cheapest profile that fits, the miss recorded)",
    )
    on_slo_unmeetable: list[Action] = Field(
        default_factory=list,
        description="actions when no profile's estimate meets a latency target (empty = a p95 "
        "target: served on the profile closest to it, the miss recorded)",
    )
    cap_tokens_floor: int = Field(
        16, ge=1, description="cap_tokens never lowers max_tokens below this"
    )

    @field_validator("on_cost_cap", "on_budget_exhausted")
    @classmethod
    def _valid_order(cls, v: list[Action]) -> list[Action]:
        return _check_action_list(v)

    @field_validator("on_cost_target", "on_slo_unmeetable")
    @classmethod
    def _valid_optional_order(cls, v: list[Action]) -> list[Action]:
        return _check_action_list(v) if v else v


class ReasoningLimits(Strict):
    """May requests use reasoning ("thinking") mode, and how many reasoning tokens at most."""

    allowed: bool = True
    max_reasoning_tokens: int | None = Field(None, ge=1)


class Limits(Strict):
    """Settings that apply per tenant and may be overridden per request class.

    Every field is optional: an unset field inherits from the next less specific block.
    """

    cost_target_usd: float | None = Field(
        None, gt=0, description="per-request cost the router aims at (cheapest profile under it)"
    )
    cost_cap_usd: float | None = Field(
        None,
        gt=0,
        description="hard per-request cost cap; breaking it triggers actions.on_cost_cap",
    )
    latency: LatencySLO | None = None
    quality_floor: QualityFloor | None = None
    quality_target: QualityTarget | None = None
    actions: Actions | None = None
    reasoning: ReasoningLimits | None = None
    max_tokens: int | None = Field(
        None, ge=1, description="cap on max_tokens; larger requests are lowered to it"
    )
    allowed_profiles: list[str] | None = Field(
        None, description="profile names this tenant may use (unset = all profiles)"
    )
    denied_profiles: list[str] | None = Field(
        None, description="profile names this tenant may never use"
    )

    @model_validator(mode="after")
    def _allowed_denied_disjoint(self) -> Limits:
        both = sorted(set(self.allowed_profiles or ()) & set(self.denied_profiles or ()))
        if both:
            raise invalid(f"profile(s) both allowed and denied: {', '.join(both)}")
        return self


class Budgets(Strict):
    """Spend budgets in USD per UTC calendar hour, day and month (unset = unlimited)."""

    per_hour_usd: float | None = Field(None, gt=0)
    per_day_usd: float | None = Field(None, gt=0)
    per_month_usd: float | None = Field(None, gt=0)


class RequestBounds(Strict):
    """Hard bounds on one request, checked before it is predicted, priced or run: a request
    over a bound is refused with 400 naming the bound (429 for `max_concurrent_requests`).
    Unset fields inherit (defaults -> tenant); the built-in values are in `BUILTIN_BOUNDS`."""

    max_n: int | None = Field(None, ge=1, description="most choices (`n`) per request")
    max_best_of: int | None = Field(None, ge=1, description="largest `best_of` accepted")
    max_prompt_tokens: int | None = Field(
        None, ge=1, description="most prompt tokens (counted with the profile's tokenizer)"
    )
    max_output_tokens: int | None = Field(
        None,
        ge=1,
        description="most tokens a request may ask to generate: max_tokens times its choices",
    )
    max_concurrent_requests: int | None = Field(
        None, ge=1, description="requests of one tenant in flight at once; more get 429"
    )


BUILTIN_BOUNDS = RequestBounds(
    max_n=8,
    max_best_of=8,
    max_prompt_tokens=131_072,
    max_output_tokens=65_536,
    max_concurrent_requests=256,
)


class Failover(Strict):
    """What the ingress may do when a profile's engine fails under a request (unset fields
    inherit; built-in: both allowed)."""

    retry: bool | None = Field(
        None, description="retry once on another eligible profile if it fails before any output"
    )
    migrate_streams: bool | None = Field(
        None,
        description="continue a stream whose engine died on another replica or profile of the "
        "same model (else the stream ends with an error event)",
    )


class BatchSettings(Strict):
    """OpenAI Batch API jobs of a tenant (`POST /v1/batches`; unset fields inherit)."""

    price_factor: float | None = Field(
        None,
        gt=0,
        le=1,
        description="share of the interactive price a batch line is charged (default 0.5, "
        "OpenAI's batch discount)",
    )
    max_completion_window: str | None = Field(
        None,
        pattern=r"^\s*[1-9][0-9]*\s*[hm]\s*$",
        description="longest `completion_window` a job may ask for, e.g. '24h' (default 24h)",
    )
    max_concurrent_lines: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="most lines of the tenant's jobs in flight at once over all replicas "
        "(default 8); fewer run while interactive traffic is busy",
    )
    yield_to_interactive_s: float | None = Field(
        None,
        ge=0,
        le=3600,
        description="on replicas that keep an interactive TTFT within 10 % of idle only alone "
        "(CPU engines), seconds without an interactive request before lines beyond what the "
        "deadline needs start (default 10; 0: never wait, lines run at an even pace)",
    )


class TenantDefaults(Limits):
    """Limits plus the per-tenant parts: budgets, request bounds, shedding priority, failover
    and per-request-class overrides."""

    budgets: Budgets | None = None
    requests: RequestBounds | None = Field(
        None, description="hard per-request bounds, checked before anything runs"
    )
    priority: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="overload shedding order: lower priorities are refused first (default 0)",
    )
    failover: Failover | None = None
    batch: BatchSettings | None = None
    classes: dict[QueryClass, Limits] = Field(
        default_factory=dict, description="overrides per request class"
    )


# --- tenants ---------------------------------------------------------------------------------


class KeyRef(Strict):
    """Where a tenant's API key comes from: an environment variable, or a file (one key per
    non-empty line not starting with '#'; relative paths are relative to the policy file)."""

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: str | None = Field(None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: object) -> object:
        if isinstance(data, str | int):
            raise invalid("inline API keys are not allowed: use {env: VAR_NAME} or {file: PATH}")
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> KeyRef:
        if (self.env is None) == (self.file is None):
            raise invalid("give exactly one of env or file")
        return self

    def describe(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"


class DefaultTenantSpec(TenantDefaults):
    """The tenant for every request when the policy defines no keys (and for unknown keys when
    `unknown_keys: default_tenant`)."""

    name: str = Field("default", pattern=NAME_PATTERN)
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_keys(cls, data: object) -> object:
        if isinstance(data, dict) and "api_keys" in data:
            raise invalid("the default tenant has no API keys; define a tenant under `tenants`")
        return data


class TenantSpec(TenantDefaults):
    """A named tenant, identified by any of its API keys."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    api_keys: list[KeyRef] = Field(min_length=1)
