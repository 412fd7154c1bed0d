"""Refusals for capacity recorded in the ingress's demand meter and read back by the planner."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.concepts import LatencySLO
from orchestrator.paths import PROJECT_ROOT
from orchestrator.planning.expected import expected_of, expected_output_tokens
from orchestrator.replica_model import LiveState
from orchestrator.routing import TenantRules, catalog_views, decide
from orchestrator.routing.refusal import OVERLOAD_CODE
from orchestrator.signals.meters import DemandMeter, demand_key
from orchestrator.signals.refusals import record_refusal
from orchestrator.signals.serve_contexts import demand_from_ingress, profile_observation
from tests.routing.routing_helpers import EASY, LLAMA, SATURATED

GPU = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")


def views(**live: LiveState):
    return catalog_views(GPU, {p.name: live.get(p.name, LiveState()) for p in GPU.profiles})


def test_meter_exports_refused_rates_by_weight():
    meter = DemandMeter(window_s=10.0)
    meter.refused("a", 100, 50, now=0.0)
    for i in range(5):
        meter.refused("a", 200, 40, now=5.0 + i, weight=0.5)
    out = meter.export(now=9.0)
    assert out[demand_key("a", "refused_rps")] == pytest.approx(0.35)  # (1 + 5 x 0.5) / 10 s
    assert out[demand_key("a", "refused_in_tps")] == pytest.approx((100 + 500) / 10)
    assert out[demand_key("a", "refused_out_tps")] == pytest.approx((50 + 100) / 10)
    assert demand_key("a", "rps") not in out  # nothing was routed
    assert meter.export(now=100.0)[demand_key("a", "refused_rps")] == 0.0


def test_observation_carries_the_refused_demand():
    prof = GPU.profiles[0]
    ingress = SimpleNamespace(aggregated_metrics={
        demand_key(prof.name, "refused_rps"): {"r1": 1.5, "r2": 0.5},
        demand_key(prof.name, "refused_in_tps"): {"r1": 300.0},
        demand_key(prof.name, "refused_out_tps"): {"r1": 90.0}})  # fmt: skip
    ctx = SimpleNamespace(current_num_replicas=1, target_num_replicas=1, total_queued_requests=0,
                          aggregated_metrics={})  # fmt: skip
    o = profile_observation(ctx, prof, demand_from_ingress(ingress)[prof.name])
    assert (o.refused_rps, o.refused_input_tokens_per_s, o.refused_output_tokens_per_s) == (
        2.0,
        300.0,
        90.0,
    )
    assert o.arrival_rate_rps == 0.0


def test_record_refusal_counts_capacity_not_policy():
    full = SATURATED
    v = views(**{"llama8b-fp8-ngram": full, "llama8b-bf16-eagle3": full})
    slo = TenantRules(slo=LatencySLO(ttft_p95_ms=2000), on_slo_unmeetable=("reject",))
    meter = DemandMeter()
    shed = decide(LLAMA, EASY, slo, v)
    record_refusal(meter, shed.rejection.code, shed, v, set(), 200, (120, 120), now=1.0)
    broke = decide(LLAMA, EASY, TenantRules(remaining_budget_usd=0.0), v)
    record_refusal(meter, broke.rejection.code, broke, v, set(), 200, (120, 120), now=1.0)
    record_refusal(meter, "over_max_concurrent_requests", None, v, set(), 200, (120, 120), now=1.0)
    assert set(meter.refused_rates(1.0)) == {"llama8b-fp8-ngram"}
    assert meter.refused_rates(1.0)["llama8b-fp8-ngram"][0] == pytest.approx(1 / 30)


def test_record_refusal_splits_an_overload_over_running_profiles():
    v = views(**{"llama8b-fp8-ngram": LiveState(replicas_running=2)})
    meter = DemandMeter(window_s=1.0)
    eligible = {"llama8b-fp8-ngram", "qwen3-8b-awq"}
    record_refusal(meter, OVERLOAD_CODE, None, v, eligible, 200, (120, 120), now=0.0)
    rates = meter.refused_rates(0.0)
    assert sum(r[0] for r in rates.values()) == pytest.approx(1.0)
    assert set(rates) == eligible  # both run (LiveState defaults to one running replica)


def test_record_refusal_records_expected_tokens():
    """What the planner sizes from: the refused request's expected answer (the lognormal of
    its p50 and p90, `planning.expected`), not its median."""
    v = views(**{"llama8b-fp8-ngram": LiveState(replicas_running=2)})
    meter = DemandMeter(window_s=1.0)
    record_refusal(meter, OVERLOAD_CODE, None, v, {"llama8b-fp8-ngram"}, 200, (120, 480), 0.0,
                   "expected")  # fmt: skip
    out = meter.refused_rates(0.0)["llama8b-fp8-ngram"][2]
    assert out == pytest.approx(expected_output_tokens(120, 480)) and out > 1.5 * 120
    median = DemandMeter(window_s=1.0)  # the default sizing: the median
    record_refusal(median, OVERLOAD_CODE, None, v, {"llama8b-fp8-ngram"}, 200, (120, 480), 0.0)
    assert median.refused_rates(0.0)["llama8b-fp8-ngram"][2] == pytest.approx(120)
    full = SATURATED
    v = views(**{"llama8b-fp8-ngram": full, "llama8b-bf16-eagle3": full})
    slo = TenantRules(slo=LatencySLO(ttft_p95_ms=2000), on_slo_unmeetable=("reject",))
    shed = decide(LLAMA, EASY, slo, v)
    meter = DemandMeter(window_s=1.0)
    record_refusal(meter, shed.rejection.code, shed, v, set(), 200, (1, 1), 1.0, "expected")
    (cand,) = [c for c in shed.candidates if c.profile == "llama8b-fp8-ngram"]
    assert meter.refused_rates(1.0)["llama8b-fp8-ngram"][2] == pytest.approx(
        expected_of(cand.estimate)
    )
