"""Hot reload under a running server: a valid policy edit is seen by the next request; a broken
one is rejected, reported on the status endpoint, and the last good policy stays in force."""

from __future__ import annotations

import re
import time

import httpx
import pytest
import yaml

from tests.e2e.conftest import E2E_API_KEY, team_a_policy

pytestmark = pytest.mark.e2e

WITH_KEYS = team_a_policy("e2e-keys", default="cost_cap_usd: 0.05", unknown_keys="reject")
# team-a is served twice before this policy, so it has spent more than this budget
SPENT_BUDGET = team_a_policy(
    "e2e-spent",
    team_a="budgets: {per_hour_usd: 0.000000001}\nactions: {on_budget_exhausted: [reject]}",
)

CHAT = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0}


def _status(base: str) -> dict:
    return httpx.get(f"{base}/v1/orchestrator/status", timeout=10).json()["policy"]


def _wait_for(predicate, base: str, timeout_s: float = 20) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = _status(base)
        if predicate(status):
            return status
        time.sleep(0.5)
    raise AssertionError(f"policy status never matched: {status}")


def _chat(base: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{base}/v1/chat/completions", json=CHAT, headers=headers, timeout=120)


def test_policy_file_edits_are_hot_reloaded(server):
    if server.policy_path is None:
        pytest.skip("external server: its policy file is not ours to edit")
    base = server.base_url
    original = server.policy_path.read_text()
    start = _status(base)
    assert start["version"] and not start["last_error"]
    assert _chat(base, None).status_code == 200  # default policy: no keys, everyone served
    try:
        # 1. a valid change: keys are now required
        server.policy_path.write_text(WITH_KEYS)
        keyed = _wait_for(lambda s: s["version"] != start["version"], base)
        assert not keyed["last_error"]
        unauthorized = _chat(base, None)
        assert unauthorized.status_code == 401
        assert unauthorized.json()["error"]["code"] == "invalid_api_key"
        assert _chat(base, "sk-wrong").status_code == 401
        assert _chat(base, E2E_API_KEY).status_code == 200

        # 2. a broken change: rejected with file, line and field; the keyed policy stays
        server.policy_path.write_text(WITH_KEYS.replace("cost_cap_usd: 0.05", "cost_cap_usd: lots"))
        broken = _wait_for(lambda s: s["last_error"], base)
        assert broken["version"] == keyed["version"]
        error = broken["last_error"][0]
        assert f"{server.policy_path}:7:" in error and "cost_cap_usd" in error
        assert _chat(base, None).status_code == 401
        assert _chat(base, E2E_API_KEY).status_code == 200

        # 3. a tenant whose budget is already spent: 429 + Retry-After; others still served
        server.policy_path.write_text(SPENT_BUDGET)
        _wait_for(lambda s: s["version"] not in (keyed["version"], start["version"]), base)
        spent = _chat(base, E2E_API_KEY)
        assert spent.status_code == 429, spent.text
        assert spent.json()["error"]["type"] == "rate_limit_error"
        assert "budget" in spent.json()["error"]["message"].lower()
        assert 1 <= int(spent.headers["retry-after"]) <= 3600
        assert _chat(base, None).status_code == 200  # the default tenant has no budget
    finally:  # restore, and wait until it is in force so later tests see the default policy
        server.policy_path.write_text(original)
        restored = _wait_for(lambda s: s["version"] == start["version"], base)
    assert restored["version"] == start["version"]
    assert _chat(base, None).status_code == 200


def _full_status(base: str) -> dict:
    return httpx.get(f"{base}/v1/orchestrator/status", timeout=10).json()


def _versions(base: str) -> tuple[str | None, str | None]:
    """(the ingress's policy version, the one the controller last planned under)."""
    status = _full_status(base)
    return status["policy"]["version"], (status["controller"] or {}).get("policy_version")


def _wait_versions(base: str, predicate, timeout_s: float) -> tuple[float, tuple]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        versions = _versions(base)
        if predicate(versions):
            return time.monotonic(), versions
        time.sleep(0.25)
    raise AssertionError(f"versions never matched: {versions}")


def test_ingress_and_controller_take_a_reload_within_one_controller_interval(server):
    """Both read the policy file through a PolicyWatcher: after a hot reload the controller
    plans under the version the ingress serves under by its next tick (one
    `autoscaling.interval_s`, plus a second of each watcher's polling)."""
    if server.policy_path is None:
        pytest.skip("external server: its policy file is not ours to edit")
    base = server.base_url
    original = server.policy_path.read_text()
    interval_s = (yaml.safe_load(original).get("autoscaling") or {}).get("interval_s", 10.0)
    edited_text = re.sub(r"(?m)^(\s*headroom:) 0\.2\b", r"\1 0.25", original)
    assert edited_text != original  # the default policy sets headroom 0.2
    # the controller has planned under the policy in force (its first plan waits for every
    # profile's first context)
    _, (start, _) = _wait_versions(base, lambda v: v[0] is not None and v[0] == v[1], 120)
    try:
        server.policy_path.write_text(edited_text)
        seen_at, (edited, _) = _wait_versions(base, lambda v: v[0] != start, 20)
        agreed_at, versions = _wait_versions(base, lambda v: v[1] == edited, 3 * interval_s)
        assert versions == (edited, edited)
        assert agreed_at - seen_at <= interval_s + 2.5
    finally:
        server.policy_path.write_text(original)
        _wait_versions(base, lambda v: v == (start, start), 3 * interval_s)
