"""The load, speed and price arithmetic behind the estimates, and the catalog adapter."""

from __future__ import annotations

import math

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.routing import DEFAULT_KNOBS, LiveState, ProfilePerformance, ProfilePrices
from orchestrator.routing import estimate as est
from orchestrator.routing.views import prices_for, profile_view

PERF = ProfilePerformance(
    single_stream_tokens_per_s=200.0,
    output_tokens_per_s=3200.0,
    prefill_tokens_per_s=40_000.0,
    max_concurrency=64,
    ttft_ms_base=25.0,
    spec_expected_speedup=2.0,
    cold_start_ms=90_000.0,
)


def _point(in_flight: int, queued: int = 0, replicas: int = 1) -> est.LoadPoint:
    live = LiveState(
        replicas_running=replicas, requests_in_flight=in_flight, requests_queued=queued
    )
    return est.load_point(PERF, live, DEFAULT_KNOBS)


def test_alone_a_stream_runs_at_the_measured_single_stream_speed():
    p = _point(0)
    assert p.active == 1 and p.utilization == 0 and p.queue_wait_ms == 0
    assert est.spec_speedup(PERF, p.utilization) == 2.0
    assert math.isclose(est.stream_tokens_per_s(PERF, p), 200.0)


def test_at_full_batch_speculation_fades_and_aggregate_is_reached():
    p = _point(63)
    assert p.active == 64 and p.utilization == 1.0
    assert est.spec_speedup(PERF, 1.0) == 1.0
    assert math.isclose(est.stream_tokens_per_s(PERF, p) * 64, 3200.0)


def test_speedup_fades_linearly_and_speed_falls_with_load():
    speeds = [est.stream_tokens_per_s(PERF, _point(n)) for n in range(0, 64, 7)]
    assert speeds == sorted(speeds, reverse=True)
    half = _point(31)  # n = 32 -> u = 31/63
    assert math.isclose(est.spec_speedup(PERF, half.utilization), 1 + 32 / 63)


def test_load_is_spread_over_replicas():
    assert _point(62, replicas=2).active == 32


def test_queue_wait_when_slots_are_full():
    p = _point(64, queued=9)  # 10 requests beyond the 64 slots, including this one
    expected_s = 10 * DEFAULT_KNOBS.typical_request_output_tokens / 3200.0
    assert math.isclose(p.queue_wait_ms, 1000 * expected_s)
    assert p.active == 64


def test_no_replica_means_cold_start():
    p = _point(0, replicas=0)
    assert p.queue_wait_ms == 90_000.0


def test_ttft_grows_with_prompt_and_load_and_respects_measurements():
    idle, busy = _point(0), _point(63)
    live = LiveState()
    assert math.isclose(est.ttft_ms(PERF, live, idle, 4000, DEFAULT_KNOBS), 25 + 100)
    assert math.isclose(est.ttft_ms(PERF, live, busy, 4000, DEFAULT_KNOBS), 25 + 200)
    measured = LiveState(recent_ttft_ms=900.0, recent_tpot_ms=40.0)
    assert est.ttft_ms(PERF, measured, idle, 4000, DEFAULT_KNOBS) == 900.0
    assert est.tpot_ms(PERF, measured, idle) == 40.0
    assert math.isclose(est.tpot_ms(PERF, live, idle), 5.0)


def test_affordable_tokens_and_deadline_tokens():
    prices = ProfilePrices(input=1e-6, cached_input=1e-7, output=1e-5)
    assert est.affordable_tokens(prices, 0.0, None) == est.UNLIMITED_TOKENS
    assert est.affordable_tokens(prices, 1e-4, 1e-4 + 30 * 1e-5) == 30
    assert est.affordable_tokens(prices, 1e-3, 1e-4) == -1
    free = ProfilePrices(input=0, cached_input=0, output=0)
    assert est.affordable_tokens(free, 0.0, 1.0) == est.UNLIMITED_TOKENS
    assert est.tokens_within_ms(1000, 100, 10) == 91
    assert est.tokens_within_ms(50, 100, 10) == -1
    assert math.isclose(est.input_cost_usd(prices, 1000, 0.25), 750e-6 + 250e-7)


def test_catalog_prices_are_hourly_price_over_capacity():
    catalog = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    prof = catalog.profile("llama8b-fp8-ngram")
    prices = prices_for(prof)
    assert math.isclose(prices.output, 1.80 / 3600 / 1900)
    assert math.isclose(prices.input, 1.80 / 3600 / 18000)
    assert math.isclose(prices.cached_input, prices.input * 0.1)
    view = profile_view(prof)
    assert view.performance.spec_expected_speedup == 1.3
    assert view.family == "llama-3.1-8b-instruct"
    assert view.live.replicas_running == 1  # replicas.min when no initial
    plain = profile_view(catalog.profile("gpt-oss-20b-mxfp4"))
    assert plain.performance.spec_expected_speedup == 1.0
    assert plain.live.replicas_running == 0
    assert plain.reasoning_control == "reasoning_effort"


@pytest.mark.parametrize("cap", [1, 2])
def test_tiny_concurrency_does_not_divide_by_zero(cap):
    perf = PERF.model_copy(update={"max_concurrency": cap})
    p = est.load_point(perf, LiveState(requests_in_flight=3), DEFAULT_KNOBS)
    assert est.stream_tokens_per_s(perf, p) > 0
    assert p.queue_wait_ms > 0


@pytest.mark.parametrize(
    "live",
    [
        LiveState(),
        LiveState(requests_in_flight=30, requests_queued=2),
        LiveState(replicas_running=2, requests_in_flight=200, requests_queued=50),
        LiveState(replicas_running=0),
        LiveState(requests_in_flight=5, recent_ttft_ms=999.0, recent_tpot_ms=77.0),
    ],
)
def test_flat_timing_equals_the_composed_model(live):
    point = est.load_point(PERF, live, DEFAULT_KNOBS)
    wait, ttft, tpot, speedup = est.timing(PERF, live, 3000.0, DEFAULT_KNOBS)
    assert math.isclose(wait, point.queue_wait_ms)
    assert math.isclose(ttft, est.ttft_ms(PERF, live, point, 3000.0, DEFAULT_KNOBS))
    assert math.isclose(tpot, est.tpot_ms(PERF, live, point))
    assert math.isclose(speedup, est.spec_speedup(PERF, point.utilization))
