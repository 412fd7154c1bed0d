"""Wrong policies that used to pass `policy validate` in silence (issue 33): each is refused
(or warned) with file, line and field. Lines are marked in the YAML with `# <-`."""

from __future__ import annotations

import pytest
from policy_helpers import GPU_CATALOG, load, marked_line, only_issue, policy_text, write

from orchestrator.catalog import load_catalog
from orchestrator.cli import main
from orchestrator.config_files import ConfigError
from orchestrator.planning import Observation, PlannerKnobs, plan

TENANT = """
tenants:
  - name: acme
    api_keys: [{env: ACME_KEY}]
"""


def test_duplicate_key_in_a_policy_is_refused(tmp_path, gpu_catalog):
    body = """
    tenants:
      - name: acme
        api_keys: [{env: ACME_KEY}]
        budgets: {per_day_usd: 500}
        budgets: {per_day_usd: 5}  # <-
    """
    issue, line = only_issue(tmp_path, body, gpu_catalog, resolve_secrets=False)
    assert (issue.field, issue.line) == ("tenants[0].budgets", line)
    assert f"duplicate key (first written on line {line - 1})" in issue.reason


def test_duplicate_key_in_a_catalog_is_refused(tmp_path):
    text = GPU_CATALOG.read_text().replace(
        "max_model_len: 32768", "max_model_len: 32768\n    max_model_len: 1024", 1
    )
    path = write(tmp_path, text, "catalog.yaml")
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    [issue] = info.value.issues
    second = text.splitlines().index("    max_model_len: 1024") + 1
    assert issue.file == str(path) and issue.line == second
    assert issue.field.endswith(".max_model_len") and "duplicate key" in issue.reason


def test_one_key_variable_on_two_tenants_is_refused_without_secrets(tmp_path, gpu_catalog):
    body = """
    tenants:
      - name: acme
        api_keys: [{env: SHARED_KEY}]
      - name: globex
        api_keys:
          - env: SHARED_KEY  # <-
    """
    for kw in ({"resolve_secrets": False}, {"env": {"SHARED_KEY": "k"}}):  # with secrets: once
        issue, line = only_issue(tmp_path, body, gpu_catalog, **kw)
        assert (issue.field, issue.line) == ("tenants[1].api_keys[0].env", line)
        assert "SHARED_KEY is already a key source of tenant 'acme'" in issue.reason


def test_one_key_variable_twice_in_a_tenant_is_refused(tmp_path, gpu_catalog):
    body = """
    tenants:
      - name: acme
        api_keys:
          - env: ACME_KEY
          - env: ACME_KEY  # <-
    """
    env = {"ACME_KEY": "k1"}
    issue, line = only_issue(tmp_path, body, gpu_catalog, env=env)  # secrets read: still refused
    assert (issue.field, issue.line) == ("tenants[0].api_keys[1].env", line)
    assert "already a key source of this tenant" in issue.reason


# case -> (policy body, the offending line marked `# <-`; its field; what the reason says)
REFUSED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "a day budget above the month budget": (
        """
        tenants:
          - name: acme
            api_keys: [{env: ACME_KEY}]
            budgets:
              per_day_usd: 3000  # <-
              per_month_usd: 800
          - name: globex
            api_keys: [{env: GLOBEX_KEY}]
            budgets: {per_day_usd: 3000, per_month_usd: 800000}
        """,
        "tenants[0].budgets.per_day_usd",
        ("$3000 per day is above the $800 per month", "tenant 'acme'"),
    ),
    "max_tokens beyond every context": (
        """
        tenants:
          - name: acme
            api_keys: [{env: ACME_KEY}]
            allowed_profiles: [llama8b-fp8-ngram, qwen3-8b-awq]
            max_tokens: 1000000  # <-
        """,
        "tenants[0].max_tokens",
        ("above every eligible profile's context length", "max_model_len 32768"),
    ),
    "reasoning tokens beyond every context": (
        """
        defaults:
          allowed_profiles: [qwen3-8b-awq]
          classes:
            reasoning:
              reasoning: {max_reasoning_tokens: 50000}  # <-
        """,
        "defaults.classes.reasoning.reasoning.max_reasoning_tokens",
        ("50000 is above every eligible profile's context length",),
    ),
    "a prompt bound no profile can hold": (
        """
        defaults:
          requests:
            max_prompt_tokens: 200000  # <-
        """,
        "defaults.requests.max_prompt_tokens",
        ("largest context", "131072"),
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_policy_the_catalog_cannot_honour_is_refused(tmp_path, gpu_catalog, case):
    body, field, says = REFUSED[case]
    issue, line = only_issue(tmp_path, body, gpu_catalog, resolve_secrets=False)
    assert (issue.field, issue.line) == (field, line)
    for text in says:
        assert text in issue.reason, issue.reason


UNUSED = """
tenants:
  - name: acme
    api_keys: [{env: ACME_KEY}]
    allowed_profiles: [qwen3-8b-awq]
"""


def test_always_on_replicas_no_tenant_may_use_are_a_warning(tmp_path, gpu_catalog, capsys):
    policy = load(tmp_path, UNUSED, gpu_catalog, resolve_secrets=False)
    fields = sorted(w.field for w in policy.warnings)
    assert fields == [
        "autoscaling.profiles.llama8b-bf16-eagle3.min_replicas",
        "autoscaling.profiles.llama8b-fp8-ngram.min_replicas",
    ]
    assert all(w.file == policy.source and w.line == 1 for w in policy.warnings)
    assert "no tenant may use" in policy.warnings[0].reason
    path = str(tmp_path / "policy.yaml")
    args = ["policy", "validate", path, "--deployments", str(GPU_CATALOG)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{path}:1: autoscaling.profiles.llama8b-fp8-ngram.min_replicas: warning:" in out
    assert main([*args, "--strict"]) == 1
    capsys.readouterr()
    assert main(["policy", "explain", path, "--deployments", str(GPU_CATALOG)]) == 0
    assert "llama8b-fp8-ngram.min_replicas: warning:" in capsys.readouterr().err


def test_a_policy_lowers_the_catalog_minimum_to_zero(tmp_path, gpu_catalog):
    body = UNUSED + (
        "autoscaling:\n  profiles:\n"
        "    llama8b-bf16-eagle3: {min_replicas: 0}\n"
        "    llama8b-fp8-ngram: {scale_to_zero: true}\n"
    )
    policy = load(tmp_path, body, gpu_catalog, resolve_secrets=False)
    assert policy.warnings == ()
    assert policy.scaling["llama8b-bf16-eagle3"].min_replicas == 0
    assert policy.scaling["llama8b-fp8-ngram"].min_replicas == 0
    assert policy.min_replicas_cost_per_hour() == 0
    # it starts cold; the catalog's `initial` (within the bounds) would win
    assert policy.scaling["llama8b-bf16-eagle3"].initial_replicas == 0
    assert policy.scaling["llama8b-fp8-ngram"].initial_replicas == 0
    initial = gpu_catalog.model_copy(
        update={"profiles": [p.model_copy(update={"replicas": p.replicas.model_copy(
            update={"initial": 1})}) if p.name == "llama8b-fp8-ngram" else p
            for p in gpu_catalog.profiles]})  # fmt: skip
    started = load(tmp_path, body, initial, resolve_secrets=False)
    assert started.scaling["llama8b-fp8-ngram"].initial_replicas == 1
    # the planner honours it: one replica running and no load -> 0 after the down delay
    obs = Observation(now_s=0.0, profiles={"llama8b-fp8-ngram": {"replicas_current": 1,
                                                                  "replicas_ready": 1}})  # fmt: skip
    knobs = PlannerKnobs(use_solver=False)
    decision, state = plan(obs, policy, None, knobs)
    later = obs.model_copy(update={"now_s": 10_000.0})
    decision, _ = plan(later, policy, state, knobs)
    assert decision.targets["llama8b-fp8-ngram"].min_replicas == 0
    assert decision.target_of("llama8b-fp8-ngram") == 0


def test_refusals_print_file_line_and_field_in_validate(tmp_path, capsys):
    text = policy_text(TENANT + "    max_tokens: 200000  # <-\n")
    path = write(tmp_path, text)
    code = main(["policy", "validate", str(path), "--deployments", str(GPU_CATALOG)])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{path}:{marked_line(text)}: tenants[0].max_tokens: 200000 is above" in out
