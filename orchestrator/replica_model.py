"""The replica model: how one replica of a profile turns load into TTFT and TPOT.

The one latency model of the project: the router (`routing.decide`), the policy checks and
`policy explain`, the controller's planner and the simulator all call these functions.
Pure arithmetic on plain values: no Ray, no HTTP, no clock.

Model (per replica; a profile's requests are spread evenly over its running replicas):
- `n` = streams decoding together on a replica, 1 <= n <= C (`max_concurrency`);
- plain aggregate decode speed grows linearly from the plain single-stream speed at n=1 to the
  measured aggregate `output_tokens_per_s` at n=C; each stream gets aggregate / n;
- speculative decoding multiplies a stream's speed by s(n) = 1 + (S - 1) * (1 - u) with
  u = (n - 1) / (C - 1): the full expected speed-up S alone, fading linearly to none at full
  batch, where decoding is compute-bound and drafted tokens cost as much as they save;
- TTFT = ttft_ms_base + uncached prompt / prefill speed, slowed by (1 + prefill_load_slowdown * u);
- requests beyond C per replica wait; the wait drains at the aggregate rate, each request ahead
  taking `typical_request_output_tokens` tokens; a profile with no running replica adds its
  cold start;
- measured TTFT/TPOT enter as ratios to the model's figures for the same requests
  (`LiveState.ttft_scale`, `tpot_scale`), never as floors: a latency seen under a past load
  would otherwise hide today's lighter one.

Invariants: for n=1 a stream decodes at `single_stream_tokens_per_s`; at n=C the replica
decodes `output_tokens_per_s` in total; TTFT and TPOT never decrease as n grows (for figures
where the aggregate at C is at least the single-stream speed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.concepts import LatencySLO

if TYPE_CHECKING:
    from orchestrator.catalog.schema import Profile

PREFILL_LOAD_SLOWDOWN = 1.0
TYPICAL_REQUEST_OUTPUT_TOKENS = 256
DEFAULT_COLD_START_MS = 120_000.0


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReplicaPerformance(_Frozen):
    """Capacity figures of one replica (from the catalog's `performance` and `speculative`).

    `single_stream_tokens_per_s` is the speed of one request alone as a benchmark measures it,
    i.e. WITH speculative decoding when the profile has it; `spec_expected_speedup` (1.0 = no
    speculation) lets the model recover the plain speed and fade the gain under load.
    """

    single_stream_tokens_per_s: float = Field(gt=0)
    output_tokens_per_s: float = Field(gt=0, description="aggregate at max_concurrency")
    prefill_tokens_per_s: float = Field(gt=0)
    max_concurrency: int = Field(ge=1)
    ttft_ms_base: float = Field(0.0, ge=0)
    spec_expected_speedup: float = Field(1.0, gt=0)
    cold_start_ms: float = Field(
        DEFAULT_COLD_START_MS, ge=0, description="wait when no replica runs"
    )


class LiveState(_Frozen):
    """What the serving layer knows about a profile right now (all replicas together)."""

    replicas_running: int = Field(1, ge=0)
    requests_queued: int = Field(0, ge=0)
    requests_in_flight: int = Field(0, ge=0)
    ttft_scale: float | None = Field(
        None,
        gt=0,
        description="recent observed TTFT / this model's TTFT for the same requests at the load "
        "they met (1: as modelled; fresh only). A ratio, not a floor: a TTFT seen under a past "
        "load says how far the model is off, not what the next request meets at today's load",
    )
    tpot_scale: float | None = Field(
        None,
        gt=0,
        description="recent observed TPOT / this model's TPOT for the same requests at the load "
        "they met (1: as modelled; fresh only). A ratio, not a floor, as `ttft_scale`",
    )
    healthy: bool = True
    start_wait_ms: float | None = Field(
        None,
        ge=0,
        description="with no replica running: ms until a starting one serves (None: none "
        "starting, a new request waits the profile's whole cold start)",
    )
    cached_prompt_share: float | None = Field(
        None,
        ge=0,
        le=1,
        description="expected prefix-cache hits of this request's prompt on this profile "
        "(None: the request's own `cached_prompt_share`)",
    )
    opening_usd: float = Field(
        0.0,
        ge=0,
        description="price per request of opening the profile (no replica running or "
        "starting): `pricing.opening_cost_usd`; 0 while one runs or starts",
    )


def performance_of(
    profile: Profile, *, cold_start_ms: float = DEFAULT_COLD_START_MS
) -> ReplicaPerformance:
    """A catalog profile's replica figures (the catalog is the one source of them)."""
    perf = profile.performance
    spec = profile.speculative
    return ReplicaPerformance(
        single_stream_tokens_per_s=perf.single_stream_tokens_per_s,
        output_tokens_per_s=perf.output_tokens_per_s,
        prefill_tokens_per_s=perf.prefill_tokens_per_s,
        max_concurrency=perf.max_concurrency,
        ttft_ms_base=perf.ttft_ms_base,
        spec_expected_speedup=spec.expected_speedup if spec is not None else 1.0,
        cold_start_ms=cold_start_ms,
    )


# ---------------------------------------------------------------- one replica at batch n


def utilization(perf: ReplicaPerformance, n: float) -> float:
    """u in [0, 1]: where n streams sit between alone (0) and full batch (1)."""
    cap = perf.max_concurrency
    if cap == 1:
        return 0.0
    return min(1.0, max(0.0, (n - 1) / (cap - 1)))


def spec_speedup(perf: ReplicaPerformance, n: float) -> float:
    """Effective speculative speed-up at batch n: S alone, fading linearly to 1 at full batch."""
    return 1.0 + (perf.spec_expected_speedup - 1.0) * (1.0 - utilization(perf, n))


def aggregate_tokens_per_s(perf: ReplicaPerformance, n: float) -> float:
    """Tokens per second the replica decodes in total with n streams (speculation included)."""
    n = min(max(n, 1.0), float(perf.max_concurrency))
    return stream_tokens_per_s(perf, n) * n


def stream_tokens_per_s(perf: ReplicaPerformance, n: float) -> float:
    """Decode speed of one stream when n streams share the replica (speculation included)."""
    cap = perf.max_concurrency
    n = min(max(n, 1.0), float(cap))
    plain_single = perf.single_stream_tokens_per_s / perf.spec_expected_speedup
    if cap == 1:
        plain_aggregate = plain_single
    else:
        plain_aggregate = plain_single + (perf.output_tokens_per_s - plain_single) * (n - 1) / (
            cap - 1
        )
    return plain_aggregate / n * spec_speedup(perf, n)


def tpot_ms(perf: ReplicaPerformance, n: float) -> float:
    """Time per output token of one stream at batch n."""
    return 1000.0 / stream_tokens_per_s(perf, n)


def ttft_ms(
    perf: ReplicaPerformance,
    uncached_prompt_tokens: float,
    n: float,
    *,
    prefill_load_slowdown: float = PREFILL_LOAD_SLOWDOWN,
) -> float:
    """Time to first token once admitted at batch n (no queue wait)."""
    prefill_ms = 1000.0 * uncached_prompt_tokens / perf.prefill_tokens_per_s
    return perf.ttft_ms_base + prefill_ms * (1.0 + prefill_load_slowdown * utilization(perf, n))


@dataclass(frozen=True, slots=True)
class RequestLatency:
    """Latency of one request of a given size at a given batch (queue wait not included)."""

    ttft_ms: float
    tpot_ms: float
    e2e_ms: float

    def misses(self, slo: LatencySLO) -> list[str]:
        """Names of the SLO fields this latency breaks (empty = meets the SLO)."""
        out = []
        if slo.ttft_p95_ms is not None and self.ttft_ms > slo.ttft_p95_ms:
            out.append("ttft_p95_ms")
        if slo.tpot_p95_ms is not None and self.tpot_ms > slo.tpot_p95_ms:
            out.append("tpot_p95_ms")
        if slo.e2e_p95_ms is not None and self.e2e_ms > slo.e2e_p95_ms:
            out.append("e2e_p95_ms")
        return out

    def value(self, slo_field: str) -> float:
        return {
            "ttft_p95_ms": self.ttft_ms,
            "tpot_p95_ms": self.tpot_ms,
            "e2e_p95_ms": self.e2e_ms,
        }[slo_field]


def request_latency(
    perf: ReplicaPerformance,
    prompt_tokens: float,
    output_tokens: int,
    n: float = 1,
    *,
    prefill_load_slowdown: float = PREFILL_LOAD_SLOWDOWN,
) -> RequestLatency:
    """TTFT, TPOT and end-to-end latency of one request at batch n (1 = idle replica,
    `max_concurrency` = fully loaded)."""
    first = ttft_ms(perf, prompt_tokens, n, prefill_load_slowdown=prefill_load_slowdown)
    per_token = tpot_ms(perf, n)
    return RequestLatency(first, per_token, first + per_token * max(output_tokens - 1, 0))


# ---------------------------------------------------------------- capacity at an SLO


@dataclass(frozen=True, slots=True)
class ReplicaCapacity:
    """The most one replica carries while a typical request still meets the SLO.

    `concurrency` = 0 means not even one request alone meets it (the other figures are then
    those of n=1, for reporting). `requests_per_s` follows from Little's law: n requests in
    flight, each taking `latency.e2e_ms`.
    """

    concurrency: int
    output_tokens_per_s: float
    requests_per_s: float
    latency: RequestLatency


def capacity_at_slo(
    perf: ReplicaPerformance,
    slo: LatencySLO,
    prompt_tokens: float,
    output_tokens: int,
    *,
    prefill_load_slowdown: float = PREFILL_LOAD_SLOWDOWN,
) -> ReplicaCapacity:
    """Largest batch n <= max_concurrency at which a request of this size meets `slo`, and the
    replica's throughput there (what the planner divides demand by)."""
    best: tuple[int, RequestLatency] | None = None
    for n in range(1, perf.max_concurrency + 1):
        lat = request_latency(
            perf, prompt_tokens, output_tokens, n, prefill_load_slowdown=prefill_load_slowdown
        )
        if not lat.misses(slo):
            best = (n, lat)
    if best is None:
        lat = request_latency(
            perf, prompt_tokens, output_tokens, 1, prefill_load_slowdown=prefill_load_slowdown
        )
        return ReplicaCapacity(0, 0.0, 0.0, lat)
    n, lat = best
    return ReplicaCapacity(
        concurrency=n,
        output_tokens_per_s=aggregate_tokens_per_s(perf, n),
        requests_per_s=n / (lat.e2e_ms / 1000.0) if lat.e2e_ms > 0 else math.inf,
        latency=lat,
    )


# ---------------------------------------------------------------- a profile under live load


@dataclass(frozen=True, slots=True)
class Timing:
    """Where a new request lands on a profile under its live load."""

    active: float  # n: streams decoding together once the request runs (1 <= n <= C)
    utilization: float
    queue_wait_ms: float
    ttft_ms: float  # once admitted; queue wait NOT included
    tpot_ms: float
    spec_speedup: float


def timing(
    perf: ReplicaPerformance,
    live: LiveState,
    uncached_prompt_tokens: float,
    *,
    prefill_load_slowdown: float = PREFILL_LOAD_SLOWDOWN,
    typical_request_output_tokens: int = TYPICAL_REQUEST_OUTPUT_TOKENS,
) -> Timing:
    """Queue wait, TTFT, TPOT and speculative speed-up for one new request on a profile.

    Hot path (the router calls it for every profile on every request): the model above,
    flattened into one pass; `tests/test_replica_model.py` holds it equal to the parts.
    """
    cap = perf.max_concurrency
    running = live.replicas_running
    ahead = (live.requests_in_flight + live.requests_queued) / (running if running > 0 else 1)
    wait_ms = 0.0
    if running == 0:
        wait_ms = perf.cold_start_ms if live.start_wait_ms is None else live.start_wait_ms
    excess = ahead + 1 - cap
    if excess > 0:
        wait_ms += 1000.0 * excess * typical_request_output_tokens / perf.output_tokens_per_s
    n = min(float(cap), ahead + 1)
    s = perf.spec_expected_speedup
    plain_single = perf.single_stream_tokens_per_s / s
    if cap == 1:
        util = 0.0
        aggregate = plain_single
    else:
        util = min(1.0, max(0.0, (n - 1) / (cap - 1)))
        aggregate = plain_single + (perf.output_tokens_per_s - plain_single) * (n - 1) / (cap - 1)
    speedup = 1.0 + (s - 1.0) * (1.0 - util)
    tpot = 1000.0 * n / (aggregate * speedup)
    if live.tpot_scale is not None:
        tpot *= live.tpot_scale
    prefill_ms = 1000.0 * uncached_prompt_tokens / perf.prefill_tokens_per_s
    ttft = perf.ttft_ms_base + prefill_ms * (1.0 + prefill_load_slowdown * util)
    scale = live.ttft_scale
    if scale is not None:
        wait_ms *= scale
        ttft *= scale
    return Timing(n, util, wait_ms, ttft, tpot, speedup)


def tokens_within_ms(budget_ms: float, first_token_ms: float, per_token_ms: float) -> int:
    """Most tokens whose last one arrives within `budget_ms` (-1 if not even the first)."""
    if budget_ms < first_token_ms:
        return -1
    return 1 + math.floor((budget_ms - first_token_ms) / per_token_ms)


__all__ = [
    "DEFAULT_COLD_START_MS",
    "PREFILL_LOAD_SLOWDOWN",
    "TYPICAL_REQUEST_OUTPUT_TOKENS",
    "LiveState",
    "ReplicaCapacity",
    "ReplicaPerformance",
    "RequestLatency",
    "Timing",
    "aggregate_tokens_per_s",
    "capacity_at_slo",
    "performance_of",
    "request_latency",
    "spec_speedup",
    "stream_tokens_per_s",
    "timing",
    "tokens_within_ms",
    "ttft_ms",
    "tpot_ms",
    "utilization",
]
