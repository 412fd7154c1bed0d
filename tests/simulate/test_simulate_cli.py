"""`orchestrator simulate` on a JSONL trace: --json shape, --report files, bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from orchestrator.cli import main
from orchestrator.paths import PROJECT_ROOT
from orchestrator.simulate.traffic import load_jsonl, rescale

from .conftest import POLICY_TEXT, make_requests

GPU = str(PROJECT_ROOT / "deployments" / "gpu-example.yaml")


def _trace(tmp_path, n=60):
    path = tmp_path / "trace.jsonl"
    with path.open("w") as f:
        for r in make_requests(n=n):
            f.write(
                json.dumps(
                    {
                        "arrival_s": r.arrival_s,
                        "messages": r.body["messages"],
                        "output_tokens": r.output_tokens,
                        "tier": r.tier,
                    }
                )
                + "\n"
            )
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_TEXT)
    return str(path), str(policy)


def _simulate(trace: str, policy: str, *args: str) -> int:
    """`orchestrator simulate` of `trace` on the GPU catalog under `policy`; its exit code."""
    return main(["simulate", "--trace", trace, "--deployments", GPU, "--policy", policy, *args])


def test_json_and_report(tmp_path, capsys):
    trace, policy = _trace(tmp_path)
    report = tmp_path / "rep"
    rc = _simulate(trace, policy, "--baselines", "static,queue", "--json", "--report", str(report))
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["policies"]) == {"ours", "oracle", "ours-constant", "static", "queue"}
    assert out["policies"]["static"]["requests"] == 60
    for f in ("report.md", "result.json", "cost_vs_slo.png", "ttft.png", "replicas_ours.png"):
        assert (report / f).stat().st_size > 0, f
    text = (report / "report.md").read_text()
    assert "| ours |" in text and "| SLO att. | judged |" in text
    assert 0 <= out["policies"]["ours"]["slo_attainment_judged"] <= 1


def test_bad_baseline_is_an_error(tmp_path, capsys):
    trace, policy = _trace(tmp_path, n=5)
    rc = _simulate(trace, policy, "--baselines", "magic")
    assert rc == 2
    assert "unknown baseline" in capsys.readouterr().err


def test_jsonl_loader_and_rate_scaling(tmp_path):
    trace, _ = _trace(tmp_path, n=40)
    reqs = load_jsonl(trace)
    assert len(reqs) == 40 and reqs[0].arrival_s == 0.0
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(reqs, reqs[1:], strict=False))
    assert len(rescale(reqs, rate_scale=3.0)) == 120
    half = rescale(reqs, duration_s=reqs[20].arrival_s)
    assert len(half) == 20


def test_limits_scale_with_the_rate(catalog, policy):
    from orchestrator.scheduling import SchedulingSettings
    from orchestrator.simulate.limits import scale_limits

    cat, pol = scale_limits(catalog, policy, 10)
    for p in catalog.profiles:
        assert cat.profile(p.name).replicas.max == p.replicas.max * 10
        assert pol.scaling[p.name].min_replicas == policy.scaling[p.name].min_replicas
    # per-tenant bounds are limits too: in flight (the built-in 256 included) and queued
    for name, tenant in policy.tenants.items():
        scaled = pol.tenants[name]
        assert scaled.bounds.max_concurrent_requests == 10 * tenant.bounds.max_concurrent_requests
        assert scaled.bounds.max_prompt_tokens == tenant.bounds.max_prompt_tokens  # not a limit
        before = SchedulingSettings.of(policy).share(name).max_queued
        assert SchedulingSettings.of(pol).share(name).max_queued == min(100_000, 10 * before)
    assert scale_limits(catalog, policy, 1.0) == (catalog, policy)


@pytest.mark.parametrize(
    ("speed", "says"),
    [("0", "must be > 0"), ("nope=2", "no profile nope"), ("fast", "expected X or NAME=X")],
)
def test_bad_speed_is_an_error(tmp_path, capsys, speed, says):
    trace, policy = _trace(tmp_path, n=5)
    rc = _simulate(trace, policy, "--speed", speed)
    assert rc == 2
    assert says in capsys.readouterr().err


def test_floor_baselines_honour_allowed_profiles_and_floors(catalog, predictor):
    from orchestrator.policy import load_policy_text
    from orchestrator.simulate import simulate

    from .conftest import make_requests

    text = """\
apiVersion: orchestrator/v1
kind: Policy
unknown_keys: default_tenant
default_tenant:
  name: free
  quality_floor: {min_tier: medium}
  allowed_profiles: [llama8b-fp8-ngram]
tenants:
  - name: pro
    api_keys: [{env: PRO_KEY}]
    quality_floor: {min_tier: large}
"""
    policy = load_policy_text(text, "policy.yaml", catalog, resolve_secrets=False)
    reqs = make_requests(n=200, rate=2.0, seed=3)
    res = simulate(catalog, policy, reqs, predictor=predictor,
                   policies=("static", "static-floor", "routellm-floor"))  # fmt: skip
    names = [p.name for p in catalog.profiles]
    tiers = {p.name: p.quality.tier for p in catalog.profiles}
    for pol in ("static-floor", "routellm-floor"):
        out = res.policies[pol].outcome
        for req, i in zip(reqs, out.profile, strict=True):
            if i < 0:
                continue
            if req.tenant == "free":
                assert names[i] == "llama8b-fp8-ngram"
            else:
                assert tiers[names[i]] in ("large", "frontier")
    plain = res.policies["static"].metrics["served_by_profile"]
    assert list(plain) == ["deepseek-r1-nvfp4-mtp"]  # plain: one strong profile for all
    assert any("ignore tenants' allowed_profiles" in n for n in res.notes)


def test_predictor_artifact_is_what_ours_reads(tmp_path, capsys):
    import shutil

    from orchestrator.predict.artifact import DEFAULT_ARTIFACT_DIR

    trace, policy = _trace(tmp_path, n=40)
    longer = tmp_path / "longer"
    shutil.copytree(DEFAULT_ARTIFACT_DIR, longer)
    meta = json.loads((longer / "meta.json").read_text())
    meta["p50_shift"] += 2.0  # every p50 e^2 = 7.4x longer
    (longer / "meta.json").write_text(json.dumps(meta))
    errors = []
    for extra in ((), ("--predictor-artifact", str(longer))):
        assert _simulate(trace, policy, "--baselines", "none", "--json", *extra) == 0
        errors.append(json.loads(capsys.readouterr().out)["prediction_error"])
    assert errors[1]["p50_median_relative_error"] > errors[0]["p50_median_relative_error"] + 1
    assert _simulate(trace, policy, "--predictor-artifact", str(tmp_path)) == 2
    assert "not a predictor artifact" in capsys.readouterr().err


def test_floor_baselines_send_a_long_prompt_to_an_eligible_profile_that_holds_it(
    catalog, predictor
):
    """A prompt longer than the tenant's cheapest profile holds is served on the next cheapest
    eligible profile with the context for it, not refused; longer than every eligible
    profile holds, it is refused for context."""
    from dataclasses import replace

    from orchestrator.policy import load_policy_text
    from orchestrator.simulate import simulate

    from .conftest import make_requests

    text = """\
apiVersion: orchestrator/v1
kind: Policy
unknown_keys: default_tenant
default_tenant:
  name: free
  quality_floor: {min_tier: medium}
  allowed_profiles: [llama8b-fp8-ngram, qwen3-235b-fp8]
"""
    policy = load_policy_text(text, "policy.yaml", catalog, resolve_secrets=False)
    reqs = [replace(r, tenant="free") for r in make_requests(n=60, rate=1.0, seed=4)]
    reqs[10] = replace(reqs[10], prompt_tokens=50_000)  # over the 8B's 32k, within the 235B's
    reqs[20] = replace(reqs[20], prompt_tokens=200_000)  # over every profile's context
    res = simulate(catalog, policy, reqs, predictor=predictor,
                   policies=("static-floor", "queue-floor", "dynamo-floor"))  # fmt: skip
    names = [p.name for p in catalog.profiles]
    for pol in ("static-floor", "queue-floor", "dynamo-floor"):
        out = res.policies[pol].outcome
        assert names[out.profile[10]] == "qwen3-235b-fp8", pol
        assert out.reject_reason[20] == "context_length_exceeded", pol
        short = [names[i] for k, i in enumerate(out.profile) if k not in (10, 20)]
        assert set(short) == {"llama8b-fp8-ngram"}, pol
    assert any("prompts over 32768 tokens: qwen3-235b-fp8" in n for n in res.notes)


def test_routellm_shared_keeps_one_strong_pool_where_the_floor_form_keeps_two(catalog, predictor):
    from orchestrator.policy import load_policy_text
    from orchestrator.simulate import simulate

    from .conftest import make_requests

    text = """\
apiVersion: orchestrator/v1
kind: Policy
unknown_keys: default_tenant
default_tenant:
  name: free
  reasoning: {allowed: false}
tenants:
  - name: pro
    api_keys: [{env: PRO_KEY}]
"""
    policy = load_policy_text(text, "policy.yaml", catalog, resolve_secrets=False)
    reqs = make_requests(n=200, rate=2.0, seed=3)
    reqs = [replace(r, tenant="free" if i % 2 else "pro") for i, r in enumerate(reqs)]
    res = simulate(catalog, policy, reqs, predictor=predictor, routellm_threshold=0.99,
                   policies=("routellm-floor", "routellm-shared"))  # fmt: skip
    frontier = {p.name for p in catalog.profiles if p.quality.tier == "frontier"}

    def strong(name: str) -> set[str]:
        served = res.policies[name].metrics["served_by_profile"]
        return {p for p, n in served.items() if n and p in frontier}

    # the reasoning model is cheaper per token, but the tenant without reasoning cannot use it
    assert strong("routellm-floor") == {"qwen3-235b-fp8", "deepseek-r1-nvfp4-mtp"}
    assert strong("routellm-shared") == {"qwen3-235b-fp8"}


def test_a_policy_refusal_keeps_its_status_and_is_left_out_of_judged_attainment(catalog, predictor):
    """A prompt whose least cost is over the tenant's hard cost cap is refused with the server's
    402; the judged attainment (the server's rule) leaves it out, the share of all counts it."""
    from dataclasses import replace

    from orchestrator.policy import load_policy_text
    from orchestrator.simulate import simulate

    from .conftest import make_requests

    text = """\
apiVersion: orchestrator/v1
kind: Policy
unknown_keys: default_tenant
default_tenant:
  name: free
  cost_cap_usd: 0.003
  allowed_profiles: [llama8b-fp8-ngram, qwen3-235b-fp8]
"""
    policy = load_policy_text(text, "policy.yaml", catalog, resolve_secrets=False)
    reqs = [replace(r, tenant="free") for r in make_requests(n=40, rate=1.0, seed=4)]
    reqs[10] = replace(reqs[10], prompt_tokens=100_000)  # only the 235B holds it, over the cap
    res = simulate(catalog, policy, reqs, predictor=predictor, policies=("ours",))
    run = res.policies["ours"]
    assert run.outcome.reject_reason[10] == "cost_cap_exceeded"
    assert run.outcome.reject_status[10] == 402
    m = run.metrics
    assert m["slo_judged"] == m["requests"] - m["rejected_by_reason"]["cost_cap_exceeded"]
    assert m["slo_attainment_judged"] > m["slo_attainment"]
