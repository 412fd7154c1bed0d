"""Observability end to end: a real Prometheus scrapes the running server's /metrics and a
PromQL query returns the cost counters after a few requests."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
from urllib.parse import urlparse

import httpx
import pytest

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)"
)
def test_real_prometheus_scrapes_cost_counters(server, tmp_path):
    target = urlparse(server.base_url).netloc
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: orchestrator\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = _port()
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
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
    finally:
        proc.terminate()
        proc.wait(timeout=10)
