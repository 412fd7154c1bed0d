"""`explain` (per-tenant summary) and `diff` (what changes for whom) on resolved policies."""

from __future__ import annotations

import pytest
from policy_helpers import load

from orchestrator.policy.diff import ALL_CLASSES, diff_policies, render_diff
from orchestrator.policy.explain import explain_policy, render_text

TWO = """
defaults:
  latency: {tpot_p95_ms: 6}
  quality_floor: {min_tier: medium}
tenants:
  - name: fast
    api_keys: [{env: A}]
  - name: cheap
    api_keys: [{env: B}]
    allowed_profiles: [llama8b-fp8-ngram, gpt-oss-20b-mxfp4]
    latency: {tpot_p95_ms: null}
    budgets: {per_month_usd: 5000}
"""


def _tenant(exp, name):
    return next(t for t in exp.tenants if t.name == name)


def test_cheapest_profile_meeting_the_slo(tmp_path, gpu_catalog):
    exp = explain_policy(load(tmp_path, TWO, gpu_catalog, resolve_secrets=False))
    fast = _tenant(exp, "fast").classes[0]
    assert fast.request_class == "standard"
    # tpot <= 6 ms: eagle3 (4.8), gpt-oss (4.2), dflash (3.0); cheapest per request: gpt-oss
    assert fast.cheapest == "gpt-oss-20b-mxfp4"
    meets = {o.profile for o in fast.options if o.meets_slo_idle}
    assert meets == {"llama8b-bf16-eagle3", "gpt-oss-20b-mxfp4", "qwen3-8b-dflash"}
    # options are sorted by the reference request's cost
    costs = [o.request_cost_usd for o in fast.options]
    assert costs == sorted(costs)
    cheap = _tenant(exp, "cheap").classes[0]
    assert [o.profile for o in cheap.options] == ["gpt-oss-20b-mxfp4", "llama8b-fp8-ngram"]


def test_price_per_1k_and_request_cost(tmp_path, gpu_catalog):
    policy = load(tmp_path, TWO, gpu_catalog, resolve_secrets=False)
    exp = explain_policy(policy)
    opt = next(
        o for o in _tenant(exp, "cheap").classes[0].options if o.profile == "llama8b-fp8-ngram"
    )
    prices = policy.prices["llama8b-fp8-ngram"]
    assert opt.output_usd_per_1k == pytest.approx(prices.output_usd_per_token * 1000)
    assert opt.request_cost_usd == pytest.approx(prices.cost_usd(500, 250))


def test_monthly_cost_of_minimum_replicas_per_tenant(tmp_path, gpu_catalog):
    exp = explain_policy(load(tmp_path, TWO, gpu_catalog, resolve_secrets=False))
    # catalog minimums: eagle3 x1 ($3.90/h), fp8-ngram x1 ($1.80/h)
    assert _tenant(exp, "fast").always_on == {"llama8b-bf16-eagle3": 1, "llama8b-fp8-ngram": 1}
    assert _tenant(exp, "fast").min_replicas_usd_per_month == pytest.approx(5.70 * 730)
    assert _tenant(exp, "cheap").min_replicas_usd_per_month == pytest.approx(1.80 * 730)
    assert exp.cluster_min_usd_per_hour == pytest.approx(5.70)


def test_unreachable_default_tenant_and_unused_always_on(tmp_path, gpu_catalog):
    body = """
    tenants:
      - name: only
        api_keys: [{env: A}]
        allowed_profiles: [gpt-oss-20b-mxfp4]
    """
    exp = explain_policy(load(tmp_path, body, gpu_catalog, resolve_secrets=False))
    default = _tenant(exp, "default")
    assert default.reachable is False and default.classes == []
    assert exp.unused_always_on == ["llama8b-bf16-eagle3", "llama8b-fp8-ngram"]
    text = render_text(exp)
    assert "unreachable" in text
    assert "always-on replicas no tenant may use: llama8b-bf16-eagle3, llama8b-fp8-ngram" in text


def test_no_profile_meets_the_slo_when_loaded(tmp_path, local_catalog):
    # local CPU profiles: 17-20 tok/s alone, 90/8 = 11 tok/s per request at full load
    body = "defaults:\n  latency: {tpot_p95_ms: 70}\n"
    exp = explain_policy(load(tmp_path, body, local_catalog))
    std = exp.tenants[0].classes[0]
    assert std.cheapest is not None
    assert all(o.meets_slo_idle and not o.meets_slo_loaded for o in std.options)
    assert "only when lightly loaded; nothing under full load" in std.note


def test_explain_notes_cost_cap(tmp_path, gpu_catalog):
    body = "defaults:\n  cost_cap_usd: 0.00001\n  actions: {on_cost_cap: [cap_tokens, reject]}\n"
    exp = explain_policy(load(tmp_path, body, gpu_catalog))
    assert "above the $1e-05 cap: actions cap_tokens > reject" in exp.tenants[0].classes[0].note


def test_explain_marks_explicit_prices(tmp_path, gpu_catalog):
    body = "pricing:\n  profiles:\n    gpt-oss-20b-mxfp4: {output_usd_per_1m: 1}\n"
    text = render_text(explain_policy(load(tmp_path, body, gpu_catalog)))
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("gpt-oss-20b-mxfp4"))
    assert "0.001000*" in line


# --- diff -------------------------------------------------------------------------------------


def _diff(tmp_path, catalog, old: str, new: str):
    a = load(tmp_path, old, catalog, resolve_secrets=False)
    b = load(tmp_path, new, catalog, resolve_secrets=False)
    return diff_policies(a, b)


def test_identical_policies_have_no_changes(tmp_path, gpu_catalog):
    assert _diff(tmp_path, gpu_catalog, TWO, TWO) == []
    assert render_diff([]) == "no changes"


def test_change_in_defaults_reaches_every_tenant_that_inherits_it(tmp_path, gpu_catalog):
    new = TWO.replace("tpot_p95_ms: 6", "tpot_p95_ms: 8")
    changes = _diff(tmp_path, gpu_catalog, TWO, new)
    by_tenant = {(c.subject, c.scope, c.field, c.old, c.new) for c in changes}
    assert ("tenant fast", ALL_CLASSES, "latency.tpot_p95_ms", 6.0, 8.0) in by_tenant
    # cheap cleared the SLO itself: unaffected
    assert not any(c.subject == "tenant cheap" for c in changes)
    # 8 ms also admits the 8B eagle3... already in; nothing new becomes eligible
    text = render_diff(changes)
    assert "tenant fast (all classes): latency.tpot_p95_ms 6.0 -> 8.0" in text


def test_class_specific_change_and_eligibility(tmp_path, gpu_catalog):
    new = TWO + "    classes:\n      reasoning:\n        allowed_profiles: [gpt-oss-20b-mxfp4]\n"
    changes = _diff(tmp_path, gpu_catalog, TWO, new)
    text = render_diff(changes)
    assert "tenant cheap (reasoning): allowed_profiles" in text
    assert "tenant cheap (reasoning): eligible_profiles -llama8b-fp8-ngram" in text
    assert all(c.subject == "tenant cheap" and c.scope == "reasoning" for c in changes)


def test_tenants_added_removed_budgets_pricing_scaling(tmp_path, gpu_catalog):
    new = (
        TWO.replace(
            "  - name: fast\n    api_keys: [{env: A}]\n",
            "  - name: faster\n    api_keys: [{env: A}]\n",
        ).replace("per_month_usd: 5000", "per_month_usd: 4000")
        + "pricing:\n  utilization: 0.3\nautoscaling:\n  profiles:\n    gpt-oss-20b-mxfp4: {min_replicas: 1}\n"
    )
    text = render_diff(_diff(tmp_path, gpu_catalog, TWO, new))
    assert "tenant fast: removed" in text
    assert "tenant faster: added" in text
    assert "tenant cheap: budgets.per_month_usd 5000.0 -> 4000.0" in text
    assert "pricing gpt-oss-20b-mxfp4: output_usd_per_1m 0.401235 -> 0.802469" in text
    assert "autoscaling gpt-oss-20b-mxfp4: min_replicas 0 -> 1" in text
    assert "cluster: min_replicas_usd_per_hour 5.7 -> 9.6" in text


def test_key_reference_changes_show_without_secrets(tmp_path, gpu_catalog):
    new = TWO.replace("{env: B}", "{env: B_NEXT}")
    text = render_diff(_diff(tmp_path, gpu_catalog, TWO, new))
    assert (
        text == "tenant cheap: api_keys -env:B +env:B_NEXT"
        or text == "tenant cheap: api_keys +env:B_NEXT -env:B"
    )
