"""The request path with a cluster that cannot host a profile: routing skips it, and a request
only it could serve gets a 503 naming the profile and the reason (with Retry-After)."""

from __future__ import annotations

import json

from orchestrator.catalog.schema import NODE_TYPE_LABEL
from orchestrator.cluster import ProfilePlacement
from orchestrator.cluster.monitor import PlacementMonitor
from tests.serving.conftest import (  # noqa: F401 (fixture)
    LOCAL,
    MESSAGES,
    ingress,
)
from tests.serving.conftest import serve_body as _serve

REASON = f"unplaceable: no node with label {NODE_TYPE_LABEL}=cpu-b"


async def test_unplaceable_profile_gets_a_503_naming_why(ingress):  # noqa: F811
    monitor = PlacementMonitor(LOCAL, "orchestrator")
    monitor.report["smollm2-cpu-ngram"] = ProfilePlacement(state="unplaceable", reason=REASON)
    ingress.placement_note = monitor.explain
    # what the ingress's refresh loop sets for it
    ingress.ready["smollm2-cpu-ngram"] = False
    ingress.failed["smollm2-cpu-ngram"] = True

    body = {"model": "smollm2-cpu-ngram", "messages": MESSAGES}
    response = await _serve(ingress, body, "chat")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    error = json.loads(response.body)["error"]
    assert f"smollm2-cpu-ngram: {REASON}" in error["message"]
    assert ingress.handle.requests == []  # no engine was called
    assert ingress.ledger.count() == 0

    # the family is still served by the other profile
    assert monitor.explain("x", ["smollm2-cpu"]) == "x"


def test_orchestrator_status_cli_shows_the_unplaceable_reason():
    from orchestrator.cli.status import render

    doc = {
        "profiles": {
            "smollm2-cpu": {"replicas_running": 1, "placement": {"state": "placed"}},
            "smollm2-cpu-ngram": {
                "replicas_running": 0,
                "reason": "planner: keep 1",
                "placement": {"state": "unplaceable", "nodes": [], "reason": REASON},
            },
        }
    }
    lines = render(doc).splitlines()
    assert lines[2].startswith("smollm2-cpu-ngram") and lines[2].endswith(REASON)
    assert lines[1].endswith("(no plan yet)")
