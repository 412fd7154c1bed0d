"""The server feeds the planner's demand level (`planning/level.py`) at settlement and exports
each profile's output demand at it (`DemandMeter.export`, the policy's
`autoscaling.demand_level`)."""

from __future__ import annotations

import time

import pytest

from orchestrator.planning.level import PRIOR_SETTLED
from orchestrator.signals.meters import demand_key
from tests.serving.conftest import FAMILY, MESSAGES, POLICY_TEXT, use_policy
from tests.serving.conftest import serve_body as _serve


@pytest.mark.parametrize("enabled", [True, False])
async def test_settled_answers_teach_the_level_the_planner_s_demand_is_exported_at(
    ingress, chat_completion, enabled
):
    """Three answers of 3 tokens (the fake engine's "Blue.") against their sized p50: the
    level is generated / sized tokens, shrunk by three requests' evidence; the exported output
    demand is the sized demand times it (as it was sized when the policy turns it off)."""
    use_policy(ingress, POLICY_TEXT + f"autoscaling: {{demand_level: {{enabled: {enabled}}}}}\n")
    spec = ingress.policy_source.current.spec.autoscaling.demand_level
    sized = []
    for i in range(3):
        ingress.handle.streams.append(chat_completion())
        body = {"model": FAMILY, "messages": MESSAGES, "max_tokens": 300}
        response = await _serve(ingress, body, "chat", {"x-request-id": f"rid-level-{i}"})
        assert response.status_code == 200
        sized.append(ingress.decisions.store.get(f"rid-level-{i}")[1].estimate.output_tokens)
    profile = response.headers["x-orchestrator-profile"]
    assert min(sized) > 3  # the fake answers are shorter than sized: the level falls
    raw = 9.0 / sum(sized)  # the window (2,000) barely decays three requests
    want = 1.0 + 3 / (3 + PRIOR_SETTLED) * (raw - 1.0)
    learned = ingress.demand.level.levels(spec)
    assert learned == {profile: pytest.approx(want if enabled else 1.0, rel=2e-3)}
    now = time.monotonic()
    out = ingress.demand.export(now)  # under the policy in force
    sized_tps = ingress.demand.rates(now)[profile][2]
    assert sized_tps * ingress.demand.window_s == pytest.approx(sum(sized))
    assert out[demand_key(profile, "out_tps")] == pytest.approx(sized_tps * learned[profile])
    assert (out[demand_key(profile, "out_tps")] < sized_tps) is enabled
