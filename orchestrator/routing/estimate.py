"""Cost and latency of one request on one profile under its current load (pure arithmetic).

Load model (per replica; the profile's requests are spread evenly over running replicas):
- `n` = requests active on a replica once this one joins, capped at `max_concurrency` (C);
- plain aggregate decode speed grows linearly from the plain single-stream speed at n=1 to the
  measured aggregate `output_tokens_per_s` at n=C; each stream gets aggregate / n;
- speculative decoding multiplies a stream's speed by s(n) = 1 + (S - 1) * (1 - u) with
  u = (n - 1) / (C - 1): the full expected speed-up S alone, fading linearly to none at full
  batch, where decoding is compute-bound and drafted tokens cost as much as they save;
- requests beyond C per replica wait; the wait drains at the aggregate rate, each request ahead
  taking `typical_request_output_tokens` tokens; a profile with no running replica adds its
  cold start;
- TTFT = base + uncached prompt / prefill speed, slowed by (1 + prefill_load_slowdown * u);
- measured recent TTFT/TPOT, when given, are a floor for the modelled ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.routing.types import LiveState, ProfilePerformance, ProfilePrices, RoutingKnobs


@dataclass(slots=True)
class LoadPoint:
    """Per-replica load seen by a new request."""

    active: float  # n: streams decoding together once the request runs (1 <= n <= C)
    utilization: float  # u in [0, 1]
    queue_wait_ms: float


def load_point(perf: ProfilePerformance, live: LiveState, knobs: RoutingKnobs) -> LoadPoint:
    """Where a new request lands on the profile's load curve."""
    cap = perf.max_concurrency
    replicas = max(1, live.replicas_running)
    ahead = (live.requests_in_flight + live.requests_queued) / replicas  # per replica
    wait_ms = perf.cold_start_ms if live.replicas_running == 0 else 0.0
    excess = ahead + 1 - cap
    if excess > 0:
        drain_s = excess * knobs.typical_request_output_tokens / perf.output_tokens_per_s
        wait_ms += 1000.0 * drain_s
    active = min(float(cap), ahead + 1)
    util = 0.0 if cap == 1 else (active - 1) / (cap - 1)
    return LoadPoint(active=active, utilization=min(1.0, max(0.0, util)), queue_wait_ms=wait_ms)


def spec_speedup(perf: ProfilePerformance, utilization: float) -> float:
    """Effective speculative speed-up: S alone, fading linearly to 1 at full batch."""
    s = perf.spec_expected_speedup
    return 1.0 + (s - 1.0) * (1.0 - utilization)


def stream_tokens_per_s(perf: ProfilePerformance, point: LoadPoint) -> float:
    """Decode speed of one stream at the given load, speculation included."""
    plain_single = perf.single_stream_tokens_per_s / perf.spec_expected_speedup
    cap = perf.max_concurrency
    n = point.active
    if cap == 1:
        aggregate = plain_single
    else:
        aggregate = plain_single + (perf.output_tokens_per_s - plain_single) * (n - 1) / (cap - 1)
    return aggregate / n * spec_speedup(perf, point.utilization)


def tpot_ms(perf: ProfilePerformance, live: LiveState, point: LoadPoint) -> float:
    modelled = 1000.0 / stream_tokens_per_s(perf, point)
    return max(modelled, live.recent_tpot_ms or 0.0)


def ttft_ms(
    perf: ProfilePerformance,
    live: LiveState,
    point: LoadPoint,
    uncached_prompt_tokens: float,
    knobs: RoutingKnobs,
) -> float:
    """Time to first token once admitted (queue wait NOT included)."""
    prefill_ms = 1000.0 * uncached_prompt_tokens / perf.prefill_tokens_per_s
    modelled = perf.ttft_ms_base + prefill_ms * (
        1.0 + knobs.prefill_load_slowdown * point.utilization
    )
    return max(modelled, live.recent_ttft_ms or 0.0)


def timing(
    perf: ProfilePerformance, live: LiveState, uncached_prompt_tokens: float, knobs: RoutingKnobs
) -> tuple[float, float, float, float]:
    """(queue wait ms, TTFT ms without the wait, TPOT ms, effective spec speed-up) in one pass.

    The same model as `load_point`, `ttft_ms`, `tpot_ms` and `spec_speedup` together (the
    tests hold them equal), flattened because `decide` calls it for every profile.
    """
    cap = perf.max_concurrency
    running = live.replicas_running
    ahead = (live.requests_in_flight + live.requests_queued) / (running if running > 0 else 1)
    wait_ms = perf.cold_start_ms if running == 0 else 0.0
    excess = ahead + 1 - cap
    if excess > 0:
        wait_ms += 1000.0 * excess * knobs.typical_request_output_tokens / perf.output_tokens_per_s
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
    recent = live.recent_tpot_ms
    if recent is not None and recent > tpot:
        tpot = recent
    prefill_ms = 1000.0 * uncached_prompt_tokens / perf.prefill_tokens_per_s
    ttft = perf.ttft_ms_base + prefill_ms * (1.0 + knobs.prefill_load_slowdown * util)
    recent = live.recent_ttft_ms
    if recent is not None and recent > ttft:
        ttft = recent
    return wait_ms, ttft, tpot, speedup


def input_cost_usd(prices: ProfilePrices, prompt_tokens: int, cached_share: float) -> float:
    cached = prompt_tokens * cached_share
    return (prompt_tokens - cached) * prices.input + cached * prices.cached_input


def affordable_tokens(prices: ProfilePrices, input_cost: float, limit_usd: float | None) -> int:
    """Most generated tokens a USD limit pays for after the prompt (a huge int if unlimited)."""
    if limit_usd is None:
        return _UNLIMITED
    left = limit_usd - input_cost
    if left < 0:
        return -1
    if prices.output <= 0:
        return _UNLIMITED
    # a tiny epsilon keeps exact fits (limit == cost) from rounding one token short
    return min(_UNLIMITED, math.floor(left / prices.output * (1 + 1e-9)))


def tokens_within_ms(budget_ms: float, first_token_ms: float, per_token_ms: float) -> int:
    """Most tokens whose last one arrives within `budget_ms` (-1 if not even the first)."""
    if budget_ms < first_token_ms:
        return -1
    return 1 + math.floor((budget_ms - first_token_ms) / per_token_ms)


_UNLIMITED = 1 << 40
UNLIMITED_TOKENS = _UNLIMITED
