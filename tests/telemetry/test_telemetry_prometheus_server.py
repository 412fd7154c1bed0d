"""A real Prometheus server scrapes `render_prometheus()` and answers PromQL about it.

Needs the `prometheus` binary (Debian: `apt-get install -y prometheus`); skipped without it.
Everything listens on 127.0.0.1; Prometheus scrapes every second and is stopped at the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator.telemetry.metrics import OrchestratorMetrics
from tests.http_handler import QuietHandler

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="the Prometheus server is not installed (Debian: apt-get install -y prometheus)",
)
WAIT_S = 30.0
GRAFANA_VARS = {
    "$__rate_interval": "5s",
    "$__range": "1m",
    "$tenant": ".*",
    "$profile": ".*",
    "$window": "day",
}


class _MetricsServer(ThreadingHTTPServer):
    def __init__(self, metrics: OrchestratorMetrics) -> None:
        self.metrics = metrics
        self.scrapes: list[str] = []  # content types served
        super().__init__(("127.0.0.1", 0), _MetricsHandler)


class _MetricsHandler(QuietHandler):
    server: _MetricsServer

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path != "/metrics":
            self.send_error(404)
            return
        body, content_type = self.server.metrics.render_prometheus(self.headers.get("Accept"))
        self.server.scrapes.append(content_type)
        self.reply(200, body, content_type)


class Prometheus:
    def __init__(self, url: str, metrics: OrchestratorMetrics, server: _MetricsServer) -> None:
        self.url = url
        self.metrics = metrics
        self.server = server

    def query(self, promql: str) -> list[dict[str, Any]]:
        qs = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=5) as resp:
            answer = json.load(resp)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def wait_for(self, promql: str, ok: Callable[[list[dict[str, Any]]], bool]) -> list[dict]:
        deadline = time.monotonic() + WAIT_S
        while True:
            result = self.query(promql)
            if ok(result) or time.monotonic() > deadline:
                return result
            time.sleep(0.25)


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"prometheus not ready after {WAIT_S}s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, record_sample_requests, port_factory) -> Iterator[Prometheus]:
    metrics = OrchestratorMetrics(instance_id="prom-test")
    record_sample_requests(metrics)
    server = _MetricsServer(metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    tmp = tmp_path_factory.mktemp("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: orchestrator\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.server_port}']}}]\n"
    )
    port = port_factory()
    log = tmp / "prometheus.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, log)
        yield Prometheus(url, metrics, server)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.shutdown()
        server.server_close()
        metrics.shutdown()


def _by_label(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(r["metric"][k] for k in labels): float(r["value"][1]) for r in result}


def test_promql_returns_the_cost_counters(prometheus: Prometheus, record_sample_requests) -> None:
    result = prometheus.wait_for("orchestrator_cost_usd_total", lambda r: len(r) == 3)
    cost = _by_label(result, "tenant", "profile")
    assert cost == pytest.approx(
        {
            ("acme", "smollm2-cpu"): 0.05,
            ("acme", "smollm2-cpu-ngram"): 0.0025,
            ("beta", "smollm2-cpu"): 0.25,
        }
    )
    series = result[0]["metric"]
    assert series["job"] == "orchestrator" and series["service_instance_id"] == "prom-test"

    # a few more requests: the next scrapes show the new totals
    record_sample_requests(prometheus.metrics)
    query = "sum by (tenant) (orchestrator_cost_usd_total)"
    result = prometheus.wait_for(query, lambda r: _by_label(r, "tenant").get(("acme",), 0) > 0.06)
    assert _by_label(result, "tenant") == pytest.approx({("acme",): 0.105, ("beta",): 0.5})
    # Prometheus asked for and got OpenMetrics
    assert prometheus.server.scrapes[-1].startswith("application/openmetrics-text")


def test_budget_and_slo_series_the_alerts_read(prometheus: Prometheus) -> None:
    ratio = prometheus.wait_for(
        "orchestrator_budget_remaining_usd / (orchestrator_budget_limit_usd > 0)",
        lambda r: len(r) == 3,
    )
    assert _by_label(ratio, "tenant", "window") == pytest.approx(
        {("acme", "day"): 0.995, ("acme", "month"): 0.75, ("beta", "day"): 0.75}
    )
    slo = prometheus.wait_for(
        'sum by (tenant, slo) (orchestrator_slo_requests_total{outcome="met"})'
        " / sum by (tenant, slo) (orchestrator_slo_requests_total)",
        lambda r: len(r) == 6,
    )
    attainment = _by_label(slo, "tenant", "slo")
    for s in ("ttft", "tpot", "e2e"):
        assert attainment[("acme", s)] == pytest.approx(2 / 3)
        assert attainment[("beta", s)] == pytest.approx(1 / 2)


def test_every_dashboard_query_runs_and_returns_data(
    prometheus: Prometheus, dashboard_queries
) -> None:
    # rates over the 5 s window need a few scrapes first
    prometheus.wait_for(
        "count_over_time(orchestrator_requests_total[5s])",
        lambda r: bool(r) and min(float(x["value"][1]) for x in r) >= 3,
    )
    empty = []
    for title, expr in dashboard_queries:
        promql = expr
        for var, value in sorted(GRAFANA_VARS.items(), key=lambda kv: -len(kv[0])):
            promql = promql.replace(var, value)
        assert "$" not in promql, (title, promql)
        if not prometheus.wait_for(promql, bool):
            empty.append((title, promql))
    assert not empty, empty
