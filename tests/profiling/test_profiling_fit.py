"""Sweep plan, figure fitting and catalog rewriting: pure, no engine."""

from __future__ import annotations

import pytest
import yaml

from orchestrator.catalog import load_catalog
from orchestrator.catalog.schema import Catalog, Performance
from orchestrator.cli import main
from orchestrator.paths import PROJECT_ROOT
from orchestrator.profiling import RequestTiming, StepResult, SweepStep, fit_performance, sweep_plan
from orchestrator.profiling.fit import FitError, choose_concurrency
from orchestrator.profiling.measure import replace_performance

GPU = PROJECT_ROOT / "deployments" / "gpu-example.yaml"
LOCAL = PROJECT_ROOT / "deployments" / "local.yaml"


def test_plan_respects_the_profiles_limits():
    profile = load_catalog(LOCAL).profiles[0]  # max_num_seqs 16, max_model_len 2048
    plan = sweep_plan(profile)
    decode = [s.batch for s in plan if s.kind == "decode"]
    assert decode == [1, 2, 4, 8, 16]
    assert all(s.prompt_tokens + s.output_tokens <= profile.max_model_len for s in plan)
    assert {s.kind for s in plan} == {"decode", "prefill", "prefix"}
    quick = sweep_plan(profile, quick=True)
    assert len(quick) < len(plan) and [s.batch for s in quick if s.kind == "decode"] == [1, 2]


# a synthetic engine: 20 tok/s alone, linear to 100 tok/s at 8 streams, flat beyond;
# TTFT = 50 ms + prompt / 2000 tok/s; a cached prefix token costs 10 % of a prefilled one
SINGLE, CAP, AGG, BASE_MS, PREFILL = 20.0, 8, 100.0, 50.0, 2000.0


def _aggregate(n: int) -> float:
    return AGG if n >= CAP else SINGLE + (AGG - SINGLE) * (n - 1) / (CAP - 1)


def _decode(batch: int, out: int = 33) -> StepResult:
    tpot = batch / _aggregate(batch)
    reqs = tuple(RequestTiming(32, out, 0.1, 0.1 + tpot * (out - 1)) for _ in range(batch))
    return StepResult(SweepStep("decode", batch, 32, out), reqs)


def _ttft(prompt: int, cached: int = 0) -> float:
    return (BASE_MS + 1000.0 * ((prompt - cached) + 0.1 * cached) / PREFILL) / 1000.0


def _synthetic() -> list[StepResult]:
    results = [_decode(b) for b in (1, 2, 4, 8, 16, 32)]
    for p in (64, 256, 1024):
        t = _ttft(p)
        results.append(
            StepResult(SweepStep("prefill", 1, p, 1, repeats=2), (RequestTiming(p, 1, t, t),) * 2)
        )
    t = _ttft(1024, cached=960)
    step = SweepStep("prefix", 1, 1024, 1, repeats=1, suffix_tokens=64)
    results.append(StepResult(step, (RequestTiming(1024, 1, t, t, cached_tokens=960),)))
    return results


def test_fit_recovers_the_load_model():
    report = fit_performance(_synthetic())
    perf = report.performance
    assert perf.single_stream_tokens_per_s == pytest.approx(SINGLE, rel=1e-3)
    assert perf.max_concurrency == CAP
    assert perf.output_tokens_per_s == pytest.approx(AGG, rel=1e-3)
    assert perf.prefill_tokens_per_s == pytest.approx(PREFILL, rel=1e-3)
    assert perf.ttft_ms_base == pytest.approx(BASE_MS, abs=0.1)
    assert report.prefill_r2 == pytest.approx(1.0)
    assert report.cached_prefix_cost == pytest.approx(0.1, abs=1e-6)
    assert report.cached_tokens_seen == 960 and not report.notes


def test_concurrency_is_the_knee_not_the_largest_batch():
    # still rising at 16 but by 2 % only: the knee at 8 fits better than a line to 16
    curve = {1: 20.0, 2: 31.0, 4: 54.0, 8: 100.0, 16: 102.0}
    assert choose_concurrency(curve) == 8
    assert choose_concurrency({1: 20.0, 2: 40.0, 4: 80.0}) == 4  # linear all the way


def test_fit_needs_a_lone_decode_and_two_prompt_lengths():
    with pytest.raises(FitError, match="batch size 1"):
        fit_performance([_decode(2)])
    lone = StepResult(SweepStep("prefill", 1, 64, 1), (RequestTiming(64, 1, 0.1, 0.1),))
    with pytest.raises(FitError, match="two prompt lengths"):
        fit_performance([_decode(1), lone])


def test_replace_performance_edits_only_that_profile():
    text = GPU.read_text()
    new = Performance(
        output_tokens_per_s=1234.5,
        single_stream_tokens_per_s=55,
        prefill_tokens_per_s=9999,
        max_concurrency=12,
        ttft_ms_base=7.5,
    )
    out = replace_performance(text, "qwen3-8b-awq", new)
    before, after = load_catalog(GPU), Catalog.model_validate(yaml.safe_load(out))
    assert after.profile("qwen3-8b-awq").performance == new
    for p in before.profiles:
        if p.name != "qwen3-8b-awq":
            assert after.profile(p.name) == p
    assert out.startswith(text.split("apiVersion")[0])  # header comments survive
    with pytest.raises(KeyError):
        replace_performance(text, "ghost", new)


def test_cli_names_the_catalog_profiles_for_an_unknown_one(capsys):
    assert main(["profile", "measure", "--deployments", str(LOCAL), "--profile", "ghost"]) == 1
    err = capsys.readouterr().err
    assert "no profile 'ghost'" in err and "smollm2-cpu" in err
