"""The spend-ceiling alert against a fake Kubernetes API server (real `kubernetes` client)."""

from __future__ import annotations

import json
import logging
import threading
from http.server import ThreadingHTTPServer

import pytest
from kubernetes import client

from orchestrator.control.alerts import EVENT_REASON, CeilingAlerter, post_event
from orchestrator.planning.types import ScalingDecision
from tests.http_handler import QuietHandler


class FakeApiServer:
    """Accepts POST /api/v1/namespaces/<ns>/events and echoes the Event back (201)."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, dict]] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posted.append((self.path, body))
                body.setdefault("metadata", {})["name"] = "orchestrator-spend-ceiling-x1"
                self.reply(201, json.dumps(body).encode(), "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def api(self) -> client.CoreV1Api:
        cfg = client.Configuration(host=f"http://127.0.0.1:{self.server.server_port}")
        return client.CoreV1Api(client.ApiClient(cfg))

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def apiserver(monkeypatch):
    monkeypatch.setenv("POD_NAMESPACE", "llm")
    monkeypatch.setenv("HOSTNAME", "orchestrator-head-0")
    server = FakeApiServer()
    yield server
    server.close()


def decision(binding: bool) -> ScalingDecision:
    return ScalingDecision(
        now_s=0.0,
        targets={},
        cost_per_hour_usd=40.0 if binding else 12.0,
        ceiling_usd_per_hour=40.0,
        ceiling_binding=binding,
        alerts=("spend ceiling $40.00/hour binds: targets cost $40.00/hour",) if binding else (),
    )


def test_post_event_creates_a_warning_event(apiserver):
    created = post_event(apiserver.api(), "spend ceiling binds")
    path, body = apiserver.posted[0]
    assert path == "/api/v1/namespaces/llm/events"
    assert body["reason"] == EVENT_REASON and body["type"] == "Warning"
    assert body["involvedObject"] == {
        "kind": "Pod",
        "name": "orchestrator-head-0",
        "namespace": "llm",
    }
    assert created.metadata.name == "orchestrator-spend-ceiling-x1"


def test_alerter_fires_on_changes_only(apiserver, caplog):
    alerter = CeilingAlerter(api_factory=apiserver.api)
    with caplog.at_level(logging.WARNING, logger="orchestrator.controller"):
        first = alerter.on_decision(decision(True))
    assert alerter.on_decision(decision(True)) is None  # still binding: no new event
    first.join(5)
    assert "spend ceiling binds" in caplog.text
    cleared = alerter.on_decision(decision(False))
    cleared.join(5)
    types = [body["type"] for _, body in apiserver.posted]
    assert types == ["Warning", "Normal"]
    assert "$40.00/hour" in apiserver.posted[0][1]["message"]


def test_outside_a_cluster_only_the_log_line(monkeypatch, caplog):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    alerter = CeilingAlerter()
    with caplog.at_level(logging.WARNING, logger="orchestrator.controller"):
        assert alerter.on_decision(decision(True)) is None
    assert "spend ceiling binds" in caplog.text
