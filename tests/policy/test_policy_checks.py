"""Cross-checks of a policy against its catalog (gpu-example unless stated)."""

from __future__ import annotations

import textwrap

import pytest
from policy_helpers import issues_of, load, marked_line, only_issue

KNOWN = "catalog profiles: deepseek-r1-nvfp4-mtp, gpt-oss-20b-mxfp4"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            "defaults:\n  allowed_profiles: [llama8b-fp8-ngram, ghost]  # <-\n",
            "defaults.allowed_profiles[1]",
        ),
        ("defaults:\n  denied_profiles:\n    - ghost  # <-\n", "defaults.denied_profiles[0]"),
        (
            "defaults:\n  classes:\n    reasoning:\n      allowed_profiles: [ghost]  # <-\n",
            "defaults.classes.reasoning.allowed_profiles[0]",
        ),
        (
            "tenants:\n  - name: a\n    api_keys: [{env: K}]\n    denied_profiles: [ghost]  # <-\n",
            "tenants[0].denied_profiles[0]",
        ),
        (
            "pricing:\n  profiles:\n    ghost: {output_usd_per_1m: 1}  # <-\n",
            "pricing.profiles.ghost",
        ),
        (
            "autoscaling:\n  profiles:\n    ghost: {max_replicas: 1}  # <-\n",
            "autoscaling.profiles.ghost",
        ),
    ],
)
def test_unknown_profile_names(tmp_path, gpu_catalog, body, field):
    issues, text = issues_of(tmp_path, body, gpu_catalog, resolve_secrets=False)
    issue = issues[0]  # an allow-list of unknown names also leaves no profile: a 2nd issue
    assert all("unknown profile" in i.reason or "no profile is left" in i.reason for i in issues)
    assert (issue.field, issue.line) == (field, marked_line(text))
    assert issue.reason.startswith("unknown profile 'ghost'")
    assert KNOWN in issue.reason


def test_duplicate_and_reserved_tenant_names(tmp_path, gpu_catalog):
    body = """
    tenants:
      - name: acme
        api_keys: [{env: A}]
      - name: acme
        api_keys: [{env: B}]
      - name: default
        api_keys: [{env: C}]
    """
    issues, _ = issues_of(tmp_path, body, gpu_catalog, resolve_secrets=False)
    assert [(i.field, i.line) for i in issues] == [("tenants[1].name", 6), ("tenants[2].name", 8)]
    assert "already used by tenants[0]" in issues[0].reason
    assert "already used by default_tenant" in issues[1].reason


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (
            "autoscaling:\n  profiles:\n    qwen3-235b-fp8:\n      max_replicas: 3  # <-\n",
            "autoscaling.profiles.qwen3-235b-fp8.max_replicas",
            "3 is above the catalog's replicas.max (2)",
        ),
        (
            "autoscaling:\n  profiles:\n    qwen3-235b-fp8:\n      min_replicas: 5  # <-\n",
            "autoscaling.profiles.qwen3-235b-fp8.min_replicas",
            "5 is above the catalog's replicas.max (2)",
        ),
        (
            "autoscaling:\n  profiles:\n    llama8b-bf16-eagle3:\n"
            "      min_replicas: 1\n      scale_to_zero: true  # <-\n",
            "autoscaling.profiles.llama8b-bf16-eagle3.scale_to_zero",
            "min_replicas 1 keeps this profile from scaling to zero",
        ),
        (
            "autoscaling:\n  scale_to_zero: false\n  profiles:\n    gpt-oss-20b-mxfp4:\n      min_replicas: 0  # <-\n",
            "autoscaling.profiles.gpt-oss-20b-mxfp4.min_replicas",
            "contradicts autoscaling.scale_to_zero: false",
        ),
        (
            "autoscaling:\n  max_cost_per_hour_usd: 5  # <-\n",
            "autoscaling.max_cost_per_hour_usd",
            "$5/hour is below the $5.70/hour the minimum replicas cost",
        ),
    ],
)
def test_scaling_against_catalog(tmp_path, gpu_catalog, body, field, reason):
    issue, line = only_issue(tmp_path, body, gpu_catalog)
    assert (issue.field, issue.line) == (field, line)
    assert reason in issue.reason


def test_disabling_a_profile_is_not_scaling_it_to_zero(tmp_path, gpu_catalog):
    body = """
    autoscaling:
      scale_to_zero: false
      profiles:
        qwen3-235b-fp8: {min_replicas: 0, max_replicas: 0}
    """
    policy = load(tmp_path, body, gpu_catalog)
    assert policy.scaling["qwen3-235b-fp8"].max_replicas == 0
    assert "qwen3-235b-fp8" not in policy.default_tenant.eligible_profiles()


def test_ceiling_counts_policy_minimums(tmp_path, gpu_catalog):
    # 1 eagle3 + 1 fp8 (catalog) + 2 gpt-oss (policy) = 3.9 + 1.8 + 7.8 = 13.5 $/h
    body = """
    autoscaling:
      max_cost_per_hour_usd: 13  # <-
      profiles:
        gpt-oss-20b-mxfp4: {min_replicas: 2}
    """
    issue, line = only_issue(tmp_path, body, gpu_catalog)
    assert issue.line == line
    assert "$13.50/hour" in issue.reason
    assert "gpt-oss-20b-mxfp4 x2" in issue.reason
    body_ok = body.replace("13  # <-", "13.5")
    assert load(tmp_path, body_ok, gpu_catalog).min_replicas_cost_per_hour() == pytest.approx(13.5)


def test_cost_target_above_cap_reported_where_the_target_is_set(tmp_path, gpu_catalog):
    body = """
    defaults:
      cost_target_usd: 0.02  # <-
    tenants:
      - name: acme
        api_keys: [{env: A}]
        cost_cap_usd: 0.01
      - name: globex
        api_keys: [{env: B}]
    """
    issue, line = only_issue(tmp_path, body, gpu_catalog, resolve_secrets=False)
    assert (issue.field, issue.line) == ("defaults.cost_target_usd", line)
    assert "cost target $0.02 is above the cost cap $0.01" in issue.reason
    assert "tenant 'acme' (all classes)" in issue.reason
    assert "globex" not in issue.reason


def test_no_eligible_profile(tmp_path, gpu_catalog):
    body = """
    defaults:
      quality_floor: {min_tier: frontier}  # <-
      denied_profiles: [qwen3-235b-fp8, deepseek-r1-nvfp4-mtp]
    """
    issues, text = issues_of(tmp_path, body, gpu_catalog)
    [issue] = issues
    assert issue.field == "defaults.quality_floor.min_tier"
    assert "no profile is left" in issue.reason


def test_quality_score_floor_excludes_unscored_profiles(tmp_path, local_catalog):
    issue, line = only_issue(
        tmp_path, "defaults:\n  quality_floor: {min_score: 1}  # <-\n", local_catalog
    )
    assert issue.field == "defaults.quality_floor.min_score"
    assert "no profile is left" in issue.reason


@pytest.mark.parametrize(
    ("slo", "field", "best"),
    [
        # fastest TTFT for 500 prompt tokens: eagle3 25 ms + 500/40000 s = 37.5 ms
        ("ttft_p95_ms: 30", "ttft_p95_ms", "llama8b-bf16-eagle3 38 ms"),
        # fastest decode: qwen3-8b-dflash at 330 tok/s = 3.0 ms per token
        ("tpot_p95_ms: 2", "tpot_p95_ms", "qwen3-8b-dflash 3 ms"),
    ],
)
def test_latency_slo_no_profile_can_meet(tmp_path, gpu_catalog, slo, field, best):
    issue, line = only_issue(tmp_path, f"defaults:\n  latency: {{{slo}}}  # <-\n", gpu_catalog)
    assert (issue.field, issue.line) == (f"defaults.latency.{field}", line)
    assert "cannot be met by any eligible profile" in issue.reason
    assert f"standard: best {best}" in issue.reason
    assert "tenant 'default'" in issue.reason


def test_e2e_slo_uses_reference_request_of_the_class(tmp_path, gpu_catalog):
    # dflash: 30 + 500/38000 s + 3999 * 1000/330 ms = ~12.2 s for a reasoning request;
    # standard (250 tokens) needs only ~0.8 s, so only the reasoning class fails
    body = """
    defaults:
      latency: {e2e_p95_ms: 10000}  # <-
    """
    issue, line = only_issue(tmp_path, body, gpu_catalog)
    assert (issue.field, issue.line) == ("defaults.latency.e2e_p95_ms", line)
    assert "(reasoning: best qwen3-8b-dflash 12161 ms)" in issue.reason
    assert "standard" not in issue.reason


def test_a_shorter_reasoning_request_makes_an_e2e_target_reachable(tmp_path, gpu_catalog):
    slo = """
    defaults:
      latency: {e2e_p95_ms: 10000}  # <-
    """
    issue, _line = only_issue(tmp_path, slo, gpu_catalog)  # control: 4000 tokens miss it
    assert "reasoning" in issue.reason
    # 2000 tokens on dflash: ~6.1 s, no issue, whether the reference request says so...
    shorter = (
        slo
        + """
    reference_requests:
      reasoning: {input_tokens: 500, output_tokens: 2000}
    """
    )
    policy = load(tmp_path, shorter, gpu_catalog)
    assert policy.spec.reference_request("reasoning").output_tokens == 2000
    # ...or max_tokens caps it
    capped = """
    defaults:
      max_tokens: 2000
      latency: {e2e_p95_ms: 10000}
    """
    policy = load(tmp_path, capped, gpu_catalog)
    assert policy.default_tenant.limits("reasoning").max_tokens == 2000


def test_slo_fields_met_separately_but_not_together(tmp_path, gpu_catalog):
    # ttft <= 38 ms: only eagle3 (37.5 ms); tpot <= 4 ms: only dflash (3.0 ms)
    body = """
    defaults:
      classes:
        standard:
          latency: {ttft_p95_ms: 38, tpot_p95_ms: 4}  # <-
    """
    issues, text = issues_of(tmp_path, body, gpu_catalog)
    assert len(issues) == 1
    assert issues[0].field == "defaults.classes.standard.latency"
    assert "no single eligible profile meets ttft_p95_ms, tpot_p95_ms together" in issues[0].reason


def test_tenant_setting_beats_defaults_class_setting(tmp_path, gpu_catalog):
    # the tenant's 250 ms TTFT also applies to long_context (16000-token prompts: >= 386 ms)
    body = """
    defaults:
      classes:
        long_context:
          latency: {ttft_p95_ms: 2000}
    tenants:
      - name: globex
        api_keys: [{env: K}]
        latency: {ttft_p95_ms: 250}  # <-
    """
    issue, line = only_issue(tmp_path, body, gpu_catalog, resolve_secrets=False)
    assert (issue.field, issue.line) == ("tenants[0].latency.ttft_p95_ms", line)
    assert "long_context: best gpt-oss-20b-mxfp4 386 ms" in issue.reason
    fixed = (
        body.replace("  # <-", "")
        + """
        classes:
          long_context:
            latency: {ttft_p95_ms: 2000}
    """
    )
    policy = load(tmp_path, fixed, gpu_catalog, resolve_secrets=False)
    assert policy.tenant("globex").limits("long_context").latency.ttft_p95_ms == 2000


def test_unreachable_default_tenant_is_not_checked_unless_written(tmp_path, gpu_catalog):
    # keys defined and unknown_keys: reject -> the default tenant never serves a request;
    # acme overrides the impossible default, so the policy is valid
    base = """
    defaults:
      latency: {ttft_p95_ms: 10}
    tenants:
      - name: acme
        api_keys: [{env: K}]
        latency: {ttft_p95_ms: 1000}
    """
    base = textwrap.dedent(base)
    load(tmp_path, base, gpu_catalog, resolve_secrets=False)
    issues, _ = issues_of(
        tmp_path, base + "unknown_keys: default_tenant\n", gpu_catalog, resolve_secrets=False
    )
    assert [i.field for i in issues] == ["defaults.latency.ttft_p95_ms"]
    assert "tenant 'default' (all classes" not in issues[0].reason  # details per class
    assert "tenant 'default' (standard: best" in issues[0].reason
    written = base + "default_tenant:\n  latency: {ttft_p95_ms: 5}\n"
    issues, _ = issues_of(tmp_path, written, gpu_catalog, resolve_secrets=False)
    assert [i.field for i in issues] == ["default_tenant.latency.ttft_p95_ms"]


def test_budget_check_skipped_when_a_tenant_is_unbudgeted(tmp_path, local_catalog):
    body = """
    unknown_keys: default_tenant
    default_tenant:
      budgets: {per_day_usd: 0.5}
    tenants:
      - name: paying
        api_keys: [{env: K}]
    """
    load(tmp_path, body, local_catalog, resolve_secrets=False)


# case -> (catalog, policy body with the offending line marked `# <-`, its field, what the
# reason says)
REFUSED: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "reasoning tokens above max_tokens": (
        "gpu",
        """
        defaults:
          max_tokens: 1024
          classes:
            reasoning:
              reasoning: {max_reasoning_tokens: 4096}  # <-
        """,
        "defaults.classes.reasoning.reasoning.max_reasoning_tokens",
        ("4096 exceeds max_tokens 1024", "(reasoning)"),
    ),
    "max_replicas 0 removes the only allowed profile": (
        "gpu",
        """
        defaults:
          allowed_profiles: [qwen3-235b-fp8]  # <-
        autoscaling:
          profiles:
            qwen3-235b-fp8: {max_replicas: 0}
        """,
        "defaults.allowed_profiles",
        (),
    ),
    # the 8B fp8 profile decodes at 95 tok/s = 10.5 ms/token: a 5 ms TPOT is out of reach
    "SLO checked against the tenant's profiles only": (
        "gpu",
        """
        tenants:
          - name: cheap
            api_keys: [{env: K}]
            allowed_profiles: [llama8b-fp8-ngram]
            latency: {tpot_p95_ms: 5}  # <-
        """,
        "tenants[0].latency.tpot_p95_ms",
        ("tenant 'cheap' (standard: best llama8b-fp8-ngram 11 ms",),
    ),
    # local catalog: 2 always-on CPU replicas at $0.04/h = $0.08/h = $1.92/day
    "budget below the always-on cost of the only tenant": (
        "local",
        """
        default_tenant:
          budgets:
            per_hour_usd: 1
            per_day_usd: 1.5  # <-
        """,
        "default_tenant.budgets.per_day_usd",
        ("$1.5 per day (tenants default) is less than the $1.92 per day",),
    ),
    # only 'big' may use the frontier profile, kept at 1 replica = $17.60/h = $12,848/month
    "budget of the tenants sharing a dedicated profile": (
        "gpu",
        """
        tenants:
          - name: big
            api_keys: [{env: A}]
            budgets:
              per_month_usd: 10000  # <-
          - name: small
            api_keys: [{env: B}]
            denied_profiles: [qwen3-235b-fp8]
        autoscaling:
          profiles:
            qwen3-235b-fp8: {min_replicas: 1}
        """,
        "tenants[0].budgets.per_month_usd",
        ("always-on replica(s) of qwen3-235b-fp8", "$12848.00 per month"),
    ),
    "budget inherited from defaults is reported at defaults": (
        "local",
        """
        defaults:
          budgets: {per_hour_usd: 0.05}  # <-
        """,
        "defaults.budgets.per_hour_usd",
        (),
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_cross_checks_refuse_at_the_marked_line(tmp_path, request, case):
    catalog, body, field, says = REFUSED[case]
    issue, line = only_issue(
        tmp_path, body, request.getfixturevalue(f"{catalog}_catalog"), resolve_secrets=False
    )
    assert (issue.field, issue.line) == (field, line)
    for text in says:
        assert text in issue.reason, issue.reason
