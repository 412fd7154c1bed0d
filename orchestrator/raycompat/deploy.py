"""Deploy a Serve application without blocking until every replica is up.

Private API: `ray.serve._run(..., _blocking=False)` (Ray 2.60). Relied on: with
`_blocking=False` it submits the application and returns at once (the public `serve.run`
blocks until every engine is up and ignores signals meanwhile); the caller then polls
`serve.status()`.
"""

from __future__ import annotations

from typing import Any


def deploy_nonblocking(app: Any, *, name: str, route_prefix: str = "/") -> None:
    """Submit `app` under `name` and return without waiting for it to be RUNNING."""
    from ray import serve

    serve._run(app, name=name, route_prefix=route_prefix, _blocking=False)
