"""Layer merging: built-in < defaults < defaults.classes < tenant < tenant.classes."""

from __future__ import annotations

from policy_helpers import load

from orchestrator.concepts import QUERY_CLASSES

LAYERED = """
defaults:
  cost_cap_usd: 0.10
  max_tokens: 4000
  latency: {ttft_p95_ms: 800, e2e_p95_ms: 30000}
  actions: {on_cost_cap: [cap_tokens, reject]}
  classes:
    reasoning:
      cost_cap_usd: 0.50
      max_tokens: 8000
tenants:
  - name: acme
    api_keys: [{env: K}]
    max_tokens: 2000
    latency: {e2e_p95_ms: 20000}
    classes:
      long_form:
        latency: {ttft_p95_ms: null}
  - name: plain
    api_keys: [{env: K2}]
"""


def test_builtin_defaults_apply_when_nothing_is_set(tmp_path, gpu_catalog):
    lim = load(tmp_path, "", gpu_catalog).default_tenant.limits()
    assert lim.cost_target_usd is None and lim.cost_cap_usd is None
    assert lim.actions.on_cost_cap == ["downgrade", "cap_tokens", "reject"]
    assert lim.actions.on_budget_exhausted == ["reject"]
    assert lim.reasoning.allowed is True and lim.reasoning.max_reasoning_tokens is None
    assert lim.allowed_profiles is None and lim.denied_profiles == ()
    assert lim.latency.ttft_p95_ms is None


def test_precedence_chain(tmp_path, gpu_catalog):
    policy = load(tmp_path, LAYERED, gpu_catalog, resolve_secrets=False)
    acme, plain = policy.tenant("acme"), policy.tenant("plain")
    # defaults apply to a tenant that sets nothing
    assert plain.limits("standard").cost_cap_usd == 0.10
    assert plain.limits("standard").max_tokens == 4000
    # defaults.classes beat defaults
    assert plain.limits("reasoning").cost_cap_usd == 0.50
    assert plain.limits("reasoning").max_tokens == 8000
    # the tenant's own setting beats defaults.classes
    assert acme.limits("reasoning").max_tokens == 2000
    assert acme.limits("reasoning").cost_cap_usd == 0.50  # not set by the tenant
    # nested blocks merge field by field
    assert acme.limits("standard").latency.ttft_p95_ms == 800
    assert acme.limits("standard").latency.e2e_p95_ms == 20000
    # explicit null clears an inherited value, in that class only
    assert acme.limits("long_form").latency.ttft_p95_ms is None
    assert acme.limits("long_form").latency.e2e_p95_ms == 20000
    # unset fields of a nested block keep the built-in values
    assert acme.limits().actions.on_cost_cap == ["cap_tokens", "reject"]
    assert acme.limits().actions.on_budget_exhausted == ["reject"]


def test_every_tenant_has_every_class(tmp_path, gpu_catalog):
    policy = load(tmp_path, LAYERED, gpu_catalog, resolve_secrets=False)
    for tenant in policy.tenants.values():
        assert set(tenant.classes) == set(QUERY_CLASSES)
        assert set(tenant.eligible) == set(QUERY_CLASSES)


def test_lists_are_replaced_not_merged(tmp_path, gpu_catalog):
    body = """
    defaults:
      allowed_profiles: [llama8b-fp8-ngram, gpt-oss-20b-mxfp4]
      classes:
        reasoning:
          allowed_profiles: [gpt-oss-20b-mxfp4]
    """
    t = load(tmp_path, body, gpu_catalog).default_tenant
    assert t.eligible_profiles("standard") == ("llama8b-fp8-ngram", "gpt-oss-20b-mxfp4")
    assert t.eligible_profiles("reasoning") == ("gpt-oss-20b-mxfp4",)


def test_eligibility_applies_denied_floor_and_disabled_profiles(tmp_path, gpu_catalog):
    body = """
    defaults:
      denied_profiles: [llama8b-bf16-eagle3, qwen3-8b-awq]
      quality_floor: {min_score: 30}
    autoscaling:
      profiles:
        qwen3-235b-fp8: {max_replicas: 0}
        llama70b-gptq-draft: {max_replicas: 0}
    """
    t = load(tmp_path, body, gpu_catalog).default_tenant
    # fp8-ngram scores 24 (< 30), eagle3 and awq denied, 235b and 70b disabled
    expected = ("deepseek-r1-nvfp4-mtp", "gpt-oss-20b-mxfp4", "qwen3-8b-dflash")
    assert tuple(sorted(t.eligible_profiles())) == expected
    assert tuple(sorted(t.all_eligible_profiles())) == expected


def test_tier_floor(tmp_path, gpu_catalog):
    t = load(
        tmp_path, "defaults:\n  quality_floor: {min_tier: large}\n", gpu_catalog
    ).default_tenant
    assert sorted(t.eligible_profiles()) == [
        "deepseek-r1-nvfp4-mtp",
        "gpt-oss-20b-mxfp4",
        "llama70b-gptq-draft",
        "qwen3-235b-fp8",
    ]


def test_budgets_merge_defaults_and_tenant(tmp_path, gpu_catalog):
    body = """
    defaults:
      budgets: {per_day_usd: 500, per_month_usd: 9000}
    tenants:
      - name: acme
        api_keys: [{env: K}]
        budgets: {per_month_usd: 12000}
    """
    policy = load(tmp_path, body, gpu_catalog, resolve_secrets=False)
    b = policy.tenant("acme").budgets
    assert (b.per_hour_usd, b.per_day_usd, b.per_month_usd) == (None, 500, 12000)


def test_scaling_bounds(tmp_path, gpu_catalog):
    body = """
    autoscaling:
      headroom: 0.3
      scale_to_zero: false
      profiles:
        gpt-oss-20b-mxfp4: {max_replicas: 2, headroom: 0.5}
        qwen3-235b-fp8: {max_replicas: 0}
    """
    s = load(tmp_path, body, gpu_catalog).scaling
    # catalog bounds by default; scale_to_zero: false lifts a catalog min of 0 to 1
    assert (s["llama8b-bf16-eagle3"].min_replicas, s["llama8b-bf16-eagle3"].max_replicas) == (1, 8)
    assert (s["gpt-oss-20b-mxfp4"].min_replicas, s["gpt-oss-20b-mxfp4"].max_replicas) == (1, 2)
    assert s["gpt-oss-20b-mxfp4"].headroom == 0.5
    assert s["llama8b-bf16-eagle3"].headroom == 0.3
    assert s["qwen3-8b-dflash"].min_replicas == 1
    # max 0 disables a profile (min follows)
    assert (s["qwen3-235b-fp8"].min_replicas, s["qwen3-235b-fp8"].max_replicas) == (0, 0)
    assert not any(b.scale_to_zero for b in s.values())


def test_scale_to_zero_only_where_the_minimum_is_zero(tmp_path, gpu_catalog):
    s = load(tmp_path, "", gpu_catalog).scaling
    assert s["gpt-oss-20b-mxfp4"].scale_to_zero is True
    assert s["llama8b-bf16-eagle3"].scale_to_zero is False  # catalog min 1
