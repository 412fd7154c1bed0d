"""A closed profile on the real server (Ray Serve, stub engines that start in seconds): a
profile the policy lets scale from zero, with no replica, is routable at its opening price. A
request only it can serve is routed there; Serve holds it and starts a replica (its
cold-start path), the controller keeps that replica, and the request is answered with one
ledger row and a decision that explains the opening. Its own server; run under the Ray lock.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import yaml

from orchestrator.paths import PROJECT_ROOT
from tests.e2e.conftest import start_server, stop_server
from tests.e2e.ledger_rows import wait_rows

pytestmark = [pytest.mark.e2e, pytest.mark.own_server]

CLOSED = "stub-zero"
FAMILY = "stub-zero-model"  # served by the closed profile alone
POLICY = """\
apiVersion: orchestrator/v1
kind: Policy
metadata: {name: e2e-closed-profile}
default_tenant:
  name: default
autoscaling:
  interval_s: 2
  scale_down_delay_s: 60
"""


def _catalog(tmp: Path) -> Path:
    """The stub catalog plus a copy of its profile under another model name, at zero replicas
    (min 0): nothing runs it until a request needs it."""
    data = yaml.safe_load((PROJECT_ROOT / "deployments" / "stub.yaml").read_text())
    zero = {
        **data["profiles"][0],
        "name": CLOSED,
        "served_model_name": FAMILY,
        "replicas": {"min": 0, "max": 1, "startup_s": 30},
    }
    data["profiles"].append(zero)
    path = tmp / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def closed_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("closed")
    policy = tmp / "closed-policy.yaml"
    policy.write_text(POLICY)
    args = ["--deployments", str(_catalog(tmp)), "--policy", str(policy)]
    srv = start_server(tmp, args, ready=lambda profiles: profiles.get("stub", False))
    yield srv
    stop_server(srv)


def _profile(base: str) -> dict:
    return httpx.get(f"{base}/v1/orchestrator/status", timeout=10).json()["profiles"][CLOSED]


def test_a_request_only_a_closed_profile_serves_opens_it(closed_server):
    base = closed_server.base_url
    assert _profile(base)["replicas_running"] == 0  # closed
    body = {"model": FAMILY, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    started = time.monotonic()
    r = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=300)
    waited = time.monotonic() - started
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    rid = r.headers["x-request-id"]
    rows = wait_rows(closed_server, [rid])
    assert len(rows) == 1 and rows[0]["profile"] == CLOSED and rows[0]["status"] == "ok"
    decision = httpx.get(f"{base}/v1/orchestrator/decisions/{rid}", timeout=30).json()
    assert decision["profile"] == CLOSED
    opened = [s for s in decision["steps"] if s.startswith(f"open: {CLOSED} has no replica")]
    assert opened and "per request" in opened[0], decision["steps"]
    assert decision["estimate"]["queue_wait_ms"] >= 30_000  # a whole start-up was priced
    # the replica Serve started for it is kept (held the scale-down delay), not stopped
    time.sleep(6)  # past the controller's interval (2 s) several times
    assert _profile(base)["replicas_running"] == 1, _profile(base)
    second = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)
    assert second.status_code == 200
    print(f"scale-from-zero request answered in {waited:.1f} s")
