"""What `/healthz` and `/v1/orchestrator/status` say of each profile, from the executor's
state: readiness, phase (`request.live.phase`), load, latency scales, failures and replicas.
Read only; the ingress adds the controller's and the edge's parts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.catalog.schema import Catalog
from orchestrator.serving.executor import RequestExecutor
from orchestrator.serving.profile_status import can_serve


def phases(executor: RequestExecutor) -> dict[str, str]:
    """Each profile's phase under the policy in force: open, opening, closed, unhealthy."""
    policy = executor.policy_source.current
    return dict(executor.views.phases(policy, executor.status.broken))


def health(executor: RequestExecutor, names: Iterable[str]) -> tuple[dict[str, Any], bool]:
    """`/healthz`'s body and whether it is 200 (`profile_status.can_serve`)."""
    ready = {name: executor.profile_ready(name) for name in names}
    now = phases(executor)
    ok = can_serve(ready, now, executor.load.in_flight)
    body: dict[str, Any] = {"status": "ok" if ok else "starting", "profiles": ready, "phases": now}
    if executor.health.down():
        body["down"] = executor.health.down()
    return body, ok


def profile_rows(
    executor: RequestExecutor,
    catalog: Catalog,
    placement: Mapping[str, Any],
    replicas: tuple[Mapping[str, int], Mapping[str, int]],
    targets: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """The status document's row per profile; `replicas`: (running, starting) per profile
    as the edge counts them; `targets`: the controller's per profile."""
    now, (running, starting) = phases(executor), replicas
    return {
        p.name: {
            "ready": executor.profile_ready(p.name),
            "phase": now[p.name],
            "placement": placement[p.name].model_dump(),
            "in_flight": executor.load.in_flight(p.name),
            "latency_scale": executor.latency_scales(p.name),
            "down": executor.health.down().get(p.name),
            "family": p.served_model_name,
            "replicas_running": running.get(p.name, 0),
            "replicas_starting": starting.get(p.name, 0),
            "replicas_target": targets.get(p.name, {}).get("target"),
            "reason": targets.get(p.name, {}).get("reason"),
        }
        for p in catalog.profiles
    }
