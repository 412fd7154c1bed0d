"""The replica model (orchestrator/replica_model.py): speed, TTFT and capacity under load,
and the catalog adapters (performance figures, prices)."""

from __future__ import annotations

import math

import pytest

from orchestrator import pricing
from orchestrator import replica_model as rm
from orchestrator.catalog import load_catalog
from orchestrator.concepts import LatencySLO
from orchestrator.paths import PROJECT_ROOT
from orchestrator.pricing import TokenPrices
from orchestrator.replica_model import LiveState, ReplicaPerformance
from orchestrator.routing import DEFAULT_KNOBS
from orchestrator.routing.views import profile_view

PERF = ReplicaPerformance(
    single_stream_tokens_per_s=200.0,
    output_tokens_per_s=3200.0,
    prefill_tokens_per_s=40_000.0,
    max_concurrency=64,
    ttft_ms_base=25.0,
    spec_expected_speedup=2.0,
    cold_start_ms=90_000.0,
)


def _timing(in_flight: int, queued: int = 0, replicas: int = 1) -> rm.Timing:
    live = LiveState(
        replicas_running=replicas, requests_in_flight=in_flight, requests_queued=queued
    )
    return rm.timing(PERF, live, 0.0)


def test_alone_a_stream_runs_at_the_measured_single_stream_speed():
    t = _timing(0)
    assert t.active == 1 and t.utilization == 0 and t.queue_wait_ms == 0
    assert rm.spec_speedup(PERF, 1) == 2.0 == t.spec_speedup
    assert math.isclose(rm.stream_tokens_per_s(PERF, 1), 200.0)


def test_at_full_batch_speculation_fades_and_aggregate_is_reached():
    t = _timing(63)
    assert t.active == 64 and t.utilization == 1.0
    assert rm.spec_speedup(PERF, 64) == 1.0
    assert math.isclose(rm.aggregate_tokens_per_s(PERF, 64), 3200.0)
    assert math.isclose(rm.stream_tokens_per_s(PERF, 64) * 64, 3200.0)


def test_speedup_fades_linearly_and_speed_falls_with_load():
    speeds = [rm.stream_tokens_per_s(PERF, n) for n in range(1, 65, 7)]
    assert speeds == sorted(speeds, reverse=True)
    assert math.isclose(rm.spec_speedup(PERF, 32), 1 + 32 / 63)  # u = 31/63


def test_load_is_spread_over_replicas():
    assert _timing(62, replicas=2).active == 32


def test_queue_wait_when_slots_are_full():
    t = _timing(64, queued=9)  # 10 requests beyond the 64 slots, including this one
    expected_s = 10 * DEFAULT_KNOBS.typical_request_output_tokens / 3200.0
    assert math.isclose(t.queue_wait_ms, 1000 * expected_s)
    assert t.active == 64


def test_no_replica_means_cold_start():
    assert _timing(0, replicas=0).queue_wait_ms == 90_000.0


def test_ttft_grows_with_prompt_and_load_and_respects_measurements():
    assert math.isclose(rm.ttft_ms(PERF, 4000, 1), 25 + 100)
    assert math.isclose(rm.ttft_ms(PERF, 4000, 64), 25 + 200)
    measured = LiveState(ttft_scale=3.0)
    t = rm.timing(PERF, measured, 4000)
    assert math.isclose(t.ttft_ms, 3.0 * rm.ttft_ms(PERF, 4000, 1))
    assert math.isclose(t.tpot_ms, rm.tpot_ms(PERF, 1))  # the TTFT scale leaves TPOT alone
    # a scale keeps the load in the model: more in flight still means a later first token
    busy = rm.timing(PERF, LiveState(ttft_scale=3.0, requests_in_flight=63), 4000)
    assert busy.ttft_ms > t.ttft_ms
    assert math.isclose(rm.tpot_ms(PERF, 1), 5.0)


def test_a_tpot_scale_multiplies_the_modelled_tpot_and_nothing_else():
    """A ratio, not a floor: 2 doubles the model's TPOT at any load (a light load stays
    faster than a heavy one); None leaves the model alone."""
    for in_flight in (0, 40):
        plain = rm.timing(PERF, LiveState(requests_in_flight=in_flight), 4000)
        scaled = rm.timing(PERF, LiveState(requests_in_flight=in_flight, tpot_scale=2.0), 4000)
        assert math.isclose(plain.tpot_ms, rm.tpot_ms(PERF, plain.active))
        assert math.isclose(scaled.tpot_ms, 2.0 * plain.tpot_ms)
        assert (scaled.ttft_ms, scaled.queue_wait_ms) == (plain.ttft_ms, plain.queue_wait_ms)
    light = rm.timing(PERF, LiveState(tpot_scale=2.0), 4000)
    heavy = rm.timing(PERF, LiveState(requests_in_flight=63, tpot_scale=2.0), 4000)
    assert light.tpot_ms < heavy.tpot_ms


def test_request_latency_idle_and_loaded():
    idle = rm.request_latency(PERF, 4000, 101, 1)
    assert math.isclose(idle.ttft_ms, 125) and math.isclose(idle.tpot_ms, 5.0)
    assert math.isclose(idle.e2e_ms, 125 + 100 * 5.0)
    loaded = rm.request_latency(PERF, 4000, 101, 64)
    assert math.isclose(loaded.tpot_ms, 1000 / (3200 / 64))
    assert loaded.misses(LatencySLO(tpot_p95_ms=10.0)) == ["tpot_p95_ms"]
    assert idle.misses(LatencySLO(tpot_p95_ms=10.0, ttft_p95_ms=200)) == []


def test_capacity_at_slo_is_the_largest_batch_meeting_it():
    slo = LatencySLO(tpot_p95_ms=10.0)
    cap = rm.capacity_at_slo(PERF, slo, 500, 200)
    assert 1 <= cap.concurrency < 64
    assert rm.tpot_ms(PERF, cap.concurrency) <= 10.0 < rm.tpot_ms(PERF, cap.concurrency + 1)
    assert math.isclose(cap.output_tokens_per_s, rm.aggregate_tokens_per_s(PERF, cap.concurrency))
    assert math.isclose(cap.requests_per_s, cap.concurrency / (cap.latency.e2e_ms / 1000))
    # no SLO: the whole batch; an SLO even one request misses: zero capacity
    assert rm.capacity_at_slo(PERF, LatencySLO(), 500, 200).concurrency == 64
    none = rm.capacity_at_slo(PERF, LatencySLO(ttft_p95_ms=1.0), 500, 200)
    assert none.concurrency == 0 and none.output_tokens_per_s == 0


def test_affordable_tokens_and_deadline_tokens():
    prices = TokenPrices(1e-6, 1e-7, 1e-5)
    assert pricing.affordable_tokens(prices, 0.0, None) == pricing.UNLIMITED_TOKENS
    assert pricing.affordable_tokens(prices, 1e-4, 1e-4 + 30 * 1e-5) == 30
    assert pricing.affordable_tokens(prices, 1e-3, 1e-4) == -1
    free = TokenPrices(0, 0, 0)
    assert pricing.affordable_tokens(free, 0.0, 1.0) == pricing.UNLIMITED_TOKENS
    assert rm.tokens_within_ms(1000, 100, 10) == 91
    assert rm.tokens_within_ms(50, 100, 10) == -1
    assert math.isclose(pricing.input_cost_usd(prices, 1000, 0.25), 750e-6 + 250e-7)


def test_views_price_with_the_one_price_model():
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    prof = catalog.profile("llama8b-fp8-ngram")
    view = profile_view(prof)
    assert view.prices == pricing.token_prices(prof)  # policy defaults: 60 % utilization
    assert math.isclose(view.prices.output_usd_per_token, 1.80 / 3600 / (1900 * 0.6))
    assert view.performance == rm.performance_of(prof)
    assert view.performance.spec_expected_speedup == 1.3
    assert view.family == "llama-3.1-8b-instruct"
    assert view.live.replicas_running == prof.replicas.start
    plain = profile_view(catalog.profile("gpt-oss-20b-mxfp4"))
    assert plain.performance.spec_expected_speedup == 1.0
    assert plain.reasoning_control == "reasoning_effort"


@pytest.mark.parametrize("cap", [1, 2])
def test_tiny_concurrency_does_not_divide_by_zero(cap):
    perf = PERF.model_copy(update={"max_concurrency": cap})
    t = rm.timing(perf, LiveState(requests_in_flight=3), 0.0)
    assert rm.stream_tokens_per_s(perf, t.active) > 0
    assert t.queue_wait_ms > 0


@pytest.mark.parametrize(
    "live",
    [
        LiveState(),
        LiveState(requests_in_flight=30, requests_queued=2),
        LiveState(replicas_running=2, requests_in_flight=200, requests_queued=50),
        LiveState(replicas_running=0),
        LiveState(requests_in_flight=5, ttft_scale=2.5, tpot_scale=1.5),
    ],
)
def test_flat_timing_equals_the_composed_model(live):
    t = rm.timing(PERF, live, 3000.0)
    assert math.isclose(t.ttft_ms, rm.ttft_ms(PERF, 3000.0, t.active) * (live.ttft_scale or 1))
    assert math.isclose(t.tpot_ms, rm.tpot_ms(PERF, t.active) * (live.tpot_scale or 1))
    assert math.isclose(t.spec_speedup, rm.spec_speedup(PERF, t.active))
    assert math.isclose(t.utilization, rm.utilization(PERF, t.active))
