"""Observability end to end: a real Prometheus scrapes the running server's /metrics and a
PromQL query returns the cost counters after a few requests."""

from __future__ import annotations

import json
import time
import urllib.parse
from urllib.parse import urlparse

import httpx
import pytest

from tests.e2e.prometheus import needs_prometheus, prometheus

pytestmark = pytest.mark.e2e


def test_metrics_endpoint_exports_cost_and_tokens(server):
    r = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 5},
        timeout=120,
    )
    assert r.status_code == 200
    text = httpx.get(f"{server.base_url}/metrics").text
    for name in (
        "orchestrator_cost_usd_total",
        "orchestrator_requests_total",
        "orchestrator_tokens_total",
        "orchestrator_routing_decisions_total",
        "orchestrator_replicas_current",
    ):
        assert name in text, name


@needs_prometheus
def test_real_prometheus_scrapes_cost_counters(server, tmp_path):
    target = urlparse(server.base_url).netloc
    with prometheus(tmp_path, target) as url:
        for i in range(3):
            r = httpx.post(
                f"{server.base_url}/v1/chat/completions",
                json={
                    "model": "auto",
                    "messages": [{"role": "user", "content": f"Say {i}"}],
                    "max_tokens": 5,
                },
                timeout=120,
            )
            assert r.status_code == 200, r.text
        query = urllib.parse.urlencode({"query": "sum(orchestrator_cost_usd_total)"})
        deadline = time.monotonic() + 60
        value = 0.0
        while time.monotonic() < deadline:
            try:
                answer = json.loads(httpx.get(f"{url}/api/v1/query?{query}", timeout=5).text)
                result = answer["data"]["result"]
                if result:
                    value = float(result[0]["value"][1])
                    if value > 0:
                        break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(1)
        assert value > 0, "Prometheus never saw orchestrator_cost_usd_total"
