"""`policy explain` says whether the cost target and the latency targets are soft or enforced."""

from __future__ import annotations

from policy_helpers import load

from orchestrator.policy.explain import explain_policy, render_text

POLICY = """
defaults:
  cost_target_usd: 0.001
  latency: {ttft_p95_ms: 2000}
tenants:
  - name: soft
    api_keys: [{env: A}]
  - name: strict
    api_keys: [{env: B}]
    actions: {on_cost_target: [cap_tokens, reject], on_slo_unmeetable: [reject]}
"""


def test_explain_names_the_semantics_in_force(tmp_path, gpu_catalog):
    text = render_text(explain_policy(load(tmp_path, POLICY, gpu_catalog, resolve_secrets=False)))
    soft, strict = text.split("tenant strict")[0], text.split("tenant strict")[1]
    assert "cost target soft (miss recorded)" in soft
    assert "latency targets p95 (closest profile)" in soft
    assert "cost target enforced: cap_tokens > reject" in strict
    assert "latency targets enforced: reject" in strict
