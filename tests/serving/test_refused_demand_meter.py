"""The request path records refusals for capacity in its demand meter (what the controller
reads), and not refusals of policy."""

from __future__ import annotations

import time

import pytest

from orchestrator.catalog import load_catalog
from orchestrator.paths import PROJECT_ROOT
from tests.serving.conftest import (
    FAMILY,
    LOCAL,
    MESSAGES,
    POLICY_TEXT,
    TINY_REFERENCE,
    error_of,
    make_executor,
    occupy,
    use_policy,
)
from tests.serving.conftest import serve_body as _serve

BODY = {"model": FAMILY, "messages": MESSAGES}


def refused(ex) -> dict[str, float]:
    return {k: v[0] for k, v in ex.demand.refused_rates(time.monotonic()).items()}


async def test_overload_429_is_demand_for_the_running_profiles(ingress):
    for p in LOCAL.profiles:
        occupy(ingress, p.name, 12)  # every slot and queue place taken
    response = await _serve(ingress, BODY, "chat")
    assert response.status_code == 429 and error_of(response)["code"] == "server_overloaded"
    got = refused(ingress)
    assert set(got) == {p.name for p in LOCAL.profiles}
    assert sum(got.values()) * ingress.demand.window_s == pytest.approx(1.0)


async def test_slo_refusal_under_load_is_demand_policy_refusal_is_not(ingress):
    use_policy(ingress, POLICY_TEXT + "  latency: {ttft_p95_ms: 2000}\n"
                 "  actions: {on_slo_unmeetable: [reject]}\n" + TINY_REFERENCE + "\n")  # fmt: skip
    for p in LOCAL.profiles:
        occupy(ingress, p.name, 10)  # busy: queue wait breaks the TTFT target
    response = await _serve(ingress, BODY, "chat")
    assert response.status_code == 503
    assert sum(refused(ingress).values()) * ingress.demand.window_s == pytest.approx(1.0)

    tiny_cap = POLICY_TEXT.replace("cost_cap_usd: 0.05", "cost_cap_usd: 0.000000001")
    use_policy(ingress, tiny_cap + "  actions: {on_cost_cap: [reject]}\n")
    response = await _serve(ingress, BODY, "chat")
    assert response.status_code == 402
    assert sum(refused(ingress).values()) * ingress.demand.window_s == pytest.approx(1.0)


async def test_shed_demand_goes_only_to_the_profiles_of_the_requested_model(tmp_path, monkeypatch):
    """A catalog of several families: a request for one family shed by admission is demand
    for that family's profiles only (those admission counted), not every profile the tenant
    may use."""
    gpu = load_catalog(PROJECT_ROOT / "deployments" / "gpu-example.yaml")
    policy = "apiVersion: orchestrator/v1\nkind: Policy\ndefault_tenant: {name: default}\n"
    ex = make_executor(tmp_path, monkeypatch, catalog=gpu, policy_text=policy)
    family = [p.name for p in gpu.profiles if p.served_model_name == "qwen3-8b"]
    assert len(family) >= 2 and len(family) < len(gpu.profiles)
    for name in family:
        occupy(ex, name, 4 * gpu.profile(name).performance.max_concurrency)
    body = {"model": "qwen3-8b", "messages": MESSAGES}
    response = await _serve(ex, body, "chat")
    assert response.status_code == 429 and error_of(response)["code"] == "server_overloaded"
    got = refused(ex)
    assert set(got) == set(family)
    assert sum(got.values()) * ex.demand.window_s == pytest.approx(1.0)
    ex.ledger.close()
