"""The runner's view of the ingress: tenant line caps and prices from the policy in force."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fastapi.responses import JSONResponse

from orchestrator.batch.pacing import Yield, plan
from orchestrator.batch.store import ActiveJob
from orchestrator.catalog.loader import load_catalog
from orchestrator.config_files import ConfigError
from orchestrator.paths import PROJECT_ROOT
from orchestrator.policy.loader import load_policy_text
from orchestrator.serving.batch_wiring import ExecutorLines, tenant_line_cap, tenant_yield_s

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


def test_the_yield_follows_the_policy_and_holds_lines_back_beside_interactive_traffic():
    watcher = _watcher("{yield_to_interactive_s: 30}")
    yield_s = tenant_yield_s(watcher)
    assert yield_s("default") == 30.0
    job = ActiveJob("b", "default", "/v1/chat/completions", 0.0, 3600.0, 50, 0, 50, 10.0, 100)

    def started() -> int:  # an interactive request left a one-request replica 20 s ago
        (pace,) = plan([job], 1800.0, tenant_cap=lambda _: 8, running_by_tenant={},
                       utilization=0.1, free_slots=2, exclusive=Yield(20.0, 2),
                       tenant_yield_s=yield_s)  # fmt: skip
        return pace.start

    assert started() == 0  # 20 s is not 30 s of quiet, and the deadline has room
    watcher.current = _watcher("{yield_to_interactive_s: 15}").current
    assert started() == 2  # quiet long enough: the free slots are filled
    watcher.current = _watcher("{yield_to_interactive_s: 0}").current
    assert started() == 8  # no yield: the even pace's due lines (capped) start
    assert tenant_yield_s(_watcher("{}"))("default") == 10.0  # built-in


@pytest.mark.parametrize("value", ["-1", "3601", "soon"])
def test_a_bad_yield_is_refused_naming_the_field(value):
    with pytest.raises(ConfigError, match="batch.yield_to_interactive_s"):
        _watcher(f"{{yield_to_interactive_s: {value}}}")


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
                                          "max_concurrent_lines": 8,
                                          "yield_to_interactive_s": 10.0}  # fmt: skip
    assert "charged x0.2 of the interactive price" in render_text(explained)
    assert "waiting for 10 s without interactive traffic" in render_text(explained)
    never = explain_policy(_watcher("{yield_to_interactive_s: 0}").current)
    assert "never waiting for interactive traffic" in render_text(never)


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
    assert idle.exclusive is None  # nobody said how long the profiles have been quiet


def test_capacity_reports_the_quiet_time_of_one_request_replicas():
    from orchestrator.replica_model import LiveState
    from orchestrator.request.route_inputs import priced_views
    from orchestrator.serving.batch_wiring import capacity_of

    views = [  # the local CPU profiles: one quiet slot each
        v.model_copy(update={"live": LiveState(replicas_running=1)})
        for v in priced_views(CATALOG, _watcher("{}").current).values()
    ]
    idle = {"smollm2-cpu": 4.0, "smollm2-cpu-ngram": 12.0}
    load = capacity_of(views, idle.__getitem__)
    assert load.exclusive == Yield(interactive_idle_s=4.0, lanes=2)
