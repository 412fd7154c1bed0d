"""A tenant spends its budget down through the running server; a real Prometheus, scraping the
server's /metrics, evaluates the shipped PrometheusRule's budget alert to firing.

The rule is the generated copy of the Helm chart's PrometheusRule
(k8s/overlays/gpu-prod/prometheusrule-orchestrator.yaml, namespace `orchestrator`), loaded
as a Prometheus rules file with its expression unchanged; only its `for: 5m` hold is cut to 0s
so the test does not wait five minutes (the expression, not the hold, is what is tested).
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import yaml

from orchestrator.paths import PROJECT_ROOT
from tests.e2e.conftest import E2E_API_KEY, team_a_policy
from tests.e2e.prometheus import needs_prometheus, prometheus

pytestmark = pytest.mark.e2e
RULE_FILE = PROJECT_ROOT / "k8s" / "overlays" / "gpu-prod" / "prometheusrule-orchestrator.yaml"
ALERT = "OrchestratorBudgetNearlySpent"
NAMESPACE = "orchestrator"


def _policy(tag: str, budget: float) -> str:
    """team-a with a day budget of `budget`, capped to what is left, then refused."""
    return team_a_policy(
        f"e2e-budget-{tag}",
        team_a=f"budgets: {{per_day_usd: {budget!r}}}\n"
        "actions: {on_budget_exhausted: [cap_tokens, reject], cap_tokens_floor: 1}",
    )


CHAT = {
    "model": "smollm2-cpu",
    "messages": [{"role": "user", "content": "Count from one to twenty."}],
    "max_tokens": 8,
    "temperature": 0,
    "ignore_eos": True,  # every uncapped request costs the same
}


def _rules(tmp: Path) -> Path:
    """The shipped budget alert as a Prometheus rules file (hold cut to 0s, see above)."""
    rule = yaml.safe_load(RULE_FILE.read_text())
    groups = [g for g in rule["spec"]["groups"] if g["name"] == "orchestrator-budget"]
    (alert,) = [r for r in groups[0]["rules"] if r.get("alert") == ALERT]
    assert f'namespace="{NAMESPACE}"' in alert["expr"]
    alert["for"] = "0s"
    path = tmp / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "budget", "rules": [alert]}]}))
    return path


def _policy_version(base: str) -> str:
    return httpx.get(f"{base}/v1/orchestrator/status", timeout=10).json()["policy"]["version"]


def _write_policy(server, text: str) -> None:
    before = _policy_version(server.base_url)
    server.policy_path.write_text(text)
    deadline = time.monotonic() + 30
    while _policy_version(server.base_url) == before:
        assert time.monotonic() < deadline, "the policy edit was never loaded"
        time.sleep(0.5)


def _remaining(base: str) -> float:
    """team-a's day budget left, from the server's own /metrics (the gauge the alert reads)."""
    for line in httpx.get(f"{base}/metrics", timeout=10).text.splitlines():
        series = line.startswith("orchestrator_budget_remaining_usd{")
        if series and 'tenant="team-a"' in line and 'window="day"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no orchestrator_budget_remaining_usd series for team-a")


def _chat(base: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {E2E_API_KEY}"}
    return httpx.post(f"{base}/v1/chat/completions", json=CHAT, headers=headers, timeout=120)


def _firing(url: str) -> list[dict]:
    alerts = httpx.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"].get("alertname") == ALERT]


@needs_prometheus
def test_spending_a_budget_down_fires_the_shipped_alert(server, tmp_path):
    if server.policy_path is None:
        pytest.skip("external server: its policy file is not ours to edit")
    base = server.base_url
    original = server.policy_path.read_text()
    try:
        # what one request costs, and what team-a has spent today so far
        _write_policy(server, _policy("probe", 1.0))
        first = _chat(base)
        assert first.status_code == 200, first.text
        cost = first.json()["usage"]["cost_usd"]
        assert cost > 0
        spent = 1.0 - _remaining(base)
        # a budget of 5 more requests: over 10 % left now; the last one is capped to what is
        # left (on_budget_exhausted: cap_tokens), so the budget is spent down to nearly 0
        budget = spent + 5 * cost
        _write_policy(server, _policy("tight", budget))
        assert _remaining(base) / budget > 0.1

        scrape_labels = f"{{namespace: {NAMESPACE}}}"
        rules = _rules(tmp_path)
        with prometheus(tmp_path, urlparse(base).netloc, rules=rules, labels=scrape_labels) as url:
            time.sleep(4)  # a few scrapes and evaluations with the budget still healthy
            assert not _firing(url), "the alert fired before the budget was spent"

            statuses = []
            left = _remaining(base)
            while left / budget >= 0.1 and len(statuses) < 12:
                statuses.append(_chat(base).status_code)
                left = _remaining(base)
                if statuses[-1] != 200:
                    break
            assert statuses.count(200) >= 4, statuses  # spent through the server, not faked
            assert left / budget < 0.1, (left, budget, statuses)

            deadline = time.monotonic() + 60
            alerts: list[dict] = []
            while time.monotonic() < deadline:
                alerts = [a for a in _firing(url) if a["state"] == "firing"]
                if alerts:
                    break
                time.sleep(1)
            assert alerts, "Prometheus never fired the budget alert"
            labels = alerts[0]["labels"]
            assert (labels["tenant"], labels["window"]) == ("team-a", "day")
            assert "team-a" in alerts[0]["annotations"]["summary"]
    finally:
        if server.policy_path.read_text() != original:
            _write_policy(server, original)
