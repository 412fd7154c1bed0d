"""A tenant's quality target over HTTP: a request the difficulty model finds hard goes to a
stronger tier than an easy one from the same tenant, and the stored decision says why.

The shared server's catalog labels `smollm2-cpu` `medium` and `smollm2-cpu-ngram` `small`
(`SHARED_TIERS`; the same model, tiers are labels here); price alone sends both requests to
the `small` one.
"""

from __future__ import annotations

import httpx
import pytest

from .conftest import (
    E2E_API_KEY,
    RunningServer,
    reload_policy,
    team_a_policy,
    wait_until_the_model_alone_prices,
)

pytestmark = pytest.mark.e2e

EASY = "Name a fruit."  # not a prompt other e2e tests send (no cached prefix anywhere)
HARD = (
    "Statement 1 | Every group of order 42 has a normal subgroup of order 7. Statement 2 | "
    "Every group of order 42 has a normal subgroup of order 8.\nA. True, True\nB. False, "
    "False\nC. True, False\nD. False, True\nAnswer:"
)
AUTH = {"Authorization": f"Bearer {E2E_API_KEY}"}


def _ask(server: RunningServer, text: str) -> dict:
    """Send `text` as team-a; the stored decision of the request."""
    body = {
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 8,
        "temperature": 0,
    }
    r = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=AUTH, timeout=300)
    assert r.status_code == 200, r.text
    rid = r.headers["x-request-id"]
    d = httpx.get(f"{server.base_url}/v1/orchestrator/decisions/{rid}", headers=AUTH, timeout=30)
    assert d.status_code == 200, d.text
    decision = d.json()
    assert decision["profile"] == r.headers["x-orchestrator-profile"]
    return decision


def _tier(decision: dict) -> str:
    return next(c["tier"] for c in decision["candidates"] if c["profile"] == decision["profile"])


def test_hard_request_goes_to_a_stronger_tier_than_an_easy_one(server):
    if server.policy_path is None:
        pytest.skip("external server: its policy is not ours to change")
    original = server.policy_path.read_text()
    wait_until_the_model_alone_prices(server)
    before = _ask(server, HARD)  # without a target, price decides: the small tier
    assert _tier(before) == "small" and before["tenant"] == "default"
    reload_policy(server, team_a_policy("quality-e2e", team_a="quality_target: {min_success: 0.6}"))
    try:
        wait_until_the_model_alone_prices(server)
        easy, hard = _ask(server, EASY), _ask(server, HARD)
    finally:
        reload_policy(server, original)
    assert easy["tenant"] == hard["tenant"] == "team-a"
    assert (_tier(easy), _tier(hard)) == ("small", "medium")
    assert hard["tier_success"]["small"] < 0.6 <= easy["tier_success"]["small"]
    lost = {c["profile"]: c["lost_because"] for c in hard["candidates"]}
    assert "below_quality_target" in lost[easy["profile"]]
    assert any(step.startswith("quality:") for step in hard["steps"])
