"""Field-by-field validation of the policy schema: every error names file, line and field."""

from __future__ import annotations

import pytest
from policy_helpers import HEADER, issues_of, load, marked_line, only_issue, write

from orchestrator.config_files import ConfigError
from orchestrator.policy import load_policy

# (id, YAML body after the apiVersion/kind header with the failing line marked, field, reason)
CASES = [
    ("unknown top-level", "surprise: 1  # <-\n", "surprise", "unknown field"),
    (
        "unknown_keys value",
        "unknown_keys: allow  # <-\n",
        "unknown_keys",
        "'reject' or 'default_tenant'",
    ),
    (
        "metadata unknown",
        "metadata:\n  name: x\n  owner: me  # <-\n",
        "metadata.owner",
        "unknown field",
    ),
    ("catalog type", "catalog: [a, b]  # <-\n", "catalog", "valid string"),
    # limits (in defaults)
    (
        "cost target zero",
        "defaults:\n  cost_target_usd: 0  # <-\n",
        "defaults.cost_target_usd",
        "greater than 0",
    ),
    (
        "cost cap negative",
        "defaults:\n  cost_cap_usd: -1  # <-\n",
        "defaults.cost_cap_usd",
        "greater than 0",
    ),
    (
        "cost cap text",
        "defaults:\n  cost_cap_usd: lots  # <-\n",
        "defaults.cost_cap_usd",
        "valid number",
    ),
    (
        "max_tokens zero",
        "defaults:\n  max_tokens: 0  # <-\n",
        "defaults.max_tokens",
        "greater than or equal to 1",
    ),
    ("limits unknown", "defaults:\n  max_token: 5  # <-\n", "defaults.max_token", "unknown field"),
    (
        "ttft zero",
        "defaults:\n  latency:\n    ttft_p95_ms: 0  # <-\n",
        "defaults.latency.ttft_p95_ms",
        "greater than 0",
    ),
    (
        "tpot negative",
        "defaults:\n  latency:\n    tpot_p95_ms: -5  # <-\n",
        "defaults.latency.tpot_p95_ms",
        "greater than 0",
    ),
    (
        "e2e text",
        "defaults:\n  latency:\n    e2e_p95_ms: fast  # <-\n",
        "defaults.latency.e2e_p95_ms",
        "valid number",
    ),
    (
        "latency unknown",
        "defaults:\n  latency:\n    p99_ms: 5  # <-\n",
        "defaults.latency.p99_ms",
        "unknown field",
    ),
    (
        "tier",
        "defaults:\n  quality_floor:\n    min_tier: huge  # <-\n",
        "defaults.quality_floor.min_tier",
        "'small', 'medium', 'large' or 'frontier'",
    ),
    (
        "score range",
        "defaults:\n  quality_floor:\n    min_score: 150  # <-\n",
        "defaults.quality_floor.min_score",
        "less than or equal to 100",
    ),
    (
        "actions empty",
        "defaults:\n  actions:\n    on_cost_cap: []  # <-\n",
        "defaults.actions.on_cost_cap",
        "at least one action",
    ),
    (
        "reject not last",
        "defaults:\n  actions:\n    on_cost_cap: [reject, downgrade]  # <-\n",
        "defaults.actions.on_cost_cap",
        "reject must be the last",
    ),
    (
        "duplicate action",
        "defaults:\n  actions:\n    on_budget_exhausted: [downgrade, downgrade]  # <-\n",
        "defaults.actions.on_budget_exhausted",
        "duplicate action(s): downgrade",
    ),
    (
        "unknown action",
        "defaults:\n  actions:\n    on_cost_cap: [explode]  # <-\n",
        "defaults.actions.on_cost_cap[0]",
        "'downgrade', 'cap_tokens' or 'reject'",
    ),
    (
        "cap floor",
        "defaults:\n  actions:\n    cap_tokens_floor: 0  # <-\n",
        "defaults.actions.cap_tokens_floor",
        "greater than or equal to 1",
    ),
    (
        "reasoning allowed",
        "defaults:\n  reasoning:\n    allowed: maybe  # <-\n",
        "defaults.reasoning.allowed",
        "valid boolean",
    ),
    (
        "reasoning tokens",
        "defaults:\n  reasoning:\n    max_reasoning_tokens: 0  # <-\n",
        "defaults.reasoning.max_reasoning_tokens",
        "greater than or equal to 1",
    ),
    (
        "allowed and denied",
        "defaults:  # <-\n  allowed_profiles: [llama8b-fp8-ngram]\n  denied_profiles: [llama8b-fp8-ngram]\n",
        "defaults",
        "both allowed and denied: llama8b-fp8-ngram",
    ),
    (
        "allowed not list",
        "defaults:\n  allowed_profiles: llama8b-fp8-ngram  # <-\n",
        "defaults.allowed_profiles",
        "valid list",
    ),
    (
        "budget hour",
        "defaults:\n  budgets:\n    per_hour_usd: 0  # <-\n",
        "defaults.budgets.per_hour_usd",
        "greater than 0",
    ),
    (
        "budget day",
        "defaults:\n  budgets:\n    per_day_usd: -3  # <-\n",
        "defaults.budgets.per_day_usd",
        "greater than 0",
    ),
    (
        "budget month",
        "defaults:\n  budgets:\n    per_month_usd: plenty  # <-\n",
        "defaults.budgets.per_month_usd",
        "valid number",
    ),
    (
        "budget unknown",
        "defaults:\n  budgets:\n    per_week_usd: 3  # <-\n",
        "defaults.budgets.per_week_usd",
        "unknown field",
    ),
    (
        "class unknown",
        "defaults:\n  classes:\n    huge: {}  # <-\n",
        "defaults.classes.huge",
        "'standard', 'long_form', 'reasoning' or 'long_context'",
    ),
    (
        "budgets per class",
        "defaults:\n  classes:\n    reasoning:\n      budgets: {per_day_usd: 1}  # <-\n",
        "defaults.classes.reasoning.budgets",
        "unknown field",
    ),
    (
        "class field",
        "defaults:\n  classes:\n    reasoning:\n      max_tokens: -1  # <-\n",
        "defaults.classes.reasoning.max_tokens",
        "greater than or equal to 1",
    ),
    # tenants
    (
        "tenant name",
        "tenants:\n  - name: Acme Corp  # <-\n    api_keys: [{env: K}]\n",
        "tenants[0].name",
        "match pattern",
    ),
    (
        "tenant no name",
        "tenants:\n  - api_keys: [{env: K}]  # <-\n",
        "tenants[0].name",
        "Field required",
    ),
    ("tenant no keys", "tenants:\n  - name: acme  # <-\n", "tenants[0].api_keys", "Field required"),
    (
        "tenant empty keys",
        "tenants:\n  - name: acme\n    api_keys: []  # <-\n",
        "tenants[0].api_keys",
        "at least 1 item",
    ),
    (
        "inline key",
        "tenants:\n  - name: acme\n    api_keys:\n      - sk-live-123456  # <-\n",
        "tenants[0].api_keys[0]",
        "inline API keys are not allowed",
    ),
    (
        "env and file",
        "tenants:\n  - name: acme\n    api_keys:\n      - {env: K, file: k.txt}  # <-\n",
        "tenants[0].api_keys[0]",
        "exactly one of env or file",
    ),
    (
        "neither env nor file",
        "tenants:\n  - name: acme\n    api_keys:\n      - {}  # <-\n",
        "tenants[0].api_keys[0]",
        "exactly one of env or file",
    ),
    (
        "env name",
        "tenants:\n  - name: acme\n    api_keys:\n      - env: 1-BAD  # <-\n",
        "tenants[0].api_keys[0].env",
        "match pattern",
    ),
    (
        "key ref unknown",
        "tenants:\n  - name: acme\n    api_keys:\n      - {vault: x}  # <-\n",
        "tenants[0].api_keys[0].vault",
        "unknown field",
    ),
    (
        "default tenant keys",
        "default_tenant:  # <-\n  api_keys: [{env: K}]\n",
        "default_tenant",
        "default tenant has no API keys",
    ),
    (
        "default tenant name",
        "default_tenant:\n  name: Everyone!  # <-\n",
        "default_tenant.name",
        "match pattern",
    ),
    # pricing
    (
        "utilization zero",
        "pricing:\n  utilization: 0  # <-\n",
        "pricing.utilization",
        "greater than 0",
    ),
    (
        "utilization above 1",
        "pricing:\n  utilization: 1.5  # <-\n",
        "pricing.utilization",
        "less than or equal to 1",
    ),
    (
        "cached ratio",
        "pricing:\n  cached_input_ratio: 2  # <-\n",
        "pricing.cached_input_ratio",
        "less than or equal to 1",
    ),
    (
        "price negative",
        "pricing:\n  profiles:\n    llama8b-fp8-ngram:\n      output_usd_per_1m: -1  # <-\n",
        "pricing.profiles.llama8b-fp8-ngram.output_usd_per_1m",
        "greater than or equal to 0",
    ),
    (
        "price unknown",
        "pricing:\n  profiles:\n    llama8b-fp8-ngram:\n      output_per_1k: 1  # <-\n",
        "pricing.profiles.llama8b-fp8-ngram.output_per_1k",
        "unknown field",
    ),
    # autoscaling
    (
        "headroom",
        "autoscaling:\n  headroom: -0.1  # <-\n",
        "autoscaling.headroom",
        "greater than or equal to 0",
    ),
    (
        "scale to zero",
        "autoscaling:\n  scale_to_zero: sometimes  # <-\n",
        "autoscaling.scale_to_zero",
        "valid boolean",
    ),
    (
        "ceiling",
        "autoscaling:\n  max_cost_per_hour_usd: 0  # <-\n",
        "autoscaling.max_cost_per_hour_usd",
        "greater than 0",
    ),
    (
        "min replicas",
        "autoscaling:\n  profiles:\n    gpt-oss-20b-mxfp4:\n      min_replicas: -1  # <-\n",
        "autoscaling.profiles.gpt-oss-20b-mxfp4.min_replicas",
        "greater than or equal to 0",
    ),
    (
        "min above max",
        "autoscaling:\n  profiles:\n    gpt-oss-20b-mxfp4: {min_replicas: 3, max_replicas: 2}  # <-\n",
        "autoscaling.profiles.gpt-oss-20b-mxfp4",
        "min_replicas must be <= max_replicas",
    ),
    (
        "zero vs no scale to zero",
        "autoscaling:\n  profiles:\n    gpt-oss-20b-mxfp4: {min_replicas: 0, scale_to_zero: false}  # <-\n",
        "autoscaling.profiles.gpt-oss-20b-mxfp4",
        "contradicts scale_to_zero: false",
    ),
    (
        "profile headroom",
        "autoscaling:\n  profiles:\n    gpt-oss-20b-mxfp4:\n      headroom: 11  # <-\n",
        "autoscaling.profiles.gpt-oss-20b-mxfp4.headroom",
        "less than or equal to 10",
    ),
    # quality target
    (
        "quality target probability",
        "defaults:\n  quality_target:\n    min_success: 1.5  # <-\n",
        "defaults.quality_target.min_success",
        "less than or equal to 1",
    ),
    (
        "quality target share",
        "tenants: []\ndefaults:\n  quality_target:\n    share_of_strongest: 0  # <-\n",
        "defaults.quality_target.share_of_strongest",
        "greater than 0",
    ),
    (
        "quality target unknown field",
        "defaults:\n  quality_target:\n    min_sucess: 0.9  # <-\n",
        "defaults.quality_target.min_sucess",
        "unknown field",
    ),
    # reference requests
    (
        "reference tokens",
        "reference_requests:\n  standard:\n    input_tokens: 0  # <-\n    output_tokens: 5\n",
        "reference_requests.standard.input_tokens",
        "greater than or equal to 1",
    ),
    (
        "reference class",
        "reference_requests:\n  chat: {input_tokens: 1, output_tokens: 1}  # <-\n",
        "reference_requests.chat",
        "'standard', 'long_form'",
    ),
]


@pytest.mark.parametrize(
    ("body", "field", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_field_error_names_file_line_and_field(tmp_path, gpu_catalog, body, field, reason):
    issue, line = only_issue(tmp_path, body, gpu_catalog, resolve_secrets=False)
    assert issue.file == str(tmp_path / "policy.yaml")
    assert issue.field == field
    assert issue.line == line
    assert reason in issue.reason
    assert str(issue) == f"{issue.file}:{line}: {field}: {issue.reason}"


def test_minimal_policy_is_valid(tmp_path, gpu_catalog):
    policy = load(tmp_path, "", gpu_catalog)
    assert list(policy.tenants) == ["default"]


@pytest.mark.parametrize(
    ("header", "field", "line", "reason"),
    [
        ("apiVersion: orchestrator/v2\nkind: Policy\n", "apiVersion", 1, "'orchestrator/v1'"),
        ("apiVersion: orchestrator/v1\nkind: Catalog\n", "kind", 2, "'Policy'"),
        ("kind: Policy\n", "apiVersion", 1, "Field required"),
    ],
)
def test_api_version_and_kind_are_required(tmp_path, gpu_catalog, header, field, line, reason):
    path = write(tmp_path, header)
    with pytest.raises(ConfigError) as info:
        load_policy(path, gpu_catalog)
    [issue] = info.value.issues
    assert (issue.field, issue.line) == (field, line)
    assert reason in issue.reason


def test_yaml_syntax_error_has_line(tmp_path, gpu_catalog):
    text = HEADER + "defaults:\n  max_tokens: [1, 2\n  cost_cap_usd: 1\n"
    with pytest.raises(ConfigError) as info:
        load_policy(write(tmp_path, text), gpu_catalog)
    [issue] = info.value.issues
    assert issue.field == "<yaml>"
    assert issue.line >= 4


def test_top_level_must_be_a_mapping(tmp_path, gpu_catalog):
    with pytest.raises(ConfigError) as info:
        load_policy(write(tmp_path, "- a\n- b\n"), gpu_catalog)
    assert info.value.issues[0].field == "<root>"


def test_every_error_is_reported_at_once(tmp_path, gpu_catalog):
    body = """
    defaults:
      cost_cap_usd: 0
      latency: {ttft_p95_ms: -1}
    pricing:
      utilization: 3
    """
    issues, _ = issues_of(tmp_path, body, gpu_catalog)
    assert {i.field for i in issues} == {
        "defaults.cost_cap_usd",
        "defaults.latency.ttft_p95_ms",
        "pricing.utilization",
    }


def test_marker_helper_finds_line():
    assert marked_line("a\nb  # <-\nc") == 2
