"""`policy explain` says what the planner sizes demand from and whether the learned level
corrects it (`autoscaling.demand_sizing`, `autoscaling.demand_level`)."""

from __future__ import annotations

from policy_helpers import load

from orchestrator.policy.explain import explain_policy, render_text

BASE = "defaults: {max_tokens: 512}\n"


def explained(tmp_path, gpu_catalog, autoscaling: str = "") -> str:
    body = BASE + (f"autoscaling: {autoscaling}\n" if autoscaling else "")
    return render_text(explain_policy(load(tmp_path, body, gpu_catalog, resolve_secrets=False)))


def test_explain_names_the_sizing_and_the_level(tmp_path, gpu_catalog):
    default = explained(tmp_path, gpu_catalog)
    assert "Planner sizes output demand from each request's predicted median answer (p50)" in (
        default
    )
    assert "not corrected (demand_level off)" in default
    on = explained(tmp_path, gpu_catalog, "{demand_level: {enabled: true}}")
    assert "over ~2000 requests, within 0.5x-2x" in on
    text = explained(
        tmp_path,
        gpu_catalog,
        "{demand_sizing: expected, demand_level: {enabled: true, window: 500, max_factor: 1.25}}",
    )
    assert "expected answer (the lognormal mean through p50 and p90)" in text
    assert "over ~500 requests, within 0.8x-1.25x" in text
