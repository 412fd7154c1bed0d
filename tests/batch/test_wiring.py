"""The runner's view of the ingress: tenant line caps and prices from the policy in force."""

from __future__ import annotations

import json
from types import SimpleNamespace

from fastapi.responses import JSONResponse

from orchestrator.catalog.loader import load_catalog
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy.loader import load_policy_text
from orchestrator.serving.batch_wiring import ExecutorLines, tenant_line_cap

CATALOG = load_catalog(PROJECT_ROOT / "deployments" / "local.yaml")


def _watcher(batch: str) -> SimpleNamespace:
    text = f"apiVersion: orchestrator/v1\nkind: Policy\ndefault_tenant:\n  batch: {batch}\n"
    return SimpleNamespace(current=load_policy_text(text, "policy.yaml", CATALOG))


def test_the_line_cap_follows_the_policy_and_its_reloads():
    watcher = _watcher("{max_concurrent_lines: 3}")
    cap = tenant_line_cap(watcher)
    assert cap("default") == 3
    watcher.current = _watcher("{max_concurrent_lines: 11}").current
    assert cap("default") == 11
    assert tenant_line_cap(_watcher("{}"))("default") == 8  # built-in


class RecordingExecutor:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    async def serve_line(self, tenant, body, endpoint, request_id, *, price_factor):
        self.calls.append((tenant, body, endpoint, request_id, price_factor))
        return JSONResponse({"id": "x", "usage": {"cost_usd": 0.002}})


async def test_a_line_runs_unstreamed_at_the_tenants_price_factor():
    executor = RecordingExecutor()
    lines = ExecutorLines(executor, _watcher("{price_factor: 0.3}"))
    result = await lines("default", "/v1/completions", {"model": "m", "stream": True}, "b-L1")
    assert executor.calls == [("default", {"model": "m", "stream": False}, "completions",
                               "b-L1", 0.3)]  # fmt: skip
    assert result.status_code == 200 and result.cost_usd == 0.002
    assert json.loads(json.dumps(result.body))["id"] == "x"


def test_policy_explain_shows_the_effective_batch_settings():
    from orchestrator.policy.explain import explain_policy, render_text

    explained = explain_policy(_watcher("{price_factor: 0.2}").current)
    assert explained.tenants[0].batch == {"price_factor": 0.2, "max_completion_window": "24h",
                                          "max_concurrent_lines": 8}  # fmt: skip
    assert "charged x0.2 of the interactive price" in render_text(explained)


def test_capacity_counts_quiet_slots_of_healthy_running_profiles():
    from orchestrator.batch.pacing import quiet_slots
    from orchestrator.replica_model import LiveState
    from orchestrator.request.route_inputs import priced_views
    from orchestrator.serving.batch_wiring import capacity_of

    policy = _watcher("{}").current
    views = list(priced_views(CATALOG, policy).values())
    quiet = sum(quiet_slots(v.performance) for v in views)
    idle = capacity_of(
        [v.model_copy(update={"live": LiveState(replicas_running=1)}) for v in views]
    )
    assert idle.utilization == 0.0 and idle.free_slots == quiet
    busy = capacity_of(
        [v.model_copy(update={"live": LiveState(requests_in_flight=8)}) for v in views]
    )
    assert busy.free_slots == 0 and busy.utilization == 1.0
    down = capacity_of([v.model_copy(update={"live": LiveState(healthy=False)}) for v in views])
    assert down.free_slots == 0
