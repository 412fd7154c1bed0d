"""`orchestrator status` against a real HTTP server serving a status document."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from planning_helpers import catalog, load, observe, policy, profile

from orchestrator.cli import main
from orchestrator.control.status import status_document
from orchestrator.planning import plan


@pytest.fixture
def server():
    cat = catalog(profile("solo", replicas={"min": 1, "max": 4}))
    pol = policy(cat, "autoscaling: {scale_up_delay_s: 0, max_cost_per_hour_usd: 2}")
    obs = observe(0, solo=load(3000, replicas_current=1, replicas_ready=1, spend_usd_per_hour=0.5))
    decision, _ = plan(obs, pol)
    doc = {
        "profiles": {
            "solo": {
                "replicas_running": 1,
                "replicas_target": 2,
                "reason": decision.targets["solo"].reason,
                "latency_scale": {"ttft": 1.318, "tpot": None},
            }
        },  # fmt: skip
        "controller": status_document(decision, obs),
    }
    body = json.dumps(doc).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200 if self.path == "/v1/orchestrator/status" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_status_table_and_json(server, capsys):
    assert main(["status", "--url", server]) == 0
    out = capsys.readouterr().out
    assert "solo" in out and "ceiling $2.00, BINDING" in out and "ALERT: spend ceiling" in out
    header, solo = out.splitlines()[:2]
    assert header.split()[6] == "scale" and solo.split()[6] == "1.32/-"
    assert main(["status", "--url", server, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["controller"]["targets"]["solo"]["target"] == 2
    assert doc["controller"]["observation"]["profiles"]["solo"]["spend_usd_per_hour"] == 0.5


def test_status_without_a_server(capsys):
    assert main(["status", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot read" in capsys.readouterr().err
