"""Replica states of a Serve application's deployments, read cheaply.

Private API: `ray.serve.context._get_global_client(raise_if_no_controller_running=False)` and
its `get_serve_details()` (Ray 2.60): the controller's `ServeInstanceDetails` as a plain dict,
`applications.<app>.deployments.<name>.replicas[].state` (a `ReplicaState`, a str enum, not
its value) and `.status` (a `DeploymentStatus`). Relied on: the dict has that shape, and the
client is None when Serve has not started.

Why not `serve.status()`: it rebuilds the details as pydantic models, and every deployment's
`RequestRouterConfig` cloudpickles its router class by value, scanning every imported module;
in a process that imported vLLM one call took a large share of a core (profiled: ~48 % of the
ingress replica's samples at 4 concurrent streams, polled once a second), stalling the streams
that replica relays.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

# deployment statuses of a deployment that cannot serve: its replicas keep failing their
# health checks or their constructors (Serve gives up on DEPLOY_FAILED)
FAILED_STATUSES = frozenset({"UNHEALTHY", "DEPLOY_FAILED"})


def replica_states(app_name: str) -> dict[str, dict[str, int]] | None:
    """deployment name -> {replica state ("RUNNING", "STARTING", ...): count} for `app_name`,
    plus `FAILED` 1 for a deployment whose status is in `FAILED_STATUSES`; None when Serve is
    not running or the application is not deployed."""
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:
        return None
    return states_from_details(client.get_serve_details(), app_name)


def states_from_details(details: dict[str, Any], app_name: str) -> dict[str, dict[str, int]] | None:
    """`replica_states` from a `get_serve_details()` dict."""
    app = (details.get("applications") or {}).get(app_name)
    if app is None:
        return None
    out = {}
    for name, dep in (app.get("deployments") or {}).items():
        counts = dict(Counter(_state_name(r.get("state")) for r in (dep.get("replicas") or [])))
        if _state_name(dep.get("status")) in FAILED_STATUSES:
            counts["FAILED"] = 1
        out[name] = counts
    return out


def _state_name(state: Any) -> str:
    """ "RUNNING" for `ReplicaState.RUNNING` (str() of a str enum is "ReplicaState.RUNNING")."""
    return str(getattr(state, "value", state))
