"""policies/gpu-example.yaml: valid against the GPU example catalog, every tenant has SLOs."""

from __future__ import annotations

from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy import load_policy_for_cli
from orchestrator.policy.loader import catalog_path_for, read_policy_spec

POLICY = PROJECT_ROOT / "policies" / "gpu-example.yaml"
GPU = PROJECT_ROOT / "deployments" / "gpu-example.yaml"


def test_targets_the_gpu_catalog_and_validates():
    spec = read_policy_spec(POLICY)
    assert catalog_path_for(POLICY, spec, None).resolve() == GPU.resolve()
    policy = load_policy_for_cli(POLICY)
    names = {t.name for t in policy.reachable_tenants()}
    assert {"chat", "enterprise-api", "batch", "internal"} <= names


def test_every_tenant_has_an_slo_and_a_cost_target():
    policy = load_policy_for_cli(POLICY)
    for tenant in policy.reachable_tenants():
        limits = tenant.limits()
        assert limits.latency.e2e_p95_ms is not None, tenant.name
        assert limits.cost_target_usd is not None, tenant.name
        assert tenant.eligible_profiles(), tenant.name
    enterprise = policy.tenant("enterprise-api")
    assert "cap_tokens" not in enterprise.limits().actions.on_cost_cap
    # batch sets its own loose bounds instead of inheriting the chat objectives
    assert (
        policy.tenant("batch").limits().latency.ttft_p95_ms
        > 10 * enterprise.limits().latency.ttft_p95_ms
    )


def test_warm_only_where_the_floors_route_and_cold_elsewhere():
    # the example keeps warm the cheapest profile per token at each floor (gpt-oss-20b for
    # chat, enterprise-api, internal; the L40S Llama-8B for batch, which forbids reasoning)
    # and starts every other profile cold: an idle always-on H100 would cost $3.90/hour
    policy = load_policy_for_cli(POLICY)
    warm = {n for n, b in policy.scaling.items() if b.initial_replicas > 0}
    assert warm == {"gpt-oss-20b-mxfp4", "llama8b-fp8-ngram"}
    assert all(b.initial_replicas == b.min_replicas for b in policy.scaling.values())
    assert abs(policy.min_replicas_cost_per_hour() - (3.90 + 1.80)) < 1e-9
