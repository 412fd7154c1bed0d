"""Typed inputs, state and outputs of the planning core (`plan`).

Invariants:
- every model is frozen and forbids unknown fields; `ScalingTickState` and `ScalingDecision` are
  JSON-serialisable with `model_dump(mode="json")`;
- time only ever comes in as `Observation.now_s` (seconds on any monotonic clock: wall time in
  the server, virtual time in the simulator); the core never reads a clock;
- rates are per second and cover ALL replicas of a profile; latencies are milliseconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Percentiles(_Frozen):
    """Measured latency percentiles over the last window (None = not measured)."""

    p50: float | None = Field(None, ge=0)
    p90: float | None = Field(None, ge=0)
    p95: float | None = Field(None, ge=0)


class ProfileObservation(_Frozen):
    """What the controller sees of one profile over the last window."""

    arrival_rate_rps: float = Field(0.0, ge=0, description="requests routed here per second")
    input_tokens_per_s: float = Field(0.0, ge=0, description="prompt tokens routed here / s")
    output_tokens_per_s: float = Field(
        0.0, ge=0, description="expected output tokens routed here / s (planning/expected.py)"
    )
    refused_rps: float = Field(
        0.0,
        ge=0,
        description="requests/s refused for capacity (saturated, no replica) that the router "
        "meant for this profile (routing.refusal); planned for like routed load",
    )
    refused_input_tokens_per_s: float = Field(0.0, ge=0, description="their prompt tokens / s")
    refused_output_tokens_per_s: float = Field(
        0.0, ge=0, description="their expected output tokens / s"
    )
    requests_running: float = Field(0.0, ge=0, description="decoding now, all replicas")
    requests_waiting: float = Field(0.0, ge=0, description="queued (engine + Serve handles)")
    kv_cache_usage: float | None = Field(None, ge=0, le=1, description="mean over replicas")
    ttft_ms: Percentiles = Percentiles()
    tpot_ms: Percentiles = Percentiles()
    slo_judged: float = Field(
        0.0, ge=0, description="requests served here lately judged against their own targets"
    )
    slo_within: float = Field(
        0.0, ge=0, description="of those, within their tenant's TTFT and TPOT targets"
    )
    replicas_current: int = Field(0, ge=0, description="replicas that exist (any state)")
    replicas_ready: int = Field(0, ge=0, description="replicas serving")
    replicas_starting: int = Field(0, ge=0, description="replicas not serving yet")
    spend_usd_per_hour: float = Field(0.0, ge=0, description="token spend rate (ledger)")


class Observation(_Frozen):
    """One planning tick's input."""

    now_s: float = Field(description="seconds on the caller's monotonic clock")
    profiles: dict[str, ProfileObservation] = Field(
        default_factory=dict, description="per profile name; a missing profile = idle, 0 replicas"
    )
    resources_available: dict[str, float] = Field(
        default_factory=dict,
        description="units replicas may use in total, by resource: an accelerator type "
        "(e.g. 'H100': 16) or 'CPU'; a resource not listed is unlimited",
    )


DownDelayRestart = Literal["after_up_delay", "at_target", "on_scale_up"]


class PlannerKnobs(_Frozen):
    """Internal tunables (the user-facing ones live in the policy's `autoscaling` section)."""

    level_time_s: float = Field(30.0, gt=0, description="Holt level smoothing time constant")
    trend_time_s: float = Field(200.0, gt=0, description="Holt trend smoothing time constant")
    trend_damping_s: float = Field(
        300.0, gt=0, description="a trend is extrapolated at most ~this far (damped trend)"
    )
    delivery_weight: float = Field(
        0.2, gt=0, le=1, description="EWMA weight of one delivered-speed sample"
    )
    delivery_min: float = Field(0.25, gt=0, description="lowest delivery factor")
    delivery_max: float = Field(2.0, gt=0, description="highest delivery factor")
    delivery_covers_prefill: bool = Field(
        True,
        description="the delivery factor (learned from TPOT) scales prefill capacity too: one "
        "replica's hardware runs both, and TTFT mixes queue wait and the prompt mix into any "
        "prefill-only figure (False: decode only, the planner before session 13)",
    )
    waiting_pressure_per_replica: float = Field(
        1.0, ge=0, description="queued requests per ready replica that count as pressure"
    )
    kv_pressure_usage: float = Field(
        0.95, gt=0, le=1, description="KV-cache use that, with requests waiting, is pressure"
    )
    attainment_goal: float = Field(
        0.95,
        gt=0,
        le=1,
        description="a profile whose requests meet their targets less often "
        "than this is under pressure (the targets are p95s)",
    )
    attainment_min_judged: float = Field(
        10.0, ge=1, description="fewer judged requests: attainment is not read"
    )
    down_delay_restart: DownDelayRestart = Field(
        "after_up_delay",
        description="what restarts a waiting scale-down's delay (planning/hysteresis.py): "
        "after_up_delay, an ideal back at or above the target for the up delay (a shorter "
        "rise is noise both ways); at_target, any tick whose ideal is at or above the target "
        "(before session 16); on_scale_up, only a scale-up applied (measured, not kept)",
    )
    solver_time_limit_s: float = Field(2.0, gt=0)
    use_solver: bool = Field(True, description="False = greedy only (for tests)")


class HoltState(_Frozen):
    """Damped-trend Holt filter of one demand series (units per second, slope per second)."""

    level: float = 0.0
    slope: float = 0.0
    t_s: float | None = None


class FamilyState(_Frozen):
    input_tps: HoltState = HoltState()
    output_tps: HoltState = HoltState()
    rps: HoltState = HoltState()


class ProfileState(_Frozen):
    target: int = Field(ge=0)
    above_since_s: float | None = None  # the ideal target has been above `target` since
    below_since_s: float | None = None  # ... below `target` since
    back_since_s: float | None = None  # ... back at or above it while a scale-down waits, since
    delivery: float = Field(1.0, gt=0, description="delivered / modelled decode speed (EWMA)")
    reason: str = ""
    replicas_seen: int = Field(
        0, ge=0, description="replicas ready or starting when this target was set"
    )


class ScalingTickState(_Frozen):
    """Everything `plan` carries from one tick to the next. An empty state is a valid start
    (a restarted controller): targets then start from the observed current replicas."""

    families: dict[str, FamilyState] = Field(default_factory=dict)
    profiles: dict[str, ProfileState] = Field(default_factory=dict)
    last_now_s: float | None = None


Limit = Literal[
    "min_replicas",
    "max_replicas",
    "cost_ceiling",
    "resources",
    "up_delay",
    "down_delay",
    "zero_delay",
    "n_minus_1",
    "slo_infeasible",
]


class ProfileTarget(_Frozen):
    """The controller's decision for one profile."""

    profile: str
    family: str
    current: int = Field(ge=0, description="the previous target (or observed replicas)")
    target: int = Field(ge=0)
    ideal: int = Field(ge=0, description="cheapest mix for the forecast, before hysteresis")
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=0)
    capacity_output_tps: float = Field(
        ge=0, description="per replica, at the SLO, delivery-corrected"
    )
    delivery: float = Field(gt=0)
    assigned_share: float = Field(
        0.0, ge=0, le=1, description="share of its family's forecast load the mix gives it"
    )
    assigned_output_tps: float = Field(ge=0, description="forecast load the mix gives it")
    utilisation: float = Field(ge=0, description="observed load / capacity of ready replicas")
    cost_per_hour_usd: float = Field(ge=0, description="target x $/replica-hour")
    pressure: bool = False
    limited_by: tuple[Limit, ...] = ()
    reason: str


class UnplacedLoad(_Frozen):
    """Forecast load of one model family the cheapest mix cannot place, and why."""

    family: str
    share: float = Field(ge=0, le=1, description="share of the family's forecast load")
    output_tps: float = Field(ge=0, description="forecast output tokens/s left unplaced")
    replicas: float = Field(
        ge=0, description="replicas it would take on the family's most efficient profile"
    )
    limited_by: tuple[Limit, ...] = Field(
        (), description="what stops more replicas: resources, max_replicas, cost_ceiling"
    )
    detail: str = Field("", description="the binding limits, e.g. 'L4 4 of 4 in use'")

    def message(self) -> str:
        why = f": {self.detail}" if self.detail else ""
        return (
            f"demand unplaced: {self.family} {self.share:.0%} of its forecast "
            f"({self.output_tps:,.0f} out tok/s, ~{self.replicas:.1f} more replicas){why}"
        )


class ScalingDecision(_Frozen):
    """The output of one tick: a target per profile, with reasons."""

    now_s: float
    targets: dict[str, ProfileTarget]
    cost_per_hour_usd: float = Field(ge=0, description="replica cost at the targets")
    ceiling_usd_per_hour: float | None = None
    ceiling_binding: bool = Field(False, description="the ceiling stopped a needed replica")
    unserved_share: dict[str, float] = Field(
        default_factory=dict, description="per family: share of forecast load not covered"
    )
    unplaced: dict[str, UnplacedLoad] = Field(
        default_factory=dict,
        description="per family with load left unplaced: how much and the binding limit",
    )
    prefer_cheaper: bool = Field(
        False, description="router hint: prefer cheaper profiles (the ceiling binds)"
    )
    spend_usd_per_hour: float = Field(0.0, ge=0, description="observed token spend (ledger)")
    solver: Literal["highs", "greedy", "exact"] = Field(
        "highs",
        description="highs = the MILP; exact = closed form (one profile per family, nothing "
        "cut); greedy = the fallback",
    )
    alerts: tuple[str, ...] = ()

    def target_of(self, profile: str) -> int:
        return self.targets[profile].target
