"""The shipped policies validate against their catalogs, and the JSON Schema matches them."""

from __future__ import annotations

import json

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import DEFAULT_POLICY, PROJECT_ROOT
from orchestrator.policy import default_policy, load_policy_for_cli, policy_json_schema
from orchestrator.policy.loader import catalog_path_for, read_policy_spec

EXAMPLES = sorted((PROJECT_ROOT / "policies" / "examples").glob("*.yaml"))
ALL_POLICIES = [DEFAULT_POLICY, *EXAMPLES]
GPU = PROJECT_ROOT / "deployments" / "gpu-example.yaml"


def test_there_are_at_least_three_examples():
    names = {p.stem for p in EXAMPLES}
    assert {"free-tier", "premium", "batch"} <= names


@pytest.mark.parametrize("path", ALL_POLICIES, ids=lambda p: p.name)
def test_shipped_policy_validates_against_its_catalog(path):
    policy = load_policy_for_cli(path)
    assert policy.reachable_tenants()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_target_the_gpu_catalog(path):
    spec = read_policy_spec(path)
    assert catalog_path_for(path, spec, None).resolve() == GPU.resolve()


def test_embedded_default_policy(local_catalog):
    policy = default_policy()
    assert not policy.defines_keys
    assert policy.resolve_tenant(None) is policy.default_tenant
    assert policy.resolve_tenant("sk-anything") is policy.default_tenant
    assert set(policy.default_tenant.eligible_profiles()) == {"smollm2-cpu", "smollm2-cpu-ngram"}


def test_default_policy_fits_any_catalog():
    # it names no profile, so the server may use it with the GPU catalog too
    catalog = load_catalog(GPU)
    policy = default_policy(catalog)
    assert len(policy.default_tenant.eligible_profiles()) == len(catalog.profiles)


def test_free_tier_caps_the_free_tenant():
    policy = load_policy_for_cli(PROJECT_ROOT / "policies" / "examples" / "free-tier.yaml")
    free = policy.tenant("free")
    assert free.eligible_profiles() == ("llama8b-fp8-ngram",)
    assert free.limits().cost_cap_usd == 0.001
    assert free.limits().reasoning.allowed is False
    assert free.limits("long_context").max_tokens == 256
    assert free.budgets.per_day_usd == 50


def test_batch_explicit_price_wins():
    policy = load_policy_for_cli(PROJECT_ROOT / "policies" / "examples" / "batch.yaml")
    prices = policy.prices["llama8b-fp8-ngram"]
    assert prices.output_usd_per_1m == pytest.approx(0.25)
    assert prices.output_source == "explicit"
    assert policy.prices["gpt-oss-20b-mxfp4"].output_source == "derived"


def test_premium_never_truncates():
    policy = load_policy_for_cli(PROJECT_ROOT / "policies" / "examples" / "premium.yaml")
    for tenant in policy.reachable_tenants():
        for rc in tenant.classes:
            assert "cap_tokens" not in tenant.limits(rc).actions.on_cost_cap
            assert tenant.limits(rc).latency.ttft_p95_ms is not None


def test_json_schema_accepts_shipped_policies_and_rejects_unknown_fields():
    import jsonschema
    import yaml

    schema = policy_json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for path in ALL_POLICIES:
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert not errors, f"{path}: {errors[0].message}"
    bad = {"apiVersion": "orchestrator/v1", "kind": "Policy", "defaults": {"max_token": 3}}
    assert list(validator.iter_errors(bad))


def test_committed_schema_file_is_current():
    committed = PROJECT_ROOT / "docs" / "policy.schema.json"
    assert json.loads(committed.read_text()) == policy_json_schema(), (
        "regenerate with: orchestrator policy schema -o docs/policy.schema.json"
    )
