"""Policy file schema (`apiVersion: orchestrator/v1`, `kind: Policy`): the SRE's contract.

This module describes what a policy file may say; it does not know the catalog. Invariants
enforced here (catalog-independent):
- every model forbids unknown fields; API keys are references (`env` or `file`), never inline;
- action lists are non-empty, without duplicates, and `reject` can only come last;
- a block never lists a profile as both allowed and denied;
- tenant names are DNS labels (uniqueness is checked with line numbers in `checks.py`).
Settings that "are not set" stay `None` (or out of `model_fields_set`) so that layers can be
merged: more specific blocks override less specific ones field by field (see `limits.py`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from orchestrator.concepts import Action, LatencySLO, QualityTier, QueryClass
from orchestrator.pricing import DEFAULT_CACHED_INPUT_RATIO, DEFAULT_UTILIZATION

API_VERSION = "orchestrator/v1"
KIND = "Policy"

UnknownKeys = Literal["reject", "default_tenant"]

_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


def _invalid(reason: str) -> PydanticCustomError:
    """A validation error whose message is exactly `reason` (no "Value error, " prefix)."""
    return PydanticCustomError("policy_invalid", "{reason}", {"reason": reason})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- per tenant / per request class limits ---------------------------------------------------


class QualityFloor(_Strict):
    """The weakest profile allowed: its tier must be >= min_tier (small < medium < large <
    frontier) and, when min_score is set, its catalog quality score must be >= min_score
    (a profile without a score then fails the floor)."""

    min_tier: QualityTier | None = None
    min_score: float | None = Field(None, ge=0, le=100)


class QualityTarget(_Strict):
    """Soft quality targets on the predicted probability that a profile's tier answers the
    request well (the predictor's `tier_success`). `min_success`: per request, the chosen
    tier's expected success must be >= this. `share_of_strongest`: per tenant, the chosen
    tier's expected success must be >= this share of the strongest usable tier's, so the
    tenant's expected quality over its traffic is >= this share of always-strongest routing.
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
        raise _invalid("list at least one action (reject is applied when none fits)")
    dupes = sorted({a for a in v if v.count(a) > 1})
    if dupes:
        raise _invalid(f"duplicate action(s): {', '.join(dupes)}")
    if "reject" in v and v[-1] != "reject":
        raise _invalid("reject must be the last action: nothing after it can run")
    return v


class Actions(_Strict):
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


class ReasoningLimits(_Strict):
    """May requests use reasoning ("thinking") mode, and how many reasoning tokens at most."""

    allowed: bool = True
    max_reasoning_tokens: int | None = Field(None, ge=1)


class Limits(_Strict):
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
            raise _invalid(f"profile(s) both allowed and denied: {', '.join(both)}")
        return self


class Budgets(_Strict):
    """Spend budgets in USD per UTC calendar hour, day and month (unset = unlimited)."""

    per_hour_usd: float | None = Field(None, gt=0)
    per_day_usd: float | None = Field(None, gt=0)
    per_month_usd: float | None = Field(None, gt=0)


class RequestBounds(_Strict):
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


class Failover(_Strict):
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


class BatchSettings(_Strict):
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


class KeyRef(_Strict):
    """Where a tenant's API key comes from: an environment variable, or a file (one key per
    non-empty line not starting with '#'; relative paths are relative to the policy file)."""

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: str | None = Field(None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: object) -> object:
        if isinstance(data, str | int):
            raise _invalid("inline API keys are not allowed: use {env: VAR_NAME} or {file: PATH}")
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> KeyRef:
        if (self.env is None) == (self.file is None):
            raise _invalid("give exactly one of env or file")
        return self

    def describe(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"


class DefaultTenantSpec(TenantDefaults):
    """The tenant for every request when the policy defines no keys (and for unknown keys when
    `unknown_keys: default_tenant`)."""

    name: str = Field("default", pattern=_NAME_PATTERN)
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_keys(cls, data: object) -> object:
        if isinstance(data, dict) and "api_keys" in data:
            raise _invalid("the default tenant has no API keys; define a tenant under `tenants`")
        return data


class TenantSpec(TenantDefaults):
    """A named tenant, identified by any of its API keys."""

    name: str = Field(pattern=_NAME_PATTERN)
    description: str | None = None
    api_keys: list[KeyRef] = Field(min_length=1)


# --- pricing ---------------------------------------------------------------------------------


class ProfilePrice(_Strict):
    """Explicit token prices for one profile, USD per 1M tokens. Each field set here wins over
    the price derived from the catalog; unset fields are derived."""

    input_usd_per_1m: float | None = Field(None, ge=0)
    cached_input_usd_per_1m: float | None = Field(None, ge=0)
    output_usd_per_1m: float | None = Field(None, ge=0)


class PricingSpec(_Strict):
    """How token prices are obtained (see docs/policy.md for the derivation formula)."""

    utilization: float = Field(
        DEFAULT_UTILIZATION,
        gt=0,
        le=1,
        description="fraction of a replica's capacity assumed paid by traffic",
    )
    cached_input_ratio: float = Field(
        DEFAULT_CACHED_INPUT_RATIO,
        ge=0,
        le=1,
        description="cached-input price as a fraction of the input price",
    )
    profiles: dict[str, ProfilePrice] = Field(default_factory=dict)


# --- autoscaling -----------------------------------------------------------------------------


class ProfileScaling(_Strict):
    """Scaling bounds for one profile. The catalog's replicas.min is a default this may lower
    (0 removes always-on replicas, e.g. of a profile no tenant may use); max_replicas may not
    exceed the catalog's replicas.max."""

    min_replicas: int | None = Field(
        None, ge=0, description="replicas always on (default: the catalog's replicas.min)"
    )
    max_replicas: int | None = Field(
        None, ge=0, description="at most the catalog's replicas.max; 0 disables the profile"
    )
    headroom: float | None = Field(None, ge=0, le=10)
    scale_to_zero: bool | None = Field(
        None, description="true without min_replicas = min_replicas 0 for this profile"
    )

    @model_validator(mode="after")
    def _ordered(self) -> ProfileScaling:
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise _invalid("min_replicas must be <= max_replicas")
        if self.scale_to_zero is False and self.min_replicas == 0:
            raise _invalid("min_replicas 0 contradicts scale_to_zero: false")
        return self


class AutoscalingSpec(_Strict):
    """Cluster-wide scaling settings; `profiles` sets per-profile bounds (the catalog's
    replicas.min is a default they may lower; replicas.max a ceiling)."""

    headroom: float = Field(
        0.2, ge=0, le=10, description="spare capacity kept above demand (0.2 = 20 %)"
    )
    scale_to_zero: bool = Field(
        True, description="profiles whose minimum is 0 may scale to zero replicas"
    )
    max_cost_per_hour_usd: float | None = Field(
        None, gt=0, description="ceiling on the whole cluster's replica cost"
    )
    profiles: dict[str, ProfileScaling] = Field(default_factory=dict)
    interval_s: float = Field(
        10.0, gt=0, le=600, description="the controller plans every this many seconds"
    )
    scale_up_delay_s: float = Field(
        30.0, ge=0, description="a higher target must persist this long before it is applied"
    )
    scale_down_delay_s: float = Field(
        120.0, ge=0, description="a lower target must persist this long before it is applied"
    )
    scale_down_margin: float = Field(
        0.1,
        ge=0,
        le=1,
        description="a scale-down must still fit the forecast with this much extra load "
        "(the N -> N-1 check: no scale-down that would re-trigger a scale-up)",
    )
    max_drain_s: float = Field(
        600.0,
        gt=0,
        description="cap on a draining replica's graceful shutdown (else: its longest "
        "generation at single-stream speed)",
    )


# --- scheduling (the ingress queue and the engines' waiting order) ----------------------------


class TenantScheduling(_Strict):
    """One tenant's share of the ingress queue (unset fields take the block's defaults)."""

    weight: float | None = Field(
        None, gt=0, le=1000, description="fair share among tenants of one priority class"
    )
    max_queued: int | None = Field(
        None, ge=0, le=100_000, description="requests it may have waiting; more get 429"
    )
    deadline: bool = Field(
        False,
        description="its requests wait in deadline order (arrival + the class's TTFT p95 "
        "target), ahead of the predicted-work order",
    )


class SchedulingSpec(_Strict):
    """How requests wait when a profile cannot take them now: the ingress queue's order
    (tenant priority, deadline, predicted work aged by `aging_s`), fair shares by tokens, bounds
    per tenant; the same order is each vLLM engine's request priority."""

    order: Literal["predicted", "fcfs"] = Field(
        "predicted",
        description="predicted: shortest predicted work first (aged); fcfs: arrival order",
    )
    aging_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="no waiting request is overtaken by one that arrived this much later",
    )
    max_queued: int = Field(
        1000, ge=0, le=100_000, description="requests one tenant may have waiting; more get 429"
    )
    weight: float = Field(1.0, gt=0, le=1000, description="a tenant's default fair share")
    tenants: dict[str, TenantScheduling] = Field(
        default_factory=dict, description="per-tenant weight, queue bound and deadline order"
    )

    def for_tenant(self, name: str) -> TenantScheduling:
        """The tenant's settings with the block's defaults filled in (every field set)."""
        own = self.tenants.get(name) or TenantScheduling()
        return TenantScheduling(
            weight=own.weight if own.weight is not None else self.weight,
            max_queued=own.max_queued if own.max_queued is not None else self.max_queued,
            deadline=own.deadline,
        )


# --- the document ----------------------------------------------------------------------------


class ReferenceRequest(_Strict):
    """A typical request of a class; used to check SLO feasibility and in `policy explain`."""

    input_tokens: int = Field(ge=1)
    output_tokens: int = Field(ge=1)


DEFAULT_REFERENCE_REQUESTS: dict[str, ReferenceRequest] = {
    "standard": ReferenceRequest(input_tokens=500, output_tokens=250),
    "long_form": ReferenceRequest(input_tokens=500, output_tokens=1500),
    "reasoning": ReferenceRequest(input_tokens=500, output_tokens=4000),
    "long_context": ReferenceRequest(input_tokens=16000, output_tokens=500),
}


class Metadata(_Strict):
    name: str | None = None
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class PolicySpec(_Strict):
    """A policy file as written. Cross-checks against the catalog happen in `checks.py`."""

    apiVersion: Literal["orchestrator/v1"]  # noqa: N815 (k8s-style key)
    kind: Literal["Policy"]
    metadata: Metadata = Metadata()
    catalog: str | None = Field(
        None,
        description="catalog this policy is written for (CLI hint; relative to this file). "
        "The server always checks the policy against the catalog it serves.",
    )
    unknown_keys: UnknownKeys = Field(
        "reject",
        description="when tenants define keys: reject unknown/missing keys (401) or treat "
        "them as the default tenant",
    )
    defaults: TenantDefaults = Field(
        default_factory=TenantDefaults, description="inherited by every tenant"
    )
    default_tenant: DefaultTenantSpec = Field(default_factory=DefaultTenantSpec)
    tenants: list[TenantSpec] = Field(default_factory=list)
    reference_requests: dict[QueryClass, ReferenceRequest] = Field(default_factory=dict)
    pricing: PricingSpec = Field(default_factory=PricingSpec)
    autoscaling: AutoscalingSpec = Field(
        default_factory=AutoscalingSpec,
        description="read by the controller (orchestrator/control: the planner runs in the Ray "
        "Serve controller process as the profiles' autoscaling policy), not by the ingress",
    )
    scheduling: SchedulingSpec = Field(
        default_factory=SchedulingSpec,
        description="the ingress queue's order and bounds, and the engines' request priority",
    )

    def reference_request(self, request_class: QueryClass) -> ReferenceRequest:
        """The typical request of a class (this file's override, else the built-in one)."""
        found = self.reference_requests.get(request_class)
        return found if found is not None else DEFAULT_REFERENCE_REQUESTS[request_class]


def policy_json_schema() -> dict:
    """JSON Schema (draft 2020-12) of a policy file, for editors and CI."""
    schema = PolicySpec.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://orchestrator.dev/schemas/policy-v1.json",
        "title": "orchestrator Policy (orchestrator/v1)",
        **schema,
    }
