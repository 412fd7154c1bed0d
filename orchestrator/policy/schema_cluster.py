"""The policy's cluster-wide blocks: how token prices are obtained (`pricing`), the
controller's scaling bounds and delays (`autoscaling`), and how requests wait for a profile
(`scheduling`).

Invariants: a profile's `min_replicas` is never above its `max_replicas` (and not 0 with
`scale_to_zero: false`); `SchedulingSpec.for_tenant` returns every field set.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from orchestrator.policy.schema_base import Strict, invalid
from orchestrator.pricing import DEFAULT_CACHED_INPUT_RATIO, DEFAULT_UTILIZATION

# --- pricing ---------------------------------------------------------------------------------


class ProfilePrice(Strict):
    """Explicit token prices for one profile, USD per 1M tokens. Each field set here wins over
    the price derived from the catalog; unset fields are derived."""

    input_usd_per_1m: float | None = Field(None, ge=0)
    cached_input_usd_per_1m: float | None = Field(None, ge=0)
    output_usd_per_1m: float | None = Field(None, ge=0)


class PricingSpec(Strict):
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


class ProfileScaling(Strict):
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
    scale_to_zero_delay_s: float | None = Field(
        None,
        ge=0,
        le=86_400,
        description="its last replica goes only once the load has been below it this long "
        "(at least autoscaling.scale_down_delay_s; unset: that delay): keeps a profile whose "
        "start-up its tenants' TTFT targets cannot absorb open between bursts",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ProfileScaling:
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise invalid("min_replicas must be <= max_replicas")
        if self.scale_to_zero is False and self.min_replicas == 0:
            raise invalid("min_replicas 0 contradicts scale_to_zero: false")
        return self


class DemandLevelSpec(Strict):
    """The level learned online that corrects the planner's sized demand
    (`planning/level.py`): per profile, tokens generated / tokens sized over recently settled
    requests, multiplied into the output demand the planner plans for."""

    enabled: bool = Field(
        False,
        description="multiply each profile's sized output demand by its learned level "
        "(false: plan on the sizing alone; the level keeps learning)",
    )
    window: int = Field(
        2000,
        ge=10,
        le=100_000,
        description="settled requests per profile the level averages over (the weight of "
        "older ones decays by 1 - 1/window per request)",
    )
    max_factor: float = Field(
        2.0,
        ge=1.0,
        le=10.0,
        description="the level stays within [1/max_factor, max_factor] of the sizing "
        "(1 = no correction)",
    )


class AutoscalingSpec(Strict):
    """Cluster-wide scaling settings; `profiles` sets per-profile bounds (the catalog's
    replicas.min is a default they may lower; replicas.max a ceiling)."""

    headroom: float = Field(
        0.2, ge=0, le=10, description="spare capacity kept above demand (0.2 = 20 %)"
    )
    scale_to_zero: bool = Field(
        True, description="profiles whose minimum is 0 may scale to zero replicas"
    )
    demand_sizing: Literal["p50", "expected"] = Field(
        "p50",
        description="output tokens the planner sizes each request's demand from: p50, the "
        "predicted median (under-sizes a skewed load; attainment pressure adds the rest), or "
        "expected, the mean of a lognormal through p50 and p90 (sized for the mean up front; "
        "over-sizes when the predictor is unsure)",
    )
    demand_level: DemandLevelSpec = Field(
        default_factory=DemandLevelSpec,
        description="a level learned from settled requests that corrects the sized demand "
        "(over-sizing by expected, under-sizing by p50)",
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


# the derived wait bound (policy `scheduling.max_wait_s` unset): this many times the class's TTFT
# p95 target, at least MIN_WAIT_S. A request still waiting there has missed its target many
# times over; the client is better told when to retry, and the queue behind it drains
# (simulator, Azure x10 cold start: docs/benchmark.md, session 15)
WAIT_TARGETS = 20.0
MIN_WAIT_S = 10.0


def wait_bound_s(explicit_s: float | None, ttft_p95_ms: float | None) -> float | None:
    """The longest wait in the ingress queue for a request class (None: no bound): the policy's
    `max_wait_s` when set (0: none), else `WAIT_TARGETS` x its TTFT p95 target (at least
    `MIN_WAIT_S`), else none."""
    if explicit_s is not None:
        return explicit_s if explicit_s > 0 else None
    if ttft_p95_ms is None:
        return None
    return max(MIN_WAIT_S, WAIT_TARGETS * ttft_p95_ms / 1000.0)


class TenantScheduling(Strict):
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
    max_wait_s: float | None = Field(
        None,
        ge=0,
        le=86_400,
        description="seconds one of its requests may wait in the ingress queue; past it, 429 "
        "queue_timeout with Retry-After (0: no bound; unset: the block's)",
    )


class SchedulingSpec(Strict):
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
    fair_headroom: float = Field(
        0.25,
        ge=0,
        le=4,
        description="share of a profile's batch slots a tenant below its fair share may take "
        "beyond them when all are busy, instead of waiting for one to free (0: off)",
    )
    short_work_tokens: int = Field(
        64,
        ge=0,
        le=100_000,
        description="with order 'predicted': a request predicted to need at most this much work "
        "(output tokens + prompt tokens / 16) starts beyond a full batch, up to the engine's "
        "max_num_seqs, instead of waiting for a long answer to end (0: off)",
    )
    max_wait_s: float | None = Field(
        None,
        ge=0,
        le=86_400,
        description="seconds a request may wait in the ingress queue before it leaves with 429 "
        "queue_timeout and Retry-After, so a client is told to come back instead of waiting "
        "past any use (0: no bound; unset: 20x its class's TTFT p95 target, at least 10 s, "
        "and no bound for a class without a TTFT target)",
    )
    tenants: dict[str, TenantScheduling] = Field(
        default_factory=dict,
        description="per-tenant weight, queue bound, deadline order and wait bound",
    )

    def for_tenant(self, name: str) -> TenantScheduling:
        """The tenant's settings with the block's defaults filled in (every field set)."""
        own = self.tenants.get(name) or TenantScheduling()
        return TenantScheduling(
            weight=own.weight if own.weight is not None else self.weight,
            max_queued=own.max_queued if own.max_queued is not None else self.max_queued,
            deadline=own.deadline,
            max_wait_s=own.max_wait_s if own.max_wait_s is not None else self.max_wait_s,
        )
